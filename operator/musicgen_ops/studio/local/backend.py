"""The local backend: everything on this machine, under one folder (``StudioSettings.root``)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from musicgen_ops.contracts.generation import MAX_SEED, GenerationParameters, GenerationResult
from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.contracts.training import TrainingRecipe
from musicgen_ops.storage import delete_model, list_models, read_manifest
from musicgen_ops.studio.backend import ConflictError, InvalidInputError, NotFoundError
from musicgen_ops.studio.datasets import StoreDatasets
from musicgen_ops.studio.direct_uploads import DirectUploads
from musicgen_ops.studio.generation_inputs import inputs_store, store_inputs, with_inputs
from musicgen_ops.studio.local.generation import ARTIFACT_REF, GenerationWorker
from musicgen_ops.studio.local.state import StudioState, utc_now
from musicgen_ops.studio.local.training import TrainingRunner, run_uri
from musicgen_ops.studio.retention import (
    delete_input_folders,
    input_folders,
    periodically,
    sweep_input_folders,
)
from musicgen_ops.studio.retention import utc_now as retention_now
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

TERMINAL_TRAINING_STATES = ("completed", "failed", "cancelled")
#: Name of a local generation (``new_id("gen")``), and of its output folder.
GENERATION_ID = re.compile(r"^gen-[0-9a-f]{8}$")


def new_id(prefix: str) -> str:
    """A short unique id that is also a valid DNS label."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class LocalBackend:
    """Datasets in ``<root>/datasets``, models in ``<root>/models``, runs in ``<root>/runs``."""

    def __init__(self, settings: StudioSettings) -> None:
        self.settings = settings
        settings.root.mkdir(parents=True, exist_ok=True)
        self.state = StudioState(settings.database_path)
        self.datasets = StoreDatasets(settings.artifacts_uri, settings.max_tracks_per_dataset)
        self.runner = TrainingRunner(settings, self.state, self.datasets.uri)
        self.generator = GenerationWorker(settings, self.state)
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Resume what a previous process left queued or running."""
        await self.runner.start()
        self.generator.warm_up()
        self.generator.recover()
        self._sweeper = periodically(self.sweep, self.settings.sweep_interval_seconds, "the studio's sweep")

    async def close(self) -> None:
        """Stop the training (it resumes after the next start) and the generation worker."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.runner.close()
        await asyncio.to_thread(self.generator.close)
        self.state.close()

    # datasets
    def list_datasets(self) -> list[DatasetPublic]:
        return [self.datasets.get(name) for name in self.datasets.names()]

    def create_dataset(self, name: str) -> DatasetPublic:
        return self.datasets.create(name)

    def get_dataset(self, name: str) -> DatasetPublic:
        return self.datasets.get(name)

    def delete_dataset(self, name: str) -> None:
        active = self.state.select("trainings", "dataset = ? AND state IN ('queued', 'running')", (name,))
        if active:
            raise ConflictError(
                f"error: dataset {name!r} is used by training {active[0]['id']}: cancel it first"
            )
        self.datasets.delete(name)

    def add_track(self, dataset: str, filename: str, staged: Path, prompt: str, details: dict) -> TrackPublic:
        return self.datasets.add_track(dataset, filename, staged, prompt, details)

    def check_dataset(self, name: str) -> None:
        """NotFoundError unless the dataset exists (checked before an upload is read)."""
        self.datasets.get(name)

    # trainings
    def training_defaults(self) -> tuple[str, TrainingRecipe]:
        return self.settings.default_base_model, TrainingRecipe()

    def create_training(self, request: TrainingCreate) -> TrainingPublic:
        dataset = self.datasets.get(request.dataset)
        if not dataset.tracks:
            raise InvalidInputError(f"error: dataset {request.dataset!r} has no tracks: upload audio first")
        training_id = new_id("train")
        model_id = request.model_id or training_id
        if read_manifest(self.settings.artifacts_uri, model_id) is not None:
            raise ConflictError(f"error: model_id {model_id!r} exists already: choose another or delete it")
        busy = self.state.select("trainings", "model_id = ? AND state IN ('queued', 'running')", (model_id,))
        if busy:
            raise ConflictError(f"error: model_id {model_id!r} is being trained by {busy[0]['id']}")
        recipe = TrainingRecipe.pick(request)
        self.state.insert(
            "trainings",
            {
                "id": training_id,
                "state": "queued",
                "dataset": request.dataset,
                "base_model": request.base_model,
                "model_id": model_id,
                "recipe": recipe.model_dump(mode="json"),
                "created": utc_now(),
            },
        )
        self.runner.wake()
        return self.get_training(training_id)

    def list_trainings(self) -> list[TrainingPublic]:
        return [self._training(row, with_points=False) for row in self.state.select("trainings")]

    def get_training(self, training_id: str) -> TrainingPublic:
        row = self.state.get("trainings", training_id)
        if row is None:
            raise NotFoundError(f"error: no training {training_id!r}")
        return self._training(row, with_points=True)

    def cancel_training(self, training_id: str) -> TrainingPublic:
        training = self.get_training(training_id)
        if training.state in TERMINAL_TRAINING_STATES:
            raise ConflictError(f"error: training {training_id!r} is {training.state} already")
        self.state.update("trainings", training_id, state="cancelled", finished=utc_now(), error="cancelled")
        self.runner.cancel(training_id)
        return self.get_training(training_id)

    async def training_events(self, training_id: str) -> AsyncIterator[TrainingPublic]:
        """The training each time it changes, until it reaches a final state."""
        last: str | None = None
        while True:
            training = self.get_training(training_id)
            snapshot = training.model_dump_json(exclude={"points"}) + str(len(training.points))
            if snapshot != last:
                last = snapshot
                yield training
            if training.state in TERMINAL_TRAINING_STATES:
                return
            await asyncio.sleep(self.settings.poll_seconds)

    def training_sample(self, training_id: str, step: int, index: int) -> Path:
        """The WAV of a checkpoint sample the run's progress lists."""
        training = self.get_training(training_id)
        sample = find_sample(training_id, training.progress.samples if training.progress else [], step, index)
        cache = self.settings.root / ".cache" / "samples" / training_id
        return fetch_sample(run_uri(self.settings, training_id), sample, cache)

    def _training(self, row: dict[str, Any], *, with_points: bool) -> TrainingPublic:
        points = self.state.points(row["id"]) if with_points else []
        return TrainingPublic(
            id=row["id"],
            state=row["state"],
            dataset=row["dataset"],
            base_model=row["base_model"],
            model_id=row["model_id"],
            recipe=TrainingRecipe.model_validate_json(row["recipe"]),
            created=datetime.fromisoformat(row["created"]),
            started=row["started"],
            finished=row["finished"],
            error=row["error"],
            progress=TrainingProgress.model_validate_json(row["progress"]) if row["progress"] else None,
            points=[LossPoint(**point) for point in points],
        )

    # models
    def list_models(self) -> list[ModelPublic]:
        models = []
        for model_id in list_models(self.settings.artifacts_uri):
            manifest = read_manifest(self.settings.artifacts_uri, model_id)
            if manifest is None:
                continue
            models.append(
                ModelPublic(
                    model_id=manifest.model_id,
                    base_model=manifest.base_model,
                    formats=manifest.formats,
                    created=manifest.created,
                    size=manifest.total_size,
                    training=manifest.training,
                )
            )
        return sorted(models, key=lambda m: m.created, reverse=True)

    def delete_model(self, model_id: str) -> None:
        if read_manifest(self.settings.artifacts_uri, model_id) is None:
            raise NotFoundError(f"error: no model {model_id!r}")
        delete_model(self.settings.artifacts_uri, model_id)

    # generations
    def create_generation(
        self, request: GenerationCreate, inputs: Sequence[StagedFile] = ()
    ) -> GenerationPublic:
        if request.model_id:
            manifest = read_manifest(self.settings.artifacts_uri, request.model_id)
            if manifest is None:
                raise NotFoundError(f"error: model_id {request.model_id!r}: no such model")
            model, model_ref, base = request.model_id, ARTIFACT_REF + request.model_id, manifest.base_model
        elif request.base_model:
            model = model_ref = base = request.base_model
        else:
            raise InvalidInputError("error: give model_id (a trained model) or base_model")
        self.generator.decoder_options(request.parameters.decoder or "encodec")  # no MBD weights: 503 now
        store = inputs_store(self.settings.artifacts_uri)
        if inputs:  # the A/B twin gets the same clip and melody
            request = with_inputs(request, store_inputs(store, inputs))
        params = request.parameters
        if params.random_seed is None:  # A and B must share the seed
            params = params.model_copy(update={"random_seed": secrets.randbelow(MAX_SEED)})
        compare_id = None
        try:
            if request.compare_with_base and request.model_id:
                compare_id = self._insert_generation(base, base, True, params, None)
            is_base = not request.model_id
            generation_id = self._insert_generation(model, model_ref, is_base, params, compare_id)
        except BaseException:  # no generation names the stored inputs: delete them now
            if compare_id:
                self.state.delete("generations", compare_id)
            delete_input_folders(store, input_folders(store, [params]))
            raise
        self.generator.submit(generation_id)
        if compare_id:
            self.generator.submit(compare_id)
        return self.get_generation(generation_id)

    def _insert_generation(
        self, model: str, model_ref: str, is_base: bool, params: GenerationParameters, compare_id: str | None
    ) -> str:
        generation_id = new_id("gen")
        self.state.insert(
            "generations",
            {
                "id": generation_id,
                "state": "queued",
                "model": model,
                "model_ref": model_ref,
                "is_base": is_base,
                "parameters": params.model_dump(mode="json"),
                "created": utc_now(),
                "compare_id": compare_id,
            },
        )
        return generation_id

    def list_generations(self) -> list[GenerationPublic]:
        return [self._generation(row) for row in self.state.select("generations")[:100]]

    def get_generation(self, generation_id: str) -> GenerationPublic:
        row = self.state.get("generations", generation_id)
        if row is None:
            raise NotFoundError(f"error: no generation {generation_id!r}")
        return self._generation(row)

    def generation_file(self, generation_id: str, kind: str) -> Path:
        generation = self.get_generation(generation_id)
        if generation.result is None:
            raise ConflictError(f"error: generation {generation_id!r} is {generation.state}: no audio yet")
        path = generation.result.audio_path if kind == "audio" else generation.result.spectrogram_path
        if not path:
            raise NotFoundError(f"error: generation {generation_id!r} has no {kind}")
        return Path(path)

    def delete_generation(self, generation_id: str) -> None:
        """Delete the generation, its A/B twin, their audio and (once no generation names them) inputs."""
        row = self.state.get("generations", generation_id)
        if row is None:
            raise NotFoundError(f"error: no generation {generation_id!r}")
        twin = self.state.get("generations", row["compare_id"]) if row["compare_id"] else None
        rows = [row, twin] if twin else [row]
        for one in rows:
            if one["state"] == "running":
                raise ConflictError(
                    f"error: generation {one['id']!r} is running: delete it once it has finished"
                )
        for one in rows:
            self.state.delete("generations", one["id"])
        for partner in self.state.select("generations", "compare_id = ?", (generation_id,)):
            self.state.update("generations", partner["id"], compare_id=None)  # a base twin deleted alone
        for one in rows:
            shutil.rmtree(self.generator.output_dir(one["id"]), ignore_errors=True)
        store = inputs_store(self.settings.artifacts_uri)
        folders = input_folders(store, [GenerationParameters.model_validate_json(rows[0]["parameters"])])
        named = {f for f in folders if self.state.select("generations", "parameters LIKE ?", (f"%{f}%",))}
        delete_input_folders(store, folders - named)

    def sweep(self, now: datetime | None = None) -> None:
        """Delete orphans older than the retention (inputs and outputs no generation names) and
        abandoned presigned uploads."""
        now = now or retention_now()
        rows = self.state.select("generations")
        store = inputs_store(self.settings.artifacts_uri)
        params = [GenerationParameters.model_validate_json(row["parameters"]) for row in rows]
        named = input_folders(store, params)
        sweep_input_folders(store, named, self.settings.retention, now)
        outputs = self.settings.root / "generations"
        known = {r["id"] for r in rows}
        cutoff = (now - self.settings.retention).timestamp()
        for folder in sorted(outputs.iterdir()) if outputs.is_dir() else []:
            orphan = GENERATION_ID.match(folder.name) and folder.name not in known
            if orphan and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        DirectUploads(
            self.settings.artifacts_uri,
            self.settings.max_upload_bytes,
            self.settings.direct_upload_expiry_seconds,
        ).sweep(now)

    def _generation(self, row: dict[str, Any]) -> GenerationPublic:
        result = GenerationResult.model_validate(json.loads(row["result"])) if row["result"] else None
        base = f"/api/v1/generations/{row['id']}"
        return GenerationPublic(
            id=row["id"],
            state=row["state"],
            model=row["model"],
            is_base=bool(row["is_base"]),
            parameters=GenerationParameters.model_validate_json(row["parameters"]),
            created=datetime.fromisoformat(row["created"]),
            compare_id=row["compare_id"],
            error=row["error"],
            result=result,
            audio_url=f"{base}/audio" if result else None,
            spectrogram_url=f"{base}/spectrogram" if result and result.spectrogram_path else None,
        )
