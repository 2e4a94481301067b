"""Streaming decode for preprocessing: a track is read in blocks, twice, never held whole in memory.

Pass 1 (``measure_track``) decodes, mixes to mono and resamples block by block to find the peak and RMS
the normalisation needs (and warns when a file decodes shorter than its header claims, e.g. a cut MP3).
Pass 2 (``stream_clips``) decodes again, applies the gain and hands out one clip at a time. Memory is
bounded by one block plus one clip, whatever the track's length.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from musicgen_ops.pipeline.errors import AudioDecodeError

__all__ = ["BLOCK_FRAMES", "TrackStats", "measure_track", "mono_blocks", "stream_clips"]

logger = logging.getLogger(__name__)

#: Frames decoded at a time (about 1.4 s at 48 kHz).
BLOCK_FRAMES = 1 << 16
#: A decode shorter than this fraction of the header's length gets a warning.
SHORT_DECODE_RATIO = 0.98
SUPPORTED_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


@dataclass(frozen=True)
class TrackStats:
    """What normalising a track needs: peak, RMS and length (at the target rate, mono)."""

    peak: float
    rms: float
    samples: int
    source_rate: int


def decode_error(path: Path, err: Exception) -> AudioDecodeError:
    """libsndfile's failure on ``path`` as one message naming the file and what is wrong."""
    detail = str(err).replace(f"Error opening {str(path)!r}: ", "")
    if "does not exist or is not a regular file" in detail:  # libsndfile's words for unknown data
        detail = "format not recognised"
    return AudioDecodeError(
        f"{path}: cannot decode: corrupt or not a real {path.suffix.lstrip('.').upper()} file ({detail})"
    )


def open_audio(path: Path) -> Any:
    """An open ``soundfile.SoundFile`` after the checks every reader makes (extension, empty file).

    Raises:
        AudioDecodeError: unsupported extension, empty file, or data libsndfile cannot open.
    """
    import soundfile as sf

    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise AudioDecodeError(
            f"{path}: unsupported format {path.suffix!r} (use {', '.join(SUPPORTED_EXTENSIONS)})"
        )
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: empty file")
    try:
        return sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise decode_error(path, err) from err


def mono_blocks(
    path: Path, target_rate: int, frames: list[int] | None = None, channels: int = 1
) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``path`` resampled to ``target_rate`` (soxr's streaming resampler).

    ``frames``, when given, receives ``[decoded frames, frames the header claims]`` at the end.
    ``channels=2`` keeps stereo: blocks are ``[n, 2]`` (a mono file twice; more channels are mixed
    to mono, then doubled).
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    import soundfile as sf

    with open_audio(path) as audio:
        rate, claimed, decoded = int(audio.samplerate), int(audio.frames), 0
        stream = None
        if rate != target_rate:
            import soxr

            stream = soxr.ResampleStream(rate, target_rate, channels, dtype="float32", quality="HQ")
        try:
            # read() rather than blocks(): blocks() pads a short decode up to the header's length
            while len(block := audio.read(BLOCK_FRAMES, dtype="float32", always_2d=True)):
                decoded += len(block)
                if not np.isfinite(block).all():
                    raise AudioDecodeError(f"{path}: contains NaN or infinite samples")
                mixed = _mix(block, channels)
                yield stream.resample_chunk(mixed) if stream is not None else np.ascontiguousarray(mixed)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioDecodeError(f"{path}: cannot decode past frame {decoded}: {err}") from err
        if stream is not None:
            empty = np.zeros((0, channels) if channels > 1 else 0, dtype=np.float32)
            yield stream.resample_chunk(empty, last=True)
    if frames is not None:
        frames[:] = [decoded, claimed]


def _mix(block: np.ndarray, channels: int) -> np.ndarray:
    """A decoded ``[n, source channels]`` block as ``[n]`` (mono) or ``[n, 2]`` (stereo)."""
    if channels == 2 and block.shape[1] == 2:
        return block
    mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
    return np.repeat(mono[:, None], 2, axis=1) if channels == 2 else mono


def measure_track(path: Path, target_rate: int, channels: int = 1) -> TrackStats:
    """Pass 1: peak, RMS and length at ``target_rate``; warns when the file decodes short.

    Raises:
        AudioDecodeError: unsupported, corrupt or empty file, NaN samples.
    """
    peak, squares, samples = 0.0, 0.0, 0
    frames: list[int] = []
    for block in mono_blocks(path, target_rate, frames, channels):
        if block.size:
            peak = max(peak, float(np.abs(block).max()))
            squares += float(np.square(block, dtype=np.float64).sum()) / channels
            samples += block.shape[0]
    decoded, claimed = frames
    if decoded == 0:
        raise AudioDecodeError(f"{path}: no audio samples")
    if claimed > 0 and decoded < SHORT_DECODE_RATIO * claimed:
        logger.warning(
            "%s decodes to %d of the %d frames its header claims (%.0f%%): the file is probably cut short",
            path,
            decoded,
            claimed,
            100 * decoded / claimed,
        )
    with open_audio(path) as audio:
        source_rate = int(audio.samplerate)
    return TrackStats(
        peak=peak, rms=math.sqrt(squares / max(samples, 1)), samples=samples, source_rate=source_rate
    )


def stream_clips(
    path: Path,
    target_rate: int,
    gain: float,
    clip_samples: int,
    min_samples: int,
    last_clip: Literal["pad", "keep", "drop"],
    channels: int = 1,
) -> Iterator[tuple[np.ndarray, int]]:
    """Pass 2: ``(clip, samples of real audio in it)`` one clip at a time, the gain applied.

    The last, shorter window follows ``last_clip`` (``pad`` with silence, ``keep`` short, ``drop``);
    one shorter than ``min_samples`` is always dropped. Clips are ``[samples]``, or ``[samples, 2]``
    with ``channels=2``.
    """
    buffer = np.empty((clip_samples, channels) if channels > 1 else clip_samples, dtype=np.float32)
    filled = 0
    for block in mono_blocks(path, target_rate, channels=channels):
        block = block * np.float32(gain)
        while len(block):
            take = min(clip_samples - filled, len(block))
            buffer[filled : filled + take] = block[:take]
            filled += take
            block = block[take:]
            if filled == clip_samples:
                yield buffer.copy(), clip_samples
                filled = 0
    if filled and filled >= min_samples and last_clip != "drop":
        tail = buffer[:filled].copy()
        padding = [(0, clip_samples - filled)] + [(0, 0)] * (tail.ndim - 1)
        yield (np.pad(tail, padding) if last_clip == "pad" else tail), filled
