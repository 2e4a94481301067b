"""Audio prompts of HTTP requests: inline, or read only from the server's own artifact store.

A request sends its clip inline (``audio_prompt_base64``, within the body limit) or names it by
``audio_prompt_uri``; the server fetches a URI only when it lies under
``models_uri`` (the artifact store it already reads models from; upload the clip there first, e.g.
with the studio's presigned upload) or, with ``allow_local_paths`` (CLI and tests), from a local path.
Anything else is answered 400 before any work starts, so an HTTP caller can never make the server
read a file of its choosing.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from pathlib import Path

import numpy as np

from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.pipeline.errors import InvalidParametersError
from musicgen_ops.pipeline.generation.prompt_audio import decode_audio_prompt_bytes, load_audio_prompt
from musicgen_ops.serving.schemas import GenerateRequest
from musicgen_ops.storage import open_object
from musicgen_ops.storage.base import NotFoundError, StorageError
from musicgen_ops.storage.uri import StorageURI, parse_uri


def _invalid(reason: str) -> InvalidParametersError:
    line = f"audio_prompt_uri: {reason}"
    return InvalidParametersError(line, fields=[line])


def _within(uri: StorageURI, root: StorageURI) -> bool:
    if (uri.scheme, uri.bucket) != (root.scheme, root.bucket):
        return False
    if uri.scheme == "file":
        return Path(uri.key).is_relative_to(Path(root.key)) and uri.key != root.key
    return not root.key or uri.key.startswith(root.key.rstrip("/") + "/")


def prompt_location(uri: str, settings: ServeEnvironment) -> StorageURI:
    """Where the server reads ``uri`` from, when it may (no I/O).

    Raises:
        InvalidParametersError: a malformed URI, or one outside the server's artifact store.
    """
    try:
        parsed = parse_uri(uri)
    except (StorageError, ValueError) as err:
        raise _invalid(str(err)) from err
    if settings.models_uri and _within(parsed, parse_uri(settings.models_uri)):
        return parsed
    if settings.allow_local_paths and parsed.scheme == "file":
        return parsed
    where = f"under {settings.models_uri.rstrip('/')}/" if settings.models_uri else "(none configured)"
    raise _invalid(f"{uri}: this server reads audio prompts only from its artifact store {where}")


def load_request_prompt(uri: str, settings: ServeEnvironment, sample_rate: int) -> np.ndarray:
    """The clip ``uri`` names, fetched and decoded to float32 mono at ``sample_rate``.

    Raises:
        InvalidParametersError: not readable by this server, missing, or undecodable.
    """
    location = prompt_location(uri, settings)
    if location.scheme == "file":
        return load_audio_prompt(Path(location.key), sample_rate)
    store, key = open_object(str(location))
    with tempfile.TemporaryDirectory(prefix="audio-prompt-") as scratch:
        local = Path(scratch) / f"prompt{Path(key).suffix.lower()}"
        try:
            store.get_file(key, local)
        except NotFoundError as err:
            raise _invalid(f"{uri}: no such object") from err
        return load_audio_prompt(local, sample_rate)


def check_request_prompt(params: GenerateRequest, settings: ServeEnvironment) -> None:
    """Refuse a request's audio prompt before any work (no I/O): both forms, or a URI out of bounds."""
    if params.audio_prompt_uri is not None and params.audio_prompt_base64 is not None:
        line = "audio_prompt_base64: give either audio_prompt_uri or audio_prompt_base64, not both"
        raise InvalidParametersError(line, fields=[line])
    if params.audio_prompt_uri is not None:
        prompt_location(params.audio_prompt_uri, settings)


def request_prompt(
    params: GenerateRequest, settings: ServeEnvironment, sample_rate: int
) -> np.ndarray | None:
    """The decoded clip a request continues (inline or from the artifact store), or None."""
    check_request_prompt(params, settings)
    if params.audio_prompt_base64 is not None:
        try:
            data = base64.b64decode(params.audio_prompt_base64, validate=True)
        except (binascii.Error, ValueError) as err:
            line = f"audio_prompt_base64: not valid base64 ({err})"
            raise InvalidParametersError(line, fields=[line]) from err
        return decode_audio_prompt_bytes(data, sample_rate)
    if params.audio_prompt_uri is not None:
        return load_request_prompt(params.audio_prompt_uri, settings, sample_rate)
    return None
