"""Generations made by a TrainedModel's serving Deployment: the generator call and the studio's record.

A worker thread POSTs the generation contract's parameters to the generator's ``/v1/generate``
(``mode=sync``); the audio and a :class:`ServedRecord` go to
``<artifacts>/studio/generations/<namespace>/<id>/``.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from musicgen_ops.api.trainedmodel import TrainedModelSpec, TrainedModelStatus
from musicgen_ops.contracts.generation import GenerationParameters
from musicgen_ops.storage import ArtifactStore, open_object
from musicgen_ops.studio.generation_inputs import INPUT_PARTS
from musicgen_ops.studio.schemas import GenerationState

logger = logging.getLogger(__name__)

RECORD_NAME = "generation.json"

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def worker_pool() -> ThreadPoolExecutor:
    """The process's threads that wait for generator servers (the backend lives for one API call)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="studio-serve")
        return _pool


class ServedRecord(BaseModel):
    """A generation made by a serving Deployment, as the studio keeps it beside the audio."""

    id: str
    model: str
    parameters: GenerationParameters
    created: datetime
    deadline: datetime
    state: GenerationState = "running"
    compare_id: str | None = None
    error: str | None = None
    audio_key: str | None = None


class GeneratorError(Exception):
    """The generator server refused or failed the request (the message is shown to the user)."""


def serving_url(model: dict[str, Any], template: str | None) -> str | None:
    """Base URL of the TrainedModel's generator Service when it serves with ready pods, else None.

    ``template`` (tests, port-forwards) may use ``{serving_url}``, ``{name}``, ``{namespace}``, ``{port}``.
    """
    spec = TrainedModelSpec.model_validate(model.get("spec") or {})
    status = TrainedModelStatus.model_validate(model.get("status") or {})
    if not spec.serving.enabled or not status.serving_url or not (status.ready_replicas or 0) > 0:
        return None
    if template is None:
        return status.serving_url
    metadata = model.get("metadata") or {}
    return template.format(
        serving_url=status.serving_url,
        name=metadata.get("name", ""),
        namespace=metadata.get("namespace", ""),
        port=spec.serving.port,
    )


def call_generator(url: str, model_id: str, params: GenerationParameters, timeout: float) -> httpx.Response:
    """``POST <url>/v1/generate?mode=sync``: the generator's request is the contract plus the model id.

    With uploaded audio (``audio_prompt_uri`` / ``melody_uri`` in the studio's store) the files go as
    parts of ``POST <url>/v1/generate/upload``: the generator reads no URI of the studio's store.
    """
    audio = {
        part: params_uri for part, field in INPUT_PARTS.items() if (params_uri := getattr(params, field))
    }
    body = {
        **params.model_dump(mode="json", exclude_none=True, exclude=set(INPUT_PARTS.values())),
        "trained_model_id": model_id,
    }
    request: dict[str, Any] = {"json": body}
    if audio:
        files: dict[str, Any] = {"parameters": (None, json.dumps(body), "application/json")}
        for part, uri in audio.items():
            store, key = open_object(uri)
            files[part] = (Path(key).name, store.get_bytes(key), "application/octet-stream")
        request = {"files": files}
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/v1/generate" + ("/upload" if audio else ""),
            params={"mode": "sync"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            **request,
        )
    except httpx.TimeoutException as err:
        raise GeneratorError(f"error: the generator at {url} did not answer within {timeout:g} s") from err
    except httpx.HTTPError as err:
        raise GeneratorError(f"error: the generator at {url} is unreachable: {err}") from err
    if response.status_code != 200:
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text
        raise GeneratorError(f"error: the generator answered HTTP {response.status_code}: {message}")
    return response


def run_served(folder: ArtifactStore, record: ServedRecord, url: str, timeout: float) -> None:
    """Generate through the server and store the audio, then the record (completed or failed)."""
    try:
        response = call_generator(url, record.model, record.parameters, timeout)
        key = f"audio.{record.parameters.output_format}"
        folder.put_bytes(key, response.content, content_type=response.headers.get("content-type", ""))
        seed = int(response.headers.get("x-seed", record.parameters.random_seed or 0))
        update: dict[str, Any] = {
            "state": "completed",
            "audio_key": key,
            "parameters": record.parameters.model_copy(update={"random_seed": seed}),
        }
    except GeneratorError as err:
        update = {"state": "failed", "error": str(err)}
    except Exception as err:  # the user sees why; the log has the traceback
        logger.exception("served generation %s failed", record.id)
        update = {"state": "failed", "error": f"error: {type(err).__name__}: {err}"}
    folder.put_json(RECORD_NAME, record.model_copy(update=update).model_dump(mode="json"))
