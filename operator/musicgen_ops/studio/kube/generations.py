"""Generations on Kubernetes: the model's serving Deployment when it has ready pods, else a GenerationRequest.

Served: a worker thread POSTs the generation contract's parameters to the generator's ``/v1/generate``
(``mode=sync``, one pod answers with the audio) through the in-cluster Service named in the
TrainedModel's status, with a deadline; the audio and a small record go to
``<artifacts>/studio/generations/<namespace>/<id>/``, so every studio replica (and a restarted one)
finds them. Not served: a GenerationRequest, as a user would write one. Uploaded audio (a clip to
continue, a melody) is stored under ``<artifacts>/generation-inputs/<namespace>/``: a GenerationRequest
names it in ``spec.audioPromptUri`` / ``spec.melodyUri`` (generate-job downloads it), a served
generation sends the files to the generator's multipart ``/v1/generate/upload``. A/B: the base model's clip is
a GenerationRequest with ``useBaseModel: true`` (a generator server serves its own model only), same
prompt and seed; the fine-tuned generation names it in ``compare_id``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from musicgen_ops.api.common import API_VERSION
from musicgen_ops.api.generationrequest import GenerationRequestSpec, GenerationRequestStatus
from musicgen_ops.api.trainedmodel import TrainedModelSpec, TrainedModelStatus
from musicgen_ops.contracts.generation import MAX_SEED, GenerationParameters
from musicgen_ops.storage import ArtifactStore, open_object, open_store
from musicgen_ops.storage import NotFoundError as StorageNotFoundError
from musicgen_ops.studio.backend import ConflictError, InvalidInputError, NotFoundError
from musicgen_ops.studio.generation_inputs import INPUT_PARTS, inputs_store, store_inputs, with_inputs
from musicgen_ops.studio.kube.client import KubeClient
from musicgen_ops.studio.schemas import GenerationCreate, GenerationPublic, GenerationState
from musicgen_ops.studio.settings import StudioSettings
from musicgen_ops.studio.uploads import StagedFile

logger = logging.getLogger(__name__)

GENERATIONS, MODELS = "generationrequests", "trainedmodels"
MANAGED_BY = {"app.kubernetes.io/managed-by": "musicgen-studio"}
#: On a fine-tuned GenerationRequest: the name of its base-model twin (A/B).
COMPARE_ANNOTATION = "musicgen.io/studio-compare"
#: On a ``useBaseModel`` GenerationRequest: the base model it renders (shown instead of the TrainedModel).
BASE_MODEL_ANNOTATION = "musicgen.io/studio-base-model"
GENERATION_STATES = {"Pending": "queued", "WaitingForModel": "queued", "Running": "running"}
SERVED_PREFIX = "studio/generations"
SERVED_ID = re.compile(r"^serve-[0-9a-f]{8}$")
RECORD_NAME = "generation.json"
#: A served generation still running this long after its deadline lost its studio (restart): failed.
STALE_GRACE = timedelta(seconds=60)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def worker_pool() -> ThreadPoolExecutor:
    """The process's threads that wait for generator servers (the backend lives for one API call)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="studio-serve")
        return _pool


def created_of(obj: dict[str, Any]) -> datetime:
    """``metadata.creationTimestamp`` (now when the server gave none)."""
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else datetime.now(timezone.utc)


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


