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

import contextlib
import logging
import re
import secrets
import shutil
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from musicgen_ops.api.common import API_VERSION, GROUP
from musicgen_ops.api.generationrequest import GenerationRequestSpec, GenerationRequestStatus
from musicgen_ops.api.trainedmodel import TrainedModelSpec
from musicgen_ops.contracts.generation import MAX_SEED, GenerationParameters
from musicgen_ops.storage import NotFoundError as StorageNotFoundError
from musicgen_ops.storage import StorageError, open_object, open_store
from musicgen_ops.studio.auth import ForbiddenError
from musicgen_ops.studio.backend import ConflictError, InvalidInputError, NotFoundError
from musicgen_ops.studio.generation_inputs import inputs_store, store_inputs, with_inputs
from musicgen_ops.studio.kube.client import KubeClient
from musicgen_ops.studio.kube.served import RECORD_NAME, ServedRecord, run_served, serving_url, worker_pool
from musicgen_ops.studio.retention import Throttle, delete_input_folders, input_folders, sweep_input_folders
from musicgen_ops.studio.schemas import GenerationCreate, GenerationPublic
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
OUTPUTS_PREFIX = "generations"
#: Sweeps of each namespace's generation inputs, piggy-backed on listing (one per interval and process).
SWEEPS = Throttle()
SERVED_ID = re.compile(r"^serve-[0-9a-f]{8}$")
#: A served generation still running this long after its deadline lost its studio (restart): failed.
STALE_GRACE = timedelta(seconds=60)


def created_of(obj: dict[str, Any]) -> datetime:
    """``metadata.creationTimestamp`` (now when the server gave none)."""
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else datetime.now(timezone.utc)


