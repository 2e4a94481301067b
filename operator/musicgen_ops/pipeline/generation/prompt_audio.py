"""A user's audio prompt: a local file decoded to the model's rate, then encoded to codes by the engine.

The caller fetches ``audio_prompt_uri`` (the CLI and the generate-job through storage, the server only
from its own artifact store) and hands over a local file; the pipeline never opens a path a request names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from musicgen_ops.pipeline.audio import decode_audio_bytes, load_audio, resample, to_mono
from musicgen_ops.pipeline.errors import AudioDecodeError, InvalidParametersError

FIELD = "audio_prompt_uri"


def _invalid(reason: str) -> InvalidParametersError:
    line = f"{FIELD}: {reason}"
    return InvalidParametersError(line, fields=[line])


def read_audio_prompt(
    uri: str | None, sample_rate: int, fetch: Callable[[str], Path] | None
) -> np.ndarray | None:
    """The clip a request's ``audio_prompt_uri`` names, fetched by ``fetch`` and decoded; None without one.

    Raises:
        InvalidParametersError: no ``fetch`` (this caller reads no audio prompts), a missing or
            undecodable file.
    """
    if uri is None:
        return None
    if fetch is None:
        raise _invalid(f"{uri}: audio prompts are not read here")
    return load_audio_prompt(fetch(uri), sample_rate)


def load_audio_prompt(path: Path, sample_rate: int) -> np.ndarray:
    """Any readable clip (any rate, any channels) as float32 mono ``[samples]`` at ``sample_rate``.

    Raises:
        InvalidParametersError: missing or undecodable file (the reason named).
    """
    if not path.is_file():
        raise _invalid(f"{path}: no such file")
    try:
        audio, rate = load_audio(path)
    except AudioDecodeError as err:
        raise _invalid(f"cannot decode the clip: {err}") from err
    return resample(to_mono(audio), rate, sample_rate).astype(np.float32, copy=False)


def encode_prompt(engine: Any, audio: np.ndarray) -> np.ndarray:
    """The clip's codes ``[1, K, frames]`` by the engine's codec encoder.

    Raises:
        InvalidParametersError: the engine has no codec encoder (exported engines), or the clip is
            shorter than one codec frame.
    """
    encode = getattr(engine, "encode_audio", None)
    if encode is None:
        raise _invalid(
            f"the {type(engine).__name__} has no codec encoder to read an audio prompt; "
            "use engine torch or fast (or auto)"
        )
    try:
        return encode(np.asarray(audio, dtype=np.float32)[None])
    except ValueError as err:
        raise _invalid(str(err)) from err


def decode_audio_prompt_bytes(
    data: bytes, sample_rate: int, *, field: str = "audio_prompt_base64"
) -> np.ndarray:
    """A clip sent inline (WAV/FLAC/OGG/MP3 bytes) as float32 mono ``[samples]`` at ``sample_rate``.

    Raises:
        InvalidParametersError: not decodable audio, or no usable samples (naming ``field``).
    """
    audio, rate = decode_audio_bytes(data, field)
    return resample(to_mono(audio), rate, sample_rate).astype(np.float32, copy=False)