class KubeGenerations:
    """Create, list and read generations of one namespace, as the caller (see module docstring)."""

    def __init__(self, settings: StudioSettings, kube: KubeClient) -> None:
        self.settings = settings
        self.kube = kube
        self.records = open_store(settings.artifacts_uri).child(SERVED_PREFIX).child(kube.namespace)

    def create(self, request: GenerationCreate, inputs: Sequence[StagedFile] = ()) -> GenerationPublic:
        """A served generation when the model's Deployment has ready pods, else a GenerationRequest."""
        if not request.model_id:
            raise InvalidInputError("error: model_id: on Kubernetes a generation needs a TrainedModel")
        try:
            model = self.kube.get(MODELS, request.model_id)
        except NotFoundError as err:
            raise NotFoundError(
                f"error: model_id: no TrainedModel {request.model_id!r} in namespace {self.kube.namespace}"
            ) from err
        if inputs:  # stored once the caller proved access to the model; the A/B twin gets them too
            uris = store_inputs(inputs_store(self.settings.artifacts_uri, self.kube.namespace), inputs)
            request = with_inputs(request, uris)
        params = request.parameters
        if params.random_seed is None:  # A and B must share the seed
            params = params.model_copy(update={"random_seed": secrets.randbelow(MAX_SEED)})
        compare_id = None
        if request.compare_with_base:
            base_model = TrainedModelSpec.model_validate(model.get("spec") or {}).base_model
            annotations = {BASE_MODEL_ANNOTATION: base_model}
            base = self._create_request(request.model_id, params, annotations, use_base_model=True)
            compare_id = base["metadata"]["name"]
        url = serving_url(model, self.settings.serving_url_template)
        if url is None:
            annotations = {COMPARE_ANNOTATION: compare_id} if compare_id else {}
            return self._from_request(self._create_request(request.model_id, params, annotations))
        spec = TrainedModelSpec.model_validate(model.get("spec") or {})
        now = datetime.now(timezone.utc)
        timeout = self.settings.serving_timeout_seconds
        record = ServedRecord(
            id=f"serve-{uuid.uuid4().hex[:8]}",
            model=spec.model_id or request.model_id,
            parameters=params,
            created=now,
            deadline=now + timedelta(seconds=timeout),
            compare_id=compare_id,
        )
        folder = self.records.child(record.id)
        folder.put_json(RECORD_NAME, record.model_dump(mode="json"))
        worker_pool().submit(run_served, folder, record, url, timeout)
        return self._from_record(record)

    def _create_request(
        self,
        model_id: str,
        params: GenerationParameters,
        annotations: dict[str, str],
        *,
        use_base_model: bool = False,
    ) -> dict[str, Any]:
        spec = GenerationRequestSpec(
            **params.model_dump(), trained_model_id=model_id, use_base_model=use_base_model
        )
        body = {
            "apiVersion": API_VERSION,
            "kind": "GenerationRequest",
            "metadata": {
                "name": f"gen-{uuid.uuid4().hex[:8]}",
                "labels": dict(MANAGED_BY),
                "annotations": annotations,
            },
            "spec": spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
        }
        return self.kube.create(GENERATIONS, body)

    def list(self) -> list[GenerationPublic]:
        """GenerationRequests and served generations, newest first (at most 100)."""
        items = [self._from_request(obj) for obj in self.kube.list(GENERATIONS)]
        try:
            infos = [info for info in self.records.list("") if info.key.endswith(f"/{RECORD_NAME}")]
        except StorageNotFoundError:  # no bucket yet: nothing served yet
            infos = []
        infos.sort(key=lambda info: info.last_modified or datetime.min.replace(tzinfo=timezone.utc))
        for info in infos[-100:]:
            items.append(self._from_record(self._record(info.key.split("/", 1)[0])))
        return sorted(items, key=lambda g: g.created, reverse=True)[:100]

    def get(self, generation_id: str) -> GenerationPublic:
        """One generation (a served one needs read access to its TrainedModel's namespace)."""
        if SERVED_ID.match(generation_id):
            record = self._record(generation_id)
            self.kube.list(GENERATIONS)  # RBAC: the caller must be allowed to see generations here
            return self._from_record(record)
        return self._from_request(self.kube.get(GENERATIONS, generation_id))

    def file(self, generation_id: str, kind: str) -> Path:
        """The audio, cached under ``<root>/.cache/generations/<id>/``."""
        if kind != "audio":
            raise NotFoundError(
                f"error: generation {generation_id!r} has no {kind} on the Kubernetes backend"
            )
        cache = self.settings.root / ".cache" / "generations" / generation_id
        if SERVED_ID.match(generation_id):
            record = self._record(generation_id)
            self.kube.list(GENERATIONS)
            if record.state != "completed" or not record.audio_key:
                raise ConflictError(f"error: generation {generation_id!r} has no audio yet")
            store, key = self.records.child(generation_id), record.audio_key
        else:
            obj = self.kube.get(GENERATIONS, generation_id)
            status = GenerationRequestStatus.model_validate(obj.get("status") or {})
            if status.phase != "Succeeded" or not status.output_uri:
                raise ConflictError(f"error: generation {generation_id!r} has no audio yet")
            store, key = open_object(status.output_uri)
        target = cache / Path(key).name
        if not target.is_file():
            store.get_file(key, target)
        return target

    def _record(self, generation_id: str) -> ServedRecord:
        if not SERVED_ID.match(generation_id) or not self.records.exists(f"{generation_id}/{RECORD_NAME}"):
            raise NotFoundError(f"error: no generation {generation_id!r}")
        record = ServedRecord.model_validate(self.records.get_json(f"{generation_id}/{RECORD_NAME}"))
        if record.state == "running" and datetime.now(timezone.utc) > record.deadline + STALE_GRACE:
            error = "error: the studio stopped before the generator answered: generate again"
            record = record.model_copy(update={"state": "failed", "error": error})
        return record

    @staticmethod
    def _from_record(record: ServedRecord) -> GenerationPublic:
        done = record.state == "completed"
        return GenerationPublic(
            id=record.id,
            state=record.state,
            model=record.model,
            is_base=False,
            parameters=record.parameters,
            created=record.created,
            compare_id=record.compare_id,
            error=record.error,
            audio_url=f"/api/v1/generations/{record.id}/audio" if done else None,
        )

    @staticmethod
    def _from_request(obj: dict[str, Any]) -> GenerationPublic:
        metadata = obj["metadata"]
        name = metadata["name"]
        annotations = metadata.get("annotations") or {}
        spec = GenerationRequestSpec.model_validate(obj.get("spec") or {})
        status = GenerationRequestStatus.model_validate(obj.get("status") or {})
        phase = status.phase or "Pending"
        done = phase == "Succeeded"
        try:
            parameters = GenerationParameters.pick(spec)
        except ValidationError as err:
            raise InvalidInputError(f"error: GenerationRequest {name} has invalid parameters: {err}") from err
        model = spec.trained_model_id
        if spec.use_base_model:
            model = annotations.get(BASE_MODEL_ANNOTATION) or f"base of {spec.trained_model_id}"
        return GenerationPublic(
            id=name,
            state=GENERATION_STATES.get(phase, "completed" if done else "failed"),
            model=model,
            is_base=spec.use_base_model,
            parameters=parameters,
            created=created_of(obj),
            compare_id=annotations.get(COMPARE_ANNOTATION),
            error=status.message if phase == "Failed" else None,
            audio_url=f"/api/v1/generations/{name}/audio" if done else None,
        )
