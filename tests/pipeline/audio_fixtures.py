"""Audio files made by the tests: tones and noise bursts at several rates, formats and channel counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(
    seconds: float, rate: int, channels: int = 1, freq: float = 440.0, amplitude: float = 0.3
) -> np.ndarray:
    """A sine tone (plus a noise burst in the middle), ``[samples, channels]``."""
    t = np.arange(int(seconds * rate)) / rate
    signal = amplitude * np.sin(2 * np.pi * freq * t)
    burst = slice(len(t) // 2, len(t) // 2 + rate // 20)
    signal[burst] += 0.1 * np.random.default_rng(0).standard_normal(len(signal[burst]))
    columns = [signal * (1.0 if c == 0 else 0.5) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def write(path: Path, seconds: float, rate: int, channels: int = 1, **kwargs) -> Path:
    """Write a tone file; the format follows the extension (wav, flac, mp3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, rate, channels, **kwargs), rate)
    return path
