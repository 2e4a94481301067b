"""Delivery of generated audio: sample rate, loudness, true-peak limit, file format, bit depth and tags.

Pure functions over a float waveform and its rate: ``(samples,)`` mono or ``(channels, samples)``.
:func:`render` applies the options (resample with soxr, then loudness normalisation to a target in LUFS
measured per ITU-R BS.1770 / EBU R128 with pyloudnorm, with an oversampled true-peak limiter), and
:func:`encode` / :func:`write` turn the result into WAV or FLAC (16/24-bit PCM), or MP3 / OGG Vorbis /
OGG Opus (48 kHz) where the installed libsndfile writes them, with title and comment tags.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

# Rates, depths and ranges are the generation contract's (one place for every bound).
from musicgen_ops.contracts.generation import (
    BIT_DEPTHS,
    DEFAULT_TRUE_PEAK_DBTP,
    LUFS_RANGE,
    SAMPLE_RATES,
    TRUE_PEAK_RANGE,
    GenerationParameters,
)

#: Shortest audio whose integrated loudness is defined (one 400 ms gating block).
MIN_LOUDNESS_SECONDS = 0.4


@dataclass(frozen=True)
class OutputFormat:
    """A delivery format: libsndfile container, its sample formats per bit depth (``None``: lossy), and
    the one sample rate it encodes, if it has one (Opus: 48 kHz)."""

    container: str
    subtypes: dict[int | None, str]
    extension: str
    rate: int | None = None

    @property
    def lossless(self) -> bool:
        return None not in self.subtypes


FORMATS: dict[str, OutputFormat] = {
    "wav": OutputFormat("WAV", {16: "PCM_16", 24: "PCM_24"}, ".wav"),
    "flac": OutputFormat("FLAC", {16: "PCM_16", 24: "PCM_24"}, ".flac"),
    "mp3": OutputFormat("MP3", {None: "MPEG_LAYER_III"}, ".mp3"),
    "ogg": OutputFormat("OGG", {None: "VORBIS"}, ".ogg"),
    "opus": OutputFormat("OGG", {None: "OPUS"}, ".opus", rate=48_000),
}


@cache
def available_formats() -> tuple[str, ...]:
    """Formats the installed libsndfile can write (MP3 needs libsndfile >= 1.1 built with LAME/mpg123)."""
    import soundfile as sf

    containers = sf.available_formats()
    names = []
    for name, spec in FORMATS.items():
        if spec.container in containers and all(
            subtype in sf.available_subtypes(spec.container) for subtype in spec.subtypes.values()
        ):
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class DeliveryOptions:
    """How a track is delivered; every field is checked once here, naming the field at fault.

    Args:
        format: ``wav``, ``flac``, ``mp3`` or ``ogg`` (the last two only where libsndfile writes them).
        sample_rate: 32000, 44100 or 48000; ``None`` keeps the model's rate.
        bit_depth: 16 or 24 (PCM formats; ignored by the lossy ones).
        target_lufs: integrated loudness to normalise to (e.g. -14); ``None`` leaves the level alone.
        true_peak_dbtp: ceiling of the oversampled peak when normalising (default -1 dBTP).
    """

    format: str = "wav"
    sample_rate: int | None = None
    bit_depth: int = 16
    target_lufs: float | None = None
    true_peak_dbtp: float = DEFAULT_TRUE_PEAK_DBTP

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(
                f"format: unknown output format {self.format!r}; choose one of {', '.join(FORMATS)}"
            )
        if self.format not in available_formats():
            raise ValueError(
                f"format: {self.format} cannot be written here (the installed libsndfile lacks it); "
                f"available: {', '.join(available_formats())}"
            )
        if self.sample_rate is not None and self.sample_rate not in SAMPLE_RATES:
            raise ValueError(
                f"sample_rate: {self.sample_rate} Hz is not offered; choose one of {_join(SAMPLE_RATES)}"
            )
        fixed = FORMATS[self.format].rate
        if fixed is not None and self.sample_rate not in (None, fixed):
            raise ValueError(
                f"sample_rate: {self.format} encodes {fixed} Hz only; leave it unset or {fixed}, "
                f"got {self.sample_rate}"
            )
        if self.bit_depth not in BIT_DEPTHS:
            raise ValueError(f"bit_depth: must be one of {_join(BIT_DEPTHS)}, got {self.bit_depth}")
        if self.target_lufs is not None and not LUFS_RANGE[0] <= self.target_lufs <= LUFS_RANGE[1]:
            raise ValueError(
                f"target_lufs: must be between {LUFS_RANGE[0]} and {LUFS_RANGE[1]}, got {self.target_lufs}"
            )
        if not TRUE_PEAK_RANGE[0] <= self.true_peak_dbtp <= TRUE_PEAK_RANGE[1]:
            raise ValueError(
                f"true_peak_dbtp: must be between {TRUE_PEAK_RANGE[0]} and {TRUE_PEAK_RANGE[1]}, "
                f"got {self.true_peak_dbtp}"
            )

    @classmethod
    def for_parameters(cls, parameters: GenerationParameters) -> DeliveryOptions:
        """The delivery a request asked for."""
        return cls(
            format=parameters.output_format,
            sample_rate=parameters.sample_rate,
            bit_depth=parameters.bit_depth,
            target_lufs=parameters.target_lufs,
            true_peak_dbtp=parameters.true_peak_dbtp,
        )

    @property
    def subtype(self) -> str:
        """libsndfile sample format for this format and bit depth."""
        spec = FORMATS[self.format]
        return spec.subtypes[None] if not spec.lossless else spec.subtypes[self.bit_depth]


@dataclass(frozen=True)
class AudioTags:
    """Tags written into the file (WAV INFO, FLAC/OGG Vorbis comments, MP3 ID3)."""

    title: str = ""
    comment: str = ""
    software: str = "musicgen-ops"

    @classmethod
    def for_track(cls, prompt: str, *, seed: int | None, model: str, decoder: str = "encodec") -> AudioTags:
        """Title = the prompt; comment = seed, model and decoder."""
        return cls(title=prompt, comment=f"seed={seed} model={model} decoder={decoder}")


@dataclass(frozen=True)
class RenderedAudio:
    """Audio after :func:`render`, with what was measured (for the sidecar)."""

    audio: np.ndarray
    sample_rate: int
    loudness_lufs: float | None
    true_peak_dbtp: float | None


def _join(values) -> str:
    return ", ".join(str(v) for v in values)


def _as_frames(audio: np.ndarray) -> np.ndarray:
    """``(samples,)`` or ``(channels, samples)`` -> float64 ``(samples, channels)``."""
    array = np.asarray(audio, dtype=np.float64)
    if array.ndim == 1:
        return array[:, None]
    if array.ndim == 2 and array.shape[0] <= 8:
        return array.T
    raise ValueError(
        f"audio must be (samples,) or (channels, samples) with at most 8 channels, got {array.shape}"
    )


def _like(frames: np.ndarray, original: np.ndarray) -> np.ndarray:
    out = frames[:, 0] if np.ndim(original) == 1 else frames.T
    return np.ascontiguousarray(out, dtype=np.float32)


def resample(audio: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Resample with soxr (very high quality); same layout as the input."""
    import soxr

    if target_rate == sample_rate:
        return np.asarray(audio, dtype=np.float32)
    frames = _as_frames(audio)
    resampled = soxr.resample(frames, sample_rate, target_rate, quality="VHQ")
    return _like(np.asarray(resampled).reshape(-1, frames.shape[1]), audio)


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4, gated); ``-inf`` for silence."""
    import pyloudnorm

    frames = _as_frames(audio)
    if frames.shape[0] < MIN_LOUDNESS_SECONDS * sample_rate:
        raise ValueError(
            f"audio: loudness needs at least {MIN_LOUDNESS_SECONDS} s, "
            f"got {frames.shape[0] / sample_rate:.3f} s"
        )
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(frames))


def _oversampling(sample_rate: int) -> int:
    """Factor taking the rate to at least 192 kHz (BS.1770-4 annex 2: 4x at 48 kHz)."""
    return max(1, math.ceil(192_000 / sample_rate))


def _peak_envelope(frames: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per original sample, the largest absolute value of the oversampled signal around it (all channels)."""
    import soxr

    factor = _oversampling(sample_rate)
    upsampled = soxr.resample(frames, sample_rate, sample_rate * factor, quality="HQ")
    upsampled = np.asarray(upsampled).reshape(-1, frames.shape[1])
    count = frames.shape[0]
    peaks = np.abs(upsampled).max(axis=1)
    peaks = np.pad(peaks[: count * factor], (0, max(0, count * factor - peaks.shape[0])))
    return np.maximum(peaks.reshape(count, factor).max(axis=1), np.abs(frames).max(axis=1))


