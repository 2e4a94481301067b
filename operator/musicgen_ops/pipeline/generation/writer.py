"""Write a generated track: the audio, a JSON sidecar and optionally a spectrogram PNG, atomically.

Each file is written to a temporary name in the same folder and renamed into place, so readers never
see a partial file. The sidecar is written last: its presence means the result is complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from musicgen_ops.contracts.generation import GenerationParameters, GenerationResult
from musicgen_ops.pipeline.audio_output import AudioTags, DeliveryOptions, RenderedAudio, encode, render
from musicgen_ops.pipeline.filemodes import make_public


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    The file gets the mode a plain ``open()`` would give it (0644 under the usual umask 022), not the
    private 0600 of the temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        make_public(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_audio(
    path: Path, audio: np.ndarray, sample_rate: int, options: DeliveryOptions, tags: AudioTags | None = None
) -> tuple[RenderedAudio, str]:
    """Render the track as asked (rate, loudness, true peak) and write it atomically in ``options.format``;
    returns what was written and the file's sha256."""
    rendered = render(audio, sample_rate, options)
    data = encode(rendered.audio, rendered.sample_rate, options, tags)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return rendered, hashlib.sha256(data).hexdigest()


def write_spectrogram(path: Path, audio: np.ndarray, sample_rate: int, title: str) -> Path:
    """A log-magnitude spectrogram PNG (matplotlib's Agg backend, no display needed)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3), dpi=100)
    ax = fig.add_subplot()
    audio = np.asarray(audio)
    audio = audio.mean(axis=0) if audio.ndim == 2 else audio  # (channels, samples): the mix
    nfft = 1024 if len(audio) >= 1024 else max(16, 2 ** int(np.log2(max(len(audio), 16))))
    ax.specgram(np.asarray(audio, dtype=np.float32) + 1e-9, NFFT=nfft, Fs=sample_rate, noverlap=nfft // 2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title[:90])
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_result(
    audio_path: Path,
    audio: np.ndarray,
    *,
    sample_rate: int,
    result_id: str,
    model_id: str,
    conditioning_text: str,
    parameters: GenerationParameters,
    seed: int,
    output_format: str,
    windows: int,
    batch_size: int,
    started: float,
    clock: Callable[[], float],
    spectrogram: bool = False,
    decoder: str = "encodec",
) -> GenerationResult:
    """Write audio, optional spectrogram and the JSON sidecar; returns what the sidecar holds.

    ``started`` and ``clock`` measure ``wall_seconds`` (from ``started`` until the files are written).
    """
    audio_path = Path(audio_path)
    options = DeliveryOptions.for_parameters(parameters)
    tags = AudioTags.for_track(conditioning_text, seed=seed, model=model_id, decoder=decoder)
    rendered, digest = write_audio(audio_path, audio, sample_rate, options, tags)
    png = None
    if spectrogram:
        png = write_spectrogram(
            audio_path.with_suffix(".png"), rendered.audio, rendered.sample_rate, conditioning_text
        )
    sidecar = audio_path.with_suffix(".json")
    num_samples = rendered.audio.shape[-1]
    duration = num_samples / rendered.sample_rate
    wall = clock() - started
    result = GenerationResult(
        id=result_id,
        audio_path=str(audio_path),
        sidecar_path=str(sidecar),
        spectrogram_path=str(png) if png else None,
        model_id=model_id,
        conditioning_text=conditioning_text,
        parameters=parameters,
        seed=seed,
        sample_rate=rendered.sample_rate,
        duration_seconds=duration,
        num_samples=num_samples,
        output_format=output_format,
        bit_depth=parameters.bit_depth,
        decoder=decoder,
        loudness_lufs=_rounded(rendered.loudness_lufs),
        true_peak_dbtp=_rounded(rendered.true_peak_dbtp),
        windows=windows,
        batch_size=batch_size,
        wall_seconds=round(wall, 4),
        real_time_factor=round(wall / duration, 4) if duration else 0.0,
        audio_sha256=digest,
        created=datetime.now(timezone.utc),
        channels=1 if rendered.audio.ndim == 1 else int(rendered.audio.shape[0]),
    )
    payload = json.dumps(result.model_dump(mode="json"), indent=2) + "\n"
    atomic_write(sidecar, lambda tmp: tmp.write_text(payload))
    return result


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None and math.isfinite(value) else None
