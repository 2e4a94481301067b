"""The Kubernetes backend: trainings are TrainingJobs, models TrainedModels, generations the model's
serving Deployment or GenerationRequests (:mod:`musicgen_ops.studio.kube.generations`).

One instance per API call, bound to the caller's bearer token (see :mod:`musicgen_ops.studio.kube`).
Datasets are folders in the operator's artifact store; training progress comes from watching the
TrainingJob, whose status the operator fills from the run's ``progress.json``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from musicgen_ops.api.common import API_VERSION
from musicgen_ops.api.trainedmodel import TrainedModelSpec, TrainedModelStatus
from musicgen_ops.api.trainingjob import TrainingJobSpec, TrainingJobStatus
from musicgen_ops.contracts.manifest import TrainingSummary
from musicgen_ops.contracts.progress import CheckpointSample, TrainingProgress
from musicgen_ops.contracts.training import TrainingRecipe
from musicgen_ops.storage import StorageError, open_object, read_manifest
from musicgen_ops.studio.backend import ConflictError, InvalidInputError, NotFoundError
from musicgen_ops.studio.datasets import StoreDatasets
from musicgen_ops.studio.kube.client import KubeClient
from musicgen_ops.studio.kube.generations import MANAGED_BY, MODELS, KubeGenerations, created_of
from musicgen_ops.studio.samples import fetch_sample, find_sample
from musicgen_ops.studio.schemas import (
    DatasetPublic,
    GenerationCreate,
    GenerationPublic,
    LossPoint,
    ModelPublic,
    TrackPublic,
    TrainingCreate,
    TrainingPublic,
)
from musicgen_ops.studio.settings import StudioSettings
from musicgen_ops.studio.uploads import StagedFile

TRAININGS = "trainingjobs"
DATASET_LABEL = "musicgen.io/studio-dataset"
TRAINING_STATES = {"Pending": "queued", "Suspended": "queued", "Running": "running", "Succeeded": "completed"}
TRAINER_PHASES = {"starting", "training", "evaluating", "saving", "completed", "failed"}


def training_from(obj: dict[str, Any]) -> TrainingPublic:
    """A TrainingJob as the studio shows a training."""
    metadata = obj.get("metadata") or {}
    spec = TrainingJobSpec.model_validate(obj.get("spec") or {})
    status = TrainingJobStatus.model_validate(obj.get("status") or {})
    phase = status.phase or "Pending"
    state = TRAINING_STATES.get(phase, "failed")
    progress = None
    if status.current_step is not None:
        trainer_phase = status.training_phase if status.training_phase in TRAINER_PHASES else "training"
        progress = TrainingProgress(
            phase=trainer_phase,
            epoch=status.current_epoch or 0,
            total_epochs=status.total_epochs or spec.training.epochs,
            step=status.current_step,
            total_steps=status.total_steps or 0,
            loss=status.current_loss,
            val_loss=status.validation_loss,
            eta_seconds=status.eta_seconds,
            message=status.message or "",
        )
    points = []
    if progress and (progress.loss is not None or progress.val_loss is not None):
        points = [
            LossPoint(
                step=progress.step, epoch=progress.epoch, loss=progress.loss, val_loss=progress.val_loss
            )
        ]
    dataset = (metadata.get("labels") or {}).get(DATASET_LABEL) or spec.dataset_uri.rstrip("/").rsplit(
        "/", 1
    )[-1]
    return TrainingPublic(
        id=metadata["name"],
        state=state,
        dataset=dataset,
        base_model=spec.base_model,
        model_id=spec.model_id or metadata["name"],
        recipe=TrainingRecipe.pick(spec),
        created=created_of(obj),
        started=status.start_time,
        finished=status.completion_time,
        error=status.failure_reason if state == "failed" else None,
        progress=progress,
        points=points,
    )


class KubernetesBackend:
    """The studio's operations as Kubernetes API calls made with the caller's token."""

    def __init__(self, settings: StudioSettings, token: str) -> None:
        if not settings.kube_api_url:
            raise ValueError("kube_api_url is required by the Kubernetes backend")
        self.settings = settings
        verify: str | bool = str(settings.kube_ca_file) if settings.kube_ca_file else True
        self.kube = KubeClient(settings.kube_api_url, settings.kube_namespace, token, verify=verify)
        self.datasets = StoreDatasets(settings.artifacts_uri, settings.max_tracks_per_dataset)
        self.generations = KubeGenerations(settings, self.kube)

    async def start(self) -> None:
        """Nothing runs in the studio: the operator does the work."""

    async def close(self) -> None:
        """Nothing to stop."""

    def _check_access(self) -> None:
        """Datasets live in storage the studio reaches itself: ask Kubernetes whether the caller may train."""
        self.kube.list(TRAININGS)

    # datasets (the caller must at least be allowed to list TrainingJobs in the namespace)
    def list_datasets(self) -> list[DatasetPublic]:
        self._check_access()
        return [self.datasets.get(name) for name in self.datasets.names()]

    def create_dataset(self, name: str) -> DatasetPublic:
        self._check_access()
        return self.datasets.create(name)

    def get_dataset(self, name: str) -> DatasetPublic:
        self._check_access()
        return self.datasets.get(name)

    def delete_dataset(self, name: str) -> None:
        self._check_access()
        self.datasets.delete(name)

    def check_dataset(self, name: str) -> None:
        self.get_dataset(name)

    def add_track(self, dataset: str, filename: str, staged: Path, prompt: str, details: dict) -> TrackPublic:
        return self.datasets.add_track(dataset, filename, staged, prompt, details)

    # trainings
    def training_defaults(self) -> tuple[str, TrainingRecipe]:
        return self.settings.default_base_model, TrainingRecipe()

    def create_training(self, request: TrainingCreate) -> TrainingPublic:
        dataset = self.get_dataset(request.dataset)
        if not dataset.tracks:
            raise InvalidInputError(f"error: dataset {request.dataset!r} has no tracks: upload audio first")
        name = f"train-{uuid.uuid4().hex[:8]}"
        spec = TrainingJobSpec(
            **TrainingRecipe.pick(request).model_dump(),
            dataset_uri=dataset.uri,
            base_model=request.base_model,
            model_id=request.model_id,
        )
        body = {
            "apiVersion": API_VERSION,
            "kind": "TrainingJob",
            "metadata": {"name": name, "labels": {**MANAGED_BY, DATASET_LABEL: request.dataset}},
            "spec": spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
        }
        return training_from(self.kube.create(TRAININGS, body))

    def list_trainings(self) -> list[TrainingPublic]:
        trainings = [training_from(obj) for obj in self.kube.list(TRAININGS)]
        return sorted(trainings, key=lambda t: t.created, reverse=True)

    def get_training(self, training_id: str) -> TrainingPublic:
        obj = self.kube.get(TRAININGS, training_id)
        return self._with_samples(training_from(obj), obj)

    def training_sample(self, training_id: str, step: int, index: int) -> Path:
        """The WAV of a checkpoint sample listed in the run's progress.json (the caller must see the job)."""
        obj = self.kube.get(TRAININGS, training_id)
        status = TrainingJobStatus.model_validate(obj.get("status") or {})
        sample = find_sample(training_id, self._run_samples(status), step, index)
        if not status.run_uri:
            raise NotFoundError(f"error: training {training_id!r} has no run folder yet")
        cache = self.settings.root / ".cache" / "samples" / training_id / (status.run_uri.rsplit("/", 1)[-1])
        return fetch_sample(status.run_uri, sample, cache)

    def _run_samples(self, status: TrainingJobStatus) -> list[CheckpointSample]:
        """The checkpoint samples in the run's progress.json (the operator's status does not carry them)."""
        if not status.progress_uri:
            return []
        try:
            store, key = open_object(status.progress_uri)
            return TrainingProgress.model_validate_json(store.get_bytes(key)).samples
        except (StorageError, ValidationError):
            return []

    def _with_samples(self, training: TrainingPublic, obj: dict[str, Any]) -> TrainingPublic:
        """``training`` with its checkpoint samples, when its recipe asks for some and it has progress."""
        if training.progress is None or not training.recipe.training.sample_prompts:
            return training
        samples = self._run_samples(TrainingJobStatus.model_validate(obj.get("status") or {}))
        progress = training.progress.model_copy(update={"samples": samples})
        return training.model_copy(update={"progress": progress})

    def cancel_training(self, training_id: str) -> TrainingPublic:
        training = self.get_training(training_id)
        if training.state in ("completed", "failed"):
            raise ConflictError(f"error: training {training_id!r} is {training.state} already")
        self.kube.delete(TRAININGS, training_id)
        return training.model_copy(update={"state": "cancelled", "error": "cancelled"})

    async def training_events(self, training_id: str) -> AsyncIterator[TrainingPublic]:
        """The training at every change the watch reports, with the loss points seen so far."""
        points: dict[int, LossPoint] = {}

        def with_points(training: TrainingPublic) -> TrainingPublic:
            for point in training.points:
                points[point.step] = point
            return training.model_copy(update={"points": [points[s] for s in sorted(points)]})

        training = with_points(self.get_training(training_id))
        yield training
        if training.state in ("completed", "failed"):
            return
        async for event in self.kube.watch(TRAININGS, training_id):
            if event["type"] == "DELETED":
                yield training.model_copy(update={"state": "cancelled", "error": "deleted"})
                return
            training = with_points(self._with_samples(training_from(event["object"]), event["object"]))
            yield training
            if training.state in ("completed", "failed"):
                return

    # models
    def list_models(self) -> list[ModelPublic]:
        models = []
        for obj in self.kube.list(MODELS):
            spec = TrainedModelSpec.model_validate(obj.get("spec") or {})
            status = TrainedModelStatus.model_validate(obj.get("status") or {})
            model_id = spec.model_id or obj["metadata"]["name"]
            root = spec.artifacts_uri or self.settings.artifacts_uri
            manifest = read_manifest(root, model_id)
            models.append(
                ModelPublic(
                    model_id=obj["metadata"]["name"],
                    base_model=spec.base_model,
                    formats=status.formats or (manifest.formats if manifest else []),
                    created=manifest.created if manifest else created_of(obj),
                    size=status.size_bytes or (manifest.total_size if manifest else 0),
                    training=manifest.training if manifest else TrainingSummary(final_loss=status.final_loss),
                )
            )
        return sorted(models, key=lambda m: m.created, reverse=True)

    def delete_model(self, model_id: str) -> None:
        self.kube.delete(MODELS, model_id)  # the TrainedModel's deletionPolicy decides about the artifacts

    # generations: the serving Deployment when the model has ready pods, else GenerationRequests
    def create_generation(
        self, request: GenerationCreate, inputs: Sequence[StagedFile] = ()
    ) -> GenerationPublic:
        return self.generations.create(request, inputs)

    def list_generations(self) -> list[GenerationPublic]:
        return self.generations.list()

    def get_generation(self, generation_id: str) -> GenerationPublic:
        return self.generations.get(generation_id)

    def generation_file(self, generation_id: str, kind: str) -> Path:
        return self.generations.file(generation_id, kind)

    def delete_generation(self, generation_id: str) -> None:
        self.generations.delete(generation_id)
