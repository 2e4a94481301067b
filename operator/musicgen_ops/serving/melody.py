"""The melody of an HTTP request: inline (``melody_base64``) or from the server's own artifact store.

An HTTP caller never makes the server read a file or URI of the caller's choosing: ``melody_uri`` is
accepted only below the artifact root the server already reads models from (``models_uri``), without
``..`` segments; anything else is refused with a 422 naming the field.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from pathlib import Path

import numpy as np

from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.pipeline.errors import InvalidParametersError
from musicgen_ops.pipeline.melody import decode_melody_bytes, read_melody
from musicgen_ops.serving.schemas import GenerateRequest


def allowed_melody_uri(uri: str, settings: ServeEnvironment) -> bool:
    """Whether the server may read ``uri`` for a caller: inside its artifact root, no ``..``."""
    root = (settings.models_uri or "").rstrip("/")
    parts = uri.split("://", 1)[-1].split("/")
    return bool(root) and uri.startswith(root + "/") and ".." not in parts and "." not in parts


def request_melody(
    params: GenerateRequest, settings: ServeEnvironment, sample_rate: int
) -> np.ndarray | None:
    """The decoded melody a request asks for, or None.

    Raises:
        InvalidParametersError: both fields given, bad base64 or audio, or a URI outside the artifact store.
    """
    if params.melody_uri and params.melody_base64:
        raise InvalidParametersError("melody_base64: give either melody_uri or melody_base64, not both")
    if params.melody_base64:
        try:
            data = base64.b64decode(params.melody_base64, validate=True)
        except (binascii.Error, ValueError) as err:
            raise InvalidParametersError(f"melody_base64: not valid base64 ({err})") from err
        return decode_melody_bytes(data, sample_rate)
    if not params.melody_uri:
        return None
    if not allowed_melody_uri(params.melody_uri, settings):
        where = f"below {settings.models_uri.rstrip('/')}/" if settings.models_uri else "(none configured)"
        raise InvalidParametersError(
            f"melody_uri: this server reads melodies only from its artifact store {where}; "
            "upload the file there or send it inline as melody_base64"
        )
    from musicgen_ops.storage import open_object

    with tempfile.TemporaryDirectory(prefix="melody-") as scratch:

        def fetch(uri: str) -> Path:
            store, key = open_object(uri)
            return Path(store.get_file(key, Path(scratch) / f"melody{Path(key).suffix.lower()}"))

        return read_melody(params.melody_uri, sample_rate, fetch)
