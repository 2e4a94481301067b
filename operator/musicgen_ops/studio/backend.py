"""The one interface the routes call; the local backend implements it (a Kubernetes one can too)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from musicgen_ops.contracts.training import TrainingRecipe
from musicgen_ops.studio.schemas import (
    DatasetPublic,
    GenerationCreate,
    GenerationPublic,
    ModelPublic,
    TrackPublic,
    TrainingCreate,
    TrainingPublic,
)

if TYPE_CHECKING:
    from musicgen_ops.studio.uploads import StagedFile


class StudioError(Exception):
    """Base of the errors the routes turn into HTTP answers."""

    status_code = 500


class InvalidInputError(StudioError):
    """The request names something impossible (bad name, unreadable audio, too large)."""

    status_code = 400


class NotFoundError(StudioError):
    """No such dataset, training, model or generation."""

    status_code = 404


class ConflictError(StudioError):
    """The resource exists already, or is in a state that forbids the action."""

    status_code = 409


class TooLargeError(StudioError):
    """An upload over the size limit."""

    status_code = 413


class NotOfferedError(StudioError):
    """The deployment does not offer this (e.g. presigned uploads on a file:// artifact store)."""

    status_code = 501


class Backend(Protocol):
    """Datasets, trainings, models and generations, wherever they live."""

    def list_datasets(self) -> list[DatasetPublic]: ...
    def create_dataset(self, name: str) -> DatasetPublic: ...
    def get_dataset(self, name: str) -> DatasetPublic: ...
    def delete_dataset(self, name: str) -> None: ...
    def check_dataset(self, name: str) -> None: ...
    def add_track(
        self, dataset: str, filename: str, staged: Path, prompt: str, details: dict[str, Any]
    ) -> TrackPublic: ...

    def training_defaults(self) -> tuple[str, TrainingRecipe]: ...

    def create_training(self, request: TrainingCreate) -> TrainingPublic: ...
    def list_trainings(self) -> list[TrainingPublic]: ...
    def get_training(self, training_id: str) -> TrainingPublic: ...
    def cancel_training(self, training_id: str) -> TrainingPublic: ...
    def training_events(self, training_id: str) -> AsyncIterator[TrainingPublic]: ...
    def training_sample(self, training_id: str, step: int, index: int) -> Path: ...

    def list_models(self) -> list[ModelPublic]: ...
    def delete_model(self, model_id: str) -> None: ...

    def create_generation(
        self, request: GenerationCreate, inputs: Sequence[StagedFile] = ()
    ) -> GenerationPublic: ...
    def list_generations(self) -> list[GenerationPublic]: ...
    def get_generation(self, generation_id: str) -> GenerationPublic: ...
    def generation_file(self, generation_id: str, kind: str) -> Path: ...
    def delete_generation(self, generation_id: str) -> None: ...

    async def start(self) -> None: ...
    async def close(self) -> None: ...
