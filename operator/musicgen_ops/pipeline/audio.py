"""Audio preprocessing: decode any WAV/MP3/FLAC, resample to 32 kHz mono, normalise, cut into clips.

Normalisation is **peak** normalisation to -1 dBFS by default (``normalization="peak"``): each track's
largest sample is scaled to 0.891. ``normalization="rms"`` scales each track to -20 dBFS RMS instead
(then limits the peak to -1 dBFS). The whole track is normalised before it is cut, so clips of one track
keep their relative loudness.

Clips are ``target_duration`` seconds long. The last, shorter window follows ``last_clip``: ``pad`` (pad
with silence to full length), ``keep`` (keep it short) or ``drop``; a last window shorter than
``min_clip_duration`` is always dropped.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from musicgen_ops.pipeline.audio_stream import (
    SUPPORTED_EXTENSIONS,  # noqa: F401 - part of this module's API (studio, tests)
    decode_error,
    measure_track,
    open_audio,
    stream_clips,
)
from musicgen_ops.pipeline.errors import AudioDecodeError, InvalidParametersError
from musicgen_ops.pipeline.filemodes import make_public
from musicgen_ops.pipeline.manifest import (
    MANIFEST_NAME,
    ManifestEntry,
    PromptSource,
    read_manifest,
    sha256_file,
    write_manifest,
)

logger = logging.getLogger(__name__)

PEAK_TARGET = 10 ** (-1 / 20)  # -1 dBFS
RMS_TARGET = 10 ** (-20 / 20)  # -20 dBFS
SILENCE_PEAK = 10 ** (-60 / 20)  # below -60 dBFS peak a track counts as silent
CLIPS_DIR = "clips"


def load_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode a file to float32 ``[channels, samples]`` and its sample rate.

    Raises:
        AudioDecodeError: unsupported extension, unreadable/corrupt data, or no samples.
    """
    import soundfile as sf

    path = Path(path)
    try:
        with open_audio(path) as audio:
            data, sample_rate = audio.read(dtype="float32", always_2d=True), audio.samplerate
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:  # failures while reading the data
        raise decode_error(path, err) from err
    if data.size == 0:
        raise AudioDecodeError(f"{path}: no audio samples")
    if not np.isfinite(data).all():
        raise AudioDecodeError(f"{path}: contains NaN or infinite samples")
    return np.ascontiguousarray(data.T), int(sample_rate)


