"""Audio a musician uploads with a generation: a clip to continue, a melody to follow.

``POST /api/v1/generations/upload`` (multipart: a JSON ``request`` part, a ``GenerationCreate``, and
optional ``audio_prompt`` / ``melody`` file parts) stages each file in a private temporary folder
(size-limited as it streams), decodes it to check it, then stores it under the studio's own
``generation-inputs/`` folder of its artifact store. Only these URIs, made by the studio, reach the
generation (``audio_prompt_uri`` / ``melody_uri``): a URI a caller writes into ``parameters`` is still
refused, and the local worker reads nothing outside that folder.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from python_multipart.multipart import parse_options_header

from musicgen_ops.storage import ArtifactStore, open_object, open_store
from musicgen_ops.studio.backend import InvalidInputError
from musicgen_ops.studio.schemas import GenerationCreate
from musicgen_ops.studio.uploads import PartCollector, StagedFile, parse_multipart

#: Folder of the artifact store (below the studio's root) holding uploaded generation inputs.
INPUTS_PREFIX = "generation-inputs"
#: File parts of an upload and the generation parameter each becomes.
INPUT_PARTS = {"audio_prompt": "audio_prompt_uri", "melody": "melody_uri"}
REQUEST_PART = "request"
#: Largest ``request`` part (a GenerationCreate as JSON).
MAX_REQUEST_BYTES = 64 * 1024
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")

UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [REQUEST_PART],
                    "properties": {
                        REQUEST_PART: {"type": "string", "description": "The GenerationCreate as JSON."},
                        "audio_prompt": {
                            "type": "string",
                            "format": "binary",
                            "description": "Optional clip to continue (the track starts with it).",
                        },
                        "melody": {
                            "type": "string",
                            "format": "binary",
                            "description": "Optional melody to follow (musicgen-melody models).",
                        },
                    },
                },
                "encoding": {REQUEST_PART: {"contentType": "application/json"}},
            }
        },
    }
}


class InputCollector(PartCollector):
    """Stages ``audio_prompt`` / ``melody`` as ``<part><suffix>`` (the caller's file name is not used)."""

    max_field_bytes = MAX_REQUEST_BYTES

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if name != REQUEST_PART:
                raise InvalidInputError(
                    f"error: {name[:40]!r}: unknown form field (expected {REQUEST_PART!r})"
                )
            self._field = (name, bytearray())
            return
        if name not in INPUT_PARTS:
            raise InvalidInputError(
                f"error: {name[:40]!r}: unknown file part (expected audio_prompt or melody)"
            )
        if any(staged.filename == name for staged in self.result.files):
            raise InvalidInputError(f"error: {name}: sent twice")
        suffix = Path(options[b"filename"].decode("utf-8", "replace")).suffix.lower()
        staged = StagedFile(name, self.staging / f"{name}{suffix if _SUFFIX.match(suffix) else ''}")
        self._file = (staged, open(staged.path, "wb"))  # noqa: SIM115 - closed in part_end
        self.result.files.append(staged)


async def receive_inputs(
    content_type: str, chunks: AsyncIterator[bytes], staging: Path, max_file_bytes: int
) -> tuple[GenerationCreate, list[StagedFile]]:
    """The generation request and its staged audio files (not yet decoded).

    Raises:
        InvalidInputError: not multipart, unknown or repeated parts, no or an invalid ``request``.
        TooLargeError: a file over ``max_file_bytes`` (reading stops there).
    """
    upload = await parse_multipart(content_type, chunks, InputCollector(staging, max_file_bytes))
    if REQUEST_PART not in upload.fields:
        raise InvalidInputError(f"error: {REQUEST_PART}: missing (the generation request as JSON)")
    try:
        request = GenerationCreate.model_validate_json(upload.fields[REQUEST_PART])
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()[:5]
        )
        raise InvalidInputError(f"error: {REQUEST_PART}: {problems}") from err
    return request, upload.files


def inputs_store(artifacts_uri: str, *scope: str) -> ArtifactStore:
    """The studio's folder of uploaded generation inputs (optionally one namespace's)."""
    store = open_store(artifacts_uri).child(INPUTS_PREFIX)
    for part in scope:
        store = store.child(part)
    return store


def store_inputs(store: ArtifactStore, files: list[StagedFile]) -> dict[str, str]:
    """Copy checked files into a fresh folder of ``store``; the generation parameters naming them."""
    folder = uuid.uuid4().hex[:12]
    uris = {}
    try:
        for staged in files:
            key = f"{folder}/{staged.path.name}"
            store.put_file(staged.path, key)
            uris[INPUT_PARTS[staged.filename]] = store.uri(key)
    except BaseException:  # nothing half-stored stays behind
        store.delete_prefix(folder)
        raise
    return uris


def with_inputs(request: GenerationCreate, uris: dict[str, str]) -> GenerationCreate:
    """The request with the studio's own input URIs (past the edge that refuses a caller's URIs)."""
    if not uris:
        return request
    return request.model_copy(update={"parameters": request.parameters.model_copy(update=uris)})


def input_fetcher(store: ArtifactStore, scratch: Path) -> Callable[[str], Path]:
    """``uri -> local file`` for the pipeline, reading only objects inside ``store``."""
    root = store.uri("").rstrip("/") + "/"

    def fetch(uri: str) -> Path:
        if not uri.startswith(root) or ".." in uri.removeprefix(root).split("/"):
            raise InvalidInputError(f"error: {uri}: not an input uploaded to this studio")
        source, key = open_object(uri)
        scratch.mkdir(parents=True, exist_ok=True)
        return Path(source.get_file(key, scratch / Path(key).name))

    return fetch