class KubeGenerations:
    """Create, list and read generations of one namespace, as the caller (see module docstring)."""

    def __init__(self, settings: StudioSettings, kube: KubeClient) -> None:
        self.settings = settings
        self.kube = kube
        self.records = open_store(settings.artifacts_uri).child(SERVED_PREFIX).child(kube.namespace)
        self.inputs = inputs_store(settings.artifacts_uri, kube.namespace)
        #: Where the operator writes a GenerationRequest's audio by default (``generations/<ns>/<name>/``).
        self.outputs = open_store(settings.artifacts_uri).child(OUTPUTS_PREFIX).child(kube.namespace)

    def create(self, request: GenerationCreate, inputs: Sequence[StagedFile] = ()) -> GenerationPublic:
        """A served generation when the model's Deployment has ready pods, else a GenerationRequest."""
        model_id = request.model_id
        if not model_id:
            raise InvalidInputError("error: model_id: on Kubernetes a generation needs a TrainedModel")
        try:
            model = self.kube.get(MODELS, request.model_id)
        except NotFoundError as err:
            raise NotFoundError(
                f"error: model_id: no TrainedModel {request.model_id!r} in namespace {self.kube.namespace}"
            ) from err
        if inputs:  # stored once the caller proved access to the model; the A/B twin gets them too
            request = with_inputs(request, store_inputs(self.inputs, inputs))
        params = request.parameters
        if params.random_seed is None:  # A and B must share the seed
            params = params.model_copy(update={"random_seed": secrets.randbelow(MAX_SEED)})
        created: list[str] = []
        try:
            return self._create(model_id, request.compare_with_base, model, params, created)
        except BaseException:  # nothing half-made stays: the base twin, then the inputs no one names
            for name in created:
                with contextlib.suppress(Exception):
                    self.kube.delete(GENERATIONS, name)
            delete_input_folders(self.inputs, input_folders(self.inputs, [params]))
            raise

    def _create(
        self,
        model_id: str,
        compare_with_base: bool,
        model: dict[str, Any],
        params: GenerationParameters,
        created: list[str],
    ) -> GenerationPublic:
        """The GenerationRequest(s) or served generation; ``created`` collects what a failure must undo."""
        compare_id = None
        if compare_with_base:
            base_model = TrainedModelSpec.model_validate(model.get("spec") or {}).base_model
            annotations = {BASE_MODEL_ANNOTATION: base_model}
            base = self._create_request(model_id, params, annotations, use_base_model=True)
            compare_id = base["metadata"]["name"]
            created.append(compare_id)
        url = serving_url(model, self.settings.serving_url_template)
        if url is None:
            annotations = {COMPARE_ANNOTATION: compare_id} if compare_id else {}
            return self._from_request(self._create_request(model_id, params, annotations))
        spec = TrainedModelSpec.model_validate(model.get("spec") or {})
        now = datetime.now(timezone.utc)
        timeout = self.settings.serving_timeout_seconds
        record = ServedRecord(
            id=f"serve-{uuid.uuid4().hex[:8]}",
            model=spec.model_id or model_id,
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
        if SWEEPS.due(self.inputs.uri(""), self.settings.sweep_interval_seconds):
            try:  # the caller just listed every GenerationRequest: sweep orphaned inputs now
                self.sweep(items)
            except StorageError as err:
                logger.warning("sweeping generation inputs failed: %s", err)
        try:
            infos = [info for info in self.records.list("") if info.key.endswith(f"/{RECORD_NAME}")]
        except StorageNotFoundError:  # no bucket yet: nothing served yet
            infos = []
        infos.sort(key=lambda info: info.last_modified or datetime.min.replace(tzinfo=timezone.utc))
        for info in infos[-100:]:
            items.append(self._from_record(self._record(info.key.split("/", 1)[0])))
        names = {item.id for item in items}
        items = [  # a twin deleted on its own leaves its partner's compare_id pointing at nothing
            item
            if item.compare_id in names or item.compare_id is None
            else item.model_copy(update={"compare_id": None})
            for item in items
        ]
        return sorted(items, key=lambda g: g.created, reverse=True)[:100]

    def delete(self, generation_id: str) -> None:
        """Delete a generation (a GenerationRequest as the caller, or a served record), its A/B twin,
        the audio and the uploaded inputs. A base twin deleted alone keeps the inputs its partner names."""
        if SERVED_ID.match(generation_id):
            record = self._record(generation_id)
            if not self.kube.can("delete", GENERATIONS):  # a served record is no Kubernetes object
                raise ForbiddenError(
                    f"error: Kubernetes RBAC does not let your token delete {GENERATIONS}.{GROUP} in "
                    f"namespace {self.kube.namespace}, so it cannot delete generation {generation_id!r}"
                )
            if record.state == "running":
                raise ConflictError(
                    f"error: generation {generation_id!r} is running: delete it once it has finished"
                )
            if record.compare_id:
                with contextlib.suppress(NotFoundError):
                    self._delete_request(record.compare_id)
            self.records.delete_prefix(generation_id)
            named = [record.parameters]
        else:
            obj = self._delete_request(generation_id)
            twin = (obj["metadata"].get("annotations") or {}).get(COMPARE_ANNOTATION)
            if twin:
                with contextlib.suppress(NotFoundError):
                    self._delete_request(twin)
            spec = GenerationRequestSpec.model_validate(obj.get("spec") or {})
            named = [] if spec.use_base_model else [GenerationParameters.pick(spec)]
        delete_input_folders(self.inputs, input_folders(self.inputs, named))
        shutil.rmtree(self.settings.root / ".cache" / "generations" / generation_id, ignore_errors=True)

    def _delete_request(self, name: str) -> dict[str, Any]:
        """Delete one GenerationRequest (as the caller) and its audio at the operator's default place."""
        obj = self.kube.get(GENERATIONS, name)
        self.kube.delete(GENERATIONS, name)  # the operator removes its Job, not the audio
        if not (obj.get("spec") or {}).get("outputUri"):
            self.outputs.delete_prefix(name)
        shutil.rmtree(self.settings.root / ".cache" / "generations" / name, ignore_errors=True)
        return obj

    def sweep(self, requests: list[GenerationPublic], now: datetime | None = None) -> list[str]:
        """Delete this namespace's input folders that neither ``requests`` (every GenerationRequest, as
        the caller listed them) nor a served record names, once older than the retention."""
        try:
            keys = [info.key for info in self.records.list("") if info.key.endswith(f"/{RECORD_NAME}")]
        except StorageNotFoundError:
            keys = []
        named = [g.parameters for g in requests]
        for key in keys:
            with contextlib.suppress(StorageError, ValidationError):
                named.append(ServedRecord.model_validate(self.records.get_json(key)).parameters)
        referenced = input_folders(self.inputs, named)
        return sweep_input_folders(self.inputs, referenced, self.settings.retention, now)

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
