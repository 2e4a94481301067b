"""Audio inputs of a generation request: the clip it continues and the melody it follows.

Two ways in:

* JSON (``POST /v1/generate``): inline base64 within ``MUSICGEN_SERVE_MAX_BODY_BYTES``, or a URI inside
  the server's own artifact store (see ``prompts`` and ``melody``);
* multipart (``POST /v1/generate/upload``): a JSON ``parameters`` part and optional ``audio_prompt`` /
  ``melody`` file parts, each read as it streams and refused (413, naming the part) past
  ``MUSICGEN_SERVE_MAX_AUDIO_UPLOAD_BYTES``. The parts stay in memory (nothing is written to disk),
  are decoded once to check them before any work starts, and join the request as its inline fields,
  so both ways share one request shape (and an asynchronous job keeps its audio across a restart).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.pipeline.audio import decode_audio_bytes
from musicgen_ops.pipeline.errors import InvalidParametersError
from musicgen_ops.pipeline.melody import require_melody_support
from musicgen_ops.serving.errors import PayloadTooLargeError, describe_request_errors
from musicgen_ops.serving.melody import request_melody
from musicgen_ops.serving.prompts import request_prompt
from musicgen_ops.serving.schemas import GenerateRequest

#: The file parts of an upload and the inline request field each becomes.
AUDIO_PARTS = {"audio_prompt": "audio_prompt_base64", "melody": "melody_base64"}
PARAMETERS_PART = "parameters"

#: OpenAPI of the multipart body (FastAPI cannot declare a streamed body itself).
UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [PARAMETERS_PART],
                    "properties": {
                        PARAMETERS_PART: {
                            "type": "string",
                            "description": "The generation request as JSON (the body of POST /v1/generate).",
                        },
                        "audio_prompt": {
                            "type": "string",
                            "format": "binary",
                            "description": "Optional clip to continue (WAV/FLAC/OGG/MP3).",
                        },
                        "melody": {
                            "type": "string",
                            "format": "binary",
                            "description": "Optional melody to follow (musicgen-melody models).",
                        },
                    },
                },
                "encoding": {PARAMETERS_PART: {"contentType": "application/json"}},
            }
        },
    }
}


def _invalid(line: str) -> InvalidParametersError:
    return InvalidParametersError(line, fields=[line])


@dataclass
class _Parts:
    """What python-multipart hands over, one part at a time, with the limits applied as it streams."""

    max_audio_bytes: int
    max_parameters_bytes: int
    values: dict[str, bytearray] = field(default_factory=dict)
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _name: bytes = b""
    _value: bytes = b""
    _current: str | None = None

    def callbacks(self) -> dict[str, Any]:
        def on_header_field(data: bytes, start: int, end: int) -> None:
            self._name += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            self._value += data[start:end]

        return {
            "on_part_begin": self._headers.clear,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
        }

    def _header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name, self._value = b"", b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name not in (PARAMETERS_PART, *AUDIO_PARTS):
            raise _invalid(
                f"{name[:40] or '(unnamed part)'}: unknown part (expected parameters, audio_prompt, melody)"
            )
        if name in self.values:
            raise _invalid(f"{name}: sent twice")
        self.values[name] = bytearray()
        self._current = name

    def _data(self, data: bytes, start: int, end: int) -> None:
        assert self._current is not None
        value = self.values[self._current]
        value.extend(data[start:end])
        if self._current == PARAMETERS_PART and len(value) > self.max_parameters_bytes:
            raise PayloadTooLargeError(
                f"parameters: over the limit of {self.max_parameters_bytes} bytes "
                "(MUSICGEN_SERVE_MAX_BODY_BYTES)"
            )
        if self._current != PARAMETERS_PART and len(value) > self.max_audio_bytes:
            raise PayloadTooLargeError(
                f"{self._current}: the file is over the limit of {self.max_audio_bytes} bytes "
                "(MUSICGEN_SERVE_MAX_AUDIO_UPLOAD_BYTES)"
            )


def check_audio(data: bytes, part: str) -> None:
    """Decode ``data`` fully (at its own rate) or raise an InvalidParametersError naming ``part``."""
    decode_audio_bytes(data, part)


async def read_upload(
    content_type: str, chunks: AsyncIterator[bytes], settings: ServeEnvironment
) -> GenerateRequest:
    """The request a multipart upload describes, its audio parts checked and carried inline.

    Raises:
        InvalidParametersError: not multipart, an unknown or repeated part, no or invalid parameters,
            a part that is not audio (each names the part).
        PayloadTooLargeError: a part over its limit (reading stops there).
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise _invalid("body: send multipart/form-data (a JSON 'parameters' part and optional audio parts)")
    parts = _Parts(settings.max_audio_upload_bytes, settings.max_body_bytes)
    parser = MultipartParser(options[b"boundary"], parts.callbacks())
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as err:
        raise _invalid(f"body: not a well-formed multipart body ({err})") from err
    if PARAMETERS_PART not in parts.values:
        raise _invalid("parameters: missing (the generation request as JSON)")
    try:
        params = GenerateRequest.model_validate_json(bytes(parts.values[PARAMETERS_PART]))
    except ValidationError as err:
        lines = [f"parameters.{line}" for line in describe_request_errors(list(err.errors()))]
        raise InvalidParametersError(
            f"{len(lines)} invalid parameter(s): " + "; ".join(lines), fields=lines
        ) from err
    inline: dict[str, str] = {}
    for part, request_field in AUDIO_PARTS.items():
        if part not in parts.values:
            continue
        if getattr(params, request_field) is not None:
            raise _invalid(f"{part}: also given as parameters.{request_field}: send one of them")
        data = bytes(parts.values.pop(part))
        await asyncio.to_thread(check_audio, data, part)
        inline[request_field] = base64.b64encode(data).decode("ascii")
    return params.model_copy(update=inline) if inline else params


def request_audio(
    params: GenerateRequest, settings: ServeEnvironment, engine: Any, model: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The decoded melody and audio prompt of a request (each None when absent), at the engine's rate.

    Raises:
        InvalidParametersError: a melody for a model that takes none, or audio that does not decode.
    """
    wanted = bool(params.melody_uri or params.melody_base64)
    require_melody_support(
        engine, model, wanted, field="melody_uri" if params.melody_uri else "melody_base64"
    )
    melody = request_melody(params, settings, engine.sample_rate)
    prompt = request_prompt(params, settings, engine.sample_rate)
    return melody, prompt