def true_peak_dbtp(audio: np.ndarray, sample_rate: int) -> float:
    """The oversampled (true) peak in dBTP."""
    peak = float(_peak_envelope(_as_frames(audio), sample_rate).max())
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def limit_true_peak(
    audio: np.ndarray,
    sample_rate: int,
    ceiling_dbtp: float = DEFAULT_TRUE_PEAK_DBTP,
    lookahead_s: float = 0.005,
) -> np.ndarray:
    """Look-ahead limiter: the smallest smooth gain keeping the true peak at or below ``ceiling_dbtp``.

    The gain is the needed reduction held over ``2 * lookahead`` and averaged over ``lookahead``, so it
    ramps down before each peak (no clipping) and is never above what any sample needs.
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    frames = _as_frames(audio)
    ceiling = 10 ** (ceiling_dbtp / 20)
    needed = np.minimum(1.0, ceiling / np.maximum(_peak_envelope(frames, sample_rate), 1e-12))
    if needed.min() >= 1.0:
        return _like(frames, audio)
    span = max(1, int(lookahead_s * sample_rate))
    held = minimum_filter1d(needed, size=2 * span + 1, mode="nearest")
    gain = np.minimum(uniform_filter1d(held, size=span + 1, mode="nearest"), needed)
    limited = frames * gain[:, None]
    residual = float(_peak_envelope(limited, sample_rate).max())
    if residual > ceiling:  # inter-sample overshoot created by the gain change itself: trim it evenly
        limited *= ceiling / residual
    return _like(limited, audio)


def normalize_loudness(
    audio: np.ndarray, sample_rate: int, target_lufs: float, true_peak_ceiling: float = DEFAULT_TRUE_PEAK_DBTP
) -> np.ndarray:
    """Gain to ``target_lufs`` then true-peak limiting; a second pass makes up what the limiter took.

    Silence (loudness ``-inf``) is returned unchanged.
    """
    out = np.asarray(audio, dtype=np.float32)
    for _ in range(3):
        measured = integrated_loudness(out, sample_rate)
        if not math.isfinite(measured) or abs(measured - target_lufs) < 0.05:
            break
        out = limit_true_peak(out * 10 ** ((target_lufs - measured) / 20), sample_rate, true_peak_ceiling)
    return out


def render(audio: np.ndarray, sample_rate: int, options: DeliveryOptions) -> RenderedAudio:
    """Resample, then normalise loudness if asked; measures loudness and true peak of the result."""
    rate = options.sample_rate or FORMATS[options.format].rate or sample_rate
    out = resample(audio, sample_rate, rate)
    if options.target_lufs is not None:
        out = normalize_loudness(out, rate, options.target_lufs, options.true_peak_dbtp)
    long_enough = _as_frames(out).shape[0] >= MIN_LOUDNESS_SECONDS * rate
    loudness = integrated_loudness(out, rate) if long_enough else None
    return RenderedAudio(out, rate, loudness, true_peak_dbtp(out, rate))


def encode(
    audio: np.ndarray, sample_rate: int, options: DeliveryOptions, tags: AudioTags | None = None
) -> bytes:
    """The file's bytes in ``options.format`` (audio clipped to [-1, 1]); no resampling or loudness here."""
    import soundfile as sf

    frames = np.clip(_as_frames(audio), -1.0, 1.0).astype(np.float32)
    buffer = io.BytesIO()
    container = FORMATS[options.format].container
    with sf.SoundFile(buffer, "w", sample_rate, frames.shape[1], options.subtype, format=container) as file:
        if tags is not None:  # before the first write: MP3's ID3 tag leads the stream
            for name in ("title", "comment", "software"):
                value = getattr(tags, name)
                if value:
                    setattr(file, name, value)
        file.write(frames)
    return buffer.getvalue()


def write(
    path: str | Path,
    audio: np.ndarray,
    sample_rate: int,
    options: DeliveryOptions,
    tags: AudioTags | None = None,
) -> RenderedAudio:
    """Render and write one track to ``path``; returns what was written and measured."""
    rendered = render(audio, sample_rate, options)
    Path(path).write_bytes(encode(rendered.audio, rendered.sample_rate, options, tags))
    return rendered