def decode_audio_bytes(data: bytes, field: str) -> tuple[np.ndarray, int]:
    """Decode an audio file sent as bytes (a request's clip or melody) to float32 ``[channels, samples]``
    and its sample rate.

    Raises:
        InvalidParametersError: empty, not decodable, or no usable samples (naming ``field``).
    """
    import io

    import soundfile as sf

    def invalid(reason: str) -> InvalidParametersError:
        line = f"{field}: {reason}"
        return InvalidParametersError(line, fields=[line])

    if not data:
        raise invalid("the file is empty")
    try:
        audio, sample_rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        raise invalid(f"not decodable audio (WAV/FLAC/OGG/MP3 expected): {err}") from err
    if audio.size == 0 or not np.isfinite(audio).all():
        raise invalid("no usable audio samples")
    return np.ascontiguousarray(audio.T), int(sample_rate)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels: ``[channels, samples]`` -> ``[samples]``."""
    return audio.mean(axis=0) if audio.ndim == 2 else audio


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """High-quality resampling with soxr (a no-op when the rates match)."""
    if source_rate == target_rate:
        return audio.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(audio, source_rate, target_rate, quality="HQ").astype(np.float32)


def normalisation_gain(peak: float, rms: float, method: Literal["peak", "rms"] = "peak") -> float:
    """The gain that peak-normalises to -1 dBFS, or RMS-normalises to -20 dBFS (peak limited to -1 dBFS)."""
    if peak < SILENCE_PEAK:
        raise AudioDecodeError("silent audio (peak below -60 dBFS)")
    return min(RMS_TARGET / rms, PEAK_TARGET / peak) if method == "rms" else PEAK_TARGET / peak


def normalise(audio: np.ndarray, method: Literal["peak", "rms"] = "peak") -> np.ndarray:
    """Peak-normalise to -1 dBFS, or RMS-normalise to -20 dBFS with the peak limited to -1 dBFS."""
    peak = float(np.abs(audio).max(initial=0.0))
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return (audio * normalisation_gain(peak, rms, method)).astype(np.float32)


def split_clips(
    audio: np.ndarray,
    sample_rate: int,
    target_duration: float,
    last_clip: Literal["pad", "keep", "drop"] = "pad",
    min_clip_duration: float = 1.0,
) -> list[np.ndarray]:
    """Cut ``[samples]`` into ``target_duration`` windows, the last one handled by ``last_clip``."""
    size = int(round(target_duration * sample_rate))
    minimum = int(round(min_clip_duration * sample_rate))
    clips = []
    for start in range(0, len(audio), size):
        clip = audio[start : start + size]
        if len(clip) < size:
            if len(clip) < minimum or last_clip == "drop":
                break
            if last_clip == "pad":
                clip = np.pad(clip, (0, size - len(clip)))
        clips.append(clip)
    return clips


def write_wav_atomic(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write a 16-bit PCM WAV through a temporary file, then rename (no half-written clips)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".wav.tmp", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
        make_public(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class PreprocessResult:
    """What a preprocessing run did."""

    output_dir: Path
    manifest_path: Path | None
    processed: list[str] = field(default_factory=list)  # sources decoded and cut this run
    up_to_date: list[str] = field(default_factory=list)  # sources skipped because already done
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason) for bad input
    clips_written: int = 0
    entries: list[ManifestEntry] = field(default_factory=list)
    removed_orphans: int = 0  # clip files no manifest entry pointed at any more

    def summary_rows(self) -> list[tuple[str, str, str]]:
        """``(source, status, detail)`` rows: processed, up to date, then skipped with the reason."""
        clips: dict[str, int] = {}
        for entry in self.entries:
            clips[entry.source] = clips.get(entry.source, 0) + 1
        rows = [(s, "processed", f"{clips.get(s, 0)} clips") for s in self.processed]
        rows += [(s, "up to date", f"{clips.get(s, 0)} clips") for s in self.up_to_date]
        rows += [(s, "skipped", reason) for s, reason in self.skipped]
        return rows

    @property
    def total_duration(self) -> float:
        """Seconds of audio in the manifest."""
        return sum(e.duration for e in self.entries)


class AudioDataPreprocessor:
    """Turn a folder of tracks into 32 kHz mono clips plus ``manifest.json``.

    Args:
        target_sample_rate: output sample rate (MusicGen's codec runs at 32 kHz).
        target_duration: clip length in seconds (MusicGen trains on up to 30 s).
        last_clip: what to do with the last, shorter window: ``pad``, ``keep`` or ``drop``.
        min_clip_duration: a last window shorter than this (seconds) is always dropped.
        normalization: ``peak`` (-1 dBFS) or ``rms`` (-20 dBFS, peak-limited).
        channels: 1 (mono clips, for mono MusicGen) or 2 (stereo clips, for the stereo checkpoints).
    """

    def __init__(
        self,
        target_sample_rate: int = 32_000,
        target_duration: float = 30.0,
        last_clip: Literal["pad", "keep", "drop"] = "pad",
        min_clip_duration: float = 1.0,
        normalization: Literal["peak", "rms"] = "peak",
        channels: int = 1,
    ) -> None:
        if target_duration <= 0 or target_sample_rate <= 0:
            raise ValueError("target_duration and target_sample_rate must be positive")
        if last_clip not in ("pad", "keep", "drop"):
            raise ValueError(f"last_clip must be 'pad', 'keep' or 'drop', not {last_clip!r}")
        if normalization not in ("peak", "rms"):
            raise ValueError(f"normalization must be 'peak' or 'rms', not {normalization!r}")
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 (mono) or 2 (stereo), not {channels!r}")
        if min_clip_duration < 0:
            raise ValueError(f"min_clip_duration must be >= 0, got {min_clip_duration}")
        self.target_sample_rate = target_sample_rate
        self.target_duration = target_duration
        self.last_clip = last_clip
        self.min_clip_duration = min(min_clip_duration, target_duration)
        self.normalization = normalization
        self.channels = channels

    @property
    def settings_key(self) -> str:
        """The settings a clip was made with; a track made with other settings is processed again."""
        return (
            f"sr={self.target_sample_rate},duration={self.target_duration:g},last={self.last_clip},"
            f"min={self.min_clip_duration:g},norm={self.normalization}"
            + (f",channels={self.channels}" if self.channels != 1 else "")  # mono keys stay as they were
        )

    @staticmethod
    def find_tracks(input_dir: Path, exclude: Path | None = None) -> list[Path]:
        """Every file under ``input_dir`` (recursively) that is not a prompt sidecar, a prompts table, a
        hidden file, or inside ``exclude`` (the output folder, when it lies inside the input folder)."""
        ignored = {"prompts.csv", "prompts.json", MANIFEST_NAME}
        excluded = Path(exclude).resolve() if exclude is not None else None
        return sorted(
            p
            for p in Path(input_dir).rglob("*")
            if p.is_file()
            and p.suffix.lower() != ".txt"
            and p.name not in ignored
            and not any(part.startswith(".") for part in p.relative_to(input_dir).parts)
            and not (excluded is not None and p.resolve().is_relative_to(excluded))
        )

    def preprocess_directory(
        self,
        input_dir: str | Path,
        output_dir: str | Path,
        create_manifest: bool = True,
        on_track: Callable[[Path], None] | None = None,
    ) -> PreprocessResult:
        """Preprocess every track under ``input_dir`` into ``output_dir``; idempotent.

        Bad files are reported in ``result.skipped`` (source, reason) and do not stop the run.
        ``on_track`` is called after each track (for progress bars).
        """
        input_dir, output_dir = Path(input_dir), Path(output_dir)
        if not input_dir.is_dir():
            raise AudioDecodeError(f"input folder {input_dir} does not exist")
        manifest_path = output_dir / MANIFEST_NAME
        previous = read_manifest(manifest_path) if manifest_path.is_file() else []
        remove_temporaries(output_dir)
        by_source: dict[str, list[ManifestEntry]] = {}
        for entry in previous:
            by_source.setdefault(entry.source, []).append(entry)
        prompts = PromptSource(input_dir)
        result = PreprocessResult(
            output_dir=output_dir, manifest_path=manifest_path if create_manifest else None
        )
        current = dict(by_source)  # what the manifest says while the run goes on (crash-safe resume)
        seen: set[str] = set()
        for track in self.find_tracks(input_dir, exclude=output_dir):
            source = track.relative_to(input_dir).as_posix()
            seen.add(source)
            try:
                source_hash = sha256_file(track)
                done = by_source.get(source, [])
                if done and self._is_up_to_date(done, source_hash, output_dir):
                    result.up_to_date.append(source)
                else:
                    new = self._process_track(track, source, source_hash, output_dir, prompts, done)
                    current[source] = new
                    result.processed.append(source)
                    result.clips_written += len(new)
                    if create_manifest:
                        write_manifest(manifest_path, _flatten(current))
            except AudioDecodeError as err:
                reason = str(err).removeprefix(f"{track}: ")
                logger.warning("skipping %s: %s", source, reason)
                result.skipped.append((source, reason))
                current.pop(source, None)
            if on_track:
                on_track(track)
        for gone in set(current) - seen:
            logger.info("%s is no longer in %s: dropping its clips", gone, input_dir)
            del current[gone]
        result.entries = _flatten(current)
        if create_manifest:
            write_manifest(manifest_path, result.entries)
            result.removed_orphans = remove_orphan_clips(output_dir, result.entries)
        return result

    def _is_up_to_date(self, done: list[ManifestEntry], source_hash: str, output_dir: Path) -> bool:
        return all(
            e.source_sha256 == source_hash
            and e.settings == self.settings_key
            and (output_dir / e.audio).is_file()
            and (
                e.content_duration is not None or self.last_clip != "pad"
            )  # written before lengths were kept
            for e in done
        )

    def _process_track(
        self,
        track: Path,
        source: str,
        source_hash: str,
        output_dir: Path,
        prompts: PromptSource,
        previous: list[ManifestEntry],
    ) -> list[ManifestEntry]:
        # Streamed in blocks (two passes): memory stays bounded whatever the track's length.
        stats = measure_track(track, self.target_sample_rate, self.channels)
        try:
            gain = normalisation_gain(stats.peak, stats.rms, self.normalization)
        except AudioDecodeError as err:
            raise AudioDecodeError(f"{track}: {err}") from err
        clip_samples = int(round(self.target_duration * self.target_sample_rate))
        min_samples = int(round(self.min_clip_duration * self.target_sample_rate))
        if stats.samples < clip_samples and (stats.samples < min_samples or self.last_clip == "drop"):
            raise AudioDecodeError(
                f"{track}: shorter than the minimum clip length ({self.min_clip_duration:g} s)"
            )
        clips = stream_clips(
            track, self.target_sample_rate, gain, clip_samples, min_samples, self.last_clip, self.channels
        )
        edited = {e.audio: e.prompt for e in previous}
        # A prompt kept in the manifest wins over sidecar/table/file name, also for clips a new cut adds.
        default_prompt = previous[0].prompt if previous else prompts.prompt_for(track)
        stem = source.rsplit(".", 1)[0].replace("/", "__")
        entries = []
        for index, (clip, real) in enumerate(clips):  # real: samples of audio, the rest is padding
            relative = f"{CLIPS_DIR}/{stem}_{index:03d}.wav"
            write_wav_atomic(output_dir / relative, clip, self.target_sample_rate)
            entries.append(
                ManifestEntry(
                    audio=relative,
                    prompt=edited.get(relative, default_prompt),
                    duration=round(len(clip) / self.target_sample_rate, 4),
                    source=source,
                    sha256=sha256_file(output_dir / relative),
                    source_sha256=source_hash,
                    clip_index=index,
                    settings=self.settings_key,
                    content_duration=round(real / self.target_sample_rate, 6),
                )
            )
        for stale in {e.audio for e in previous} - {e.audio for e in entries}:
            (output_dir / stale).unlink(missing_ok=True)
        return entries


def _flatten(by_source: dict[str, list[ManifestEntry]]) -> list[ManifestEntry]:
    return sorted((e for entries in by_source.values() for e in entries), key=lambda e: e.audio)


def remove_temporaries(output_dir: Path) -> None:
    """Delete temporary files an interrupted run left behind (``.<name>.*.tmp``)."""
    if output_dir.is_dir():
        for leftover in output_dir.rglob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def remove_orphan_clips(output_dir: Path, entries: list[ManifestEntry]) -> int:
    """Delete clips under ``<output_dir>/clips`` that no manifest entry lists; return how many."""
    listed = {(output_dir / e.audio).resolve() for e in entries}
    removed = 0
    for clip in (output_dir / CLIPS_DIR).glob("*.wav") if (output_dir / CLIPS_DIR).is_dir() else []:
        if clip.resolve() not in listed:
            clip.unlink()
            removed += 1
    return removed
