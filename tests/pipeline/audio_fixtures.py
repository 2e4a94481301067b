"""Audio files made by the tests: tones and noise bursts at several rates, formats and channel counts.

soundfile (libsndfile >= 1.1) writes WAV, FLAC and MP3, so every fixture is a real encoded file.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import soundfile as sf

RATES = (8_000, 22_050, 44_100, 48_000)
FORMATS = ("wav", "flac", "mp3")
CHANNELS = (1, 2)
# Every (format, rate, channels) combination the preprocessor must accept.
MATRIX = tuple(itertools.product(FORMATS, RATES, CHANNELS))


def tone(
    seconds: float, rate: int, channels: int = 1, freq: float = 440.0, amplitude: float = 0.3
) -> np.ndarray:
    """A sine tone (plus a noise burst in the middle), ``[samples, channels]``; channel 2 is half as loud."""
    t = np.arange(int(seconds * rate)) / rate
    signal = amplitude * np.sin(2 * np.pi * freq * t)
    burst = slice(len(t) // 2, len(t) // 2 + rate // 20)
    signal[burst] += 0.1 * np.random.default_rng(0).standard_normal(len(signal[burst]))
    columns = [signal * (1.0 if c == 0 else 0.5) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def noise_bursts(
    seconds: float, rate: int, channels: int = 1, every: float = 0.25, seed: int = 0
) -> np.ndarray:
    """Short decaying white-noise bursts (drum-like hits) every ``every`` seconds, ``[samples, channels]``."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * rate), dtype=np.float32)
    hit_len = int(0.05 * rate)
    hit = rng.standard_normal(hit_len) * np.exp(-np.arange(hit_len) / (0.01 * rate))
    for start in range(0, len(out), max(1, int(every * rate))):
        n = min(hit_len, len(out) - start)
        out[start : start + n] += 0.4 * hit[:n]
    return np.repeat(out[:, None], channels, axis=1)


def write(path: Path, seconds: float, rate: int, channels: int = 1, **kwargs) -> Path:
    """Write a tone file; the format follows the extension (wav, flac, mp3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, rate, channels, **kwargs), rate)
    return path


def write_noise(path: Path, seconds: float, rate: int, channels: int = 1) -> Path:
    """Write a noise-burst file; the format follows the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, noise_bursts(seconds, rate, channels), rate)
    return path


def write_bad_files(root: Path) -> dict[str, str]:
    """Corrupt, empty, silent and unsupported files; returns ``{name: words its skip reason contains}``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    (root / "garbage.flac").write_bytes(np.random.default_rng(1).bytes(4096))
    (root / "junk.mp3").write_bytes(b"this is no mpeg stream")
    (root / "empty.mp3").write_bytes(b"")
    (root / "notes.pdf").write_bytes(b"%PDF-1.4")
    sf.write(root / "silent.wav", np.zeros(16_000, dtype=np.float32), 16_000)
    return {
        "corrupt.wav": "cannot decode",
        "garbage.flac": "cannot decode",
        "junk.mp3": "not a real MP3 file",
        "empty.mp3": "empty file",
        "notes.pdf": "unsupported format",
        "silent.wav": "silent",
    }
