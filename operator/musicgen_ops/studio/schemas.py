"""Request and response shapes of ``/api/v1``: built on the contracts, never re-declaring their fields."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from musicgen_ops.contracts.generation import GenerationParameters, GenerationResult
from musicgen_ops.contracts.manifest import TrainingSummary
from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.contracts.training import TrainingRecipe

#: Dataset names and training ids: DNS labels, so they are valid Kubernetes names and safe folder names.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"

TrainingState = Literal["queued", "running", "completed", "failed", "cancelled"]
GenerationState = Literal["queued", "running", "completed", "failed"]


class Message(BaseModel):
    """A one-line answer."""

    message: str


class DatasetCreate(BaseModel):
    """A new, empty dataset."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Folder name: lowercase letters, digits and '-'.")


class TrackPublic(BaseModel):
    """One audio file of a dataset."""

    file: str
    prompt: str
    size: int
    duration_seconds: float | None = None
    sample_rate: int | None = None
    channels: int | None = None


class DirectUploadCreate(BaseModel):
    """Ask for a presigned URL to PUT one audio file straight into storage."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255, description="Plain audio file name, e.g. take1.wav.")
    size: int = Field(ge=1, description="Size of the file in bytes (at most the studio's upload limit).")


class DirectUploadPublic(BaseModel):
    """Where and how to PUT the file; then call ``complete`` with the ``upload_id``."""

    upload_id: str
    filename: str
    url: str = Field(description="Presigned URL (S3/MinIO presigned PUT, Azure blob SAS).")
    method: str = "PUT"
    headers: dict[str, str] = Field(description="Headers the PUT must carry.")
    expires: datetime
    max_bytes: int


class DirectUploadComplete(BaseModel):
    """Finish a presigned upload: the studio fetches, decodes and stores the file."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field("", max_length=4096, description="Prompt of the track (default: its file name).")


class DatasetPublic(BaseModel):
    """A dataset folder and its tracks."""

    name: str
    uri: str
    tracks: list[TrackPublic]
    total_bytes: int


class DatasetsPublic(BaseModel):
    """Every dataset."""

    data: list[DatasetPublic]
    count: int


class TrainingCreate(TrainingRecipe):
    """A training run: which data, which base model, and the recipe (the contract's defaults)."""

    dataset: str = Field(pattern=NAME_PATTERN, description="Name of the dataset to train on.")
    base_model: str = Field(
        "facebook/musicgen-small", min_length=1, description="Hub id, local folder or an in-code preset."
    )
    model_id: str | None = Field(
        None, pattern=NAME_PATTERN, description="Id of the produced model (default: the training id)."
    )


class LossPoint(BaseModel):
    """One point of the loss curve."""

    step: int
    epoch: float
    loss: float | None = None
    val_loss: float | None = None


class TrainingPublic(BaseModel):
    """A training run as the API shows it."""

    id: str
    state: TrainingState
    dataset: str
    base_model: str
    model_id: str
    recipe: TrainingRecipe
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    error: str | None = None
    progress: TrainingProgress | None = None
    points: list[LossPoint] = Field(default_factory=list)


class TrainingsPublic(BaseModel):
    """Every training run, newest first."""

    data: list[TrainingPublic]
    count: int


class TrainingDefaults(BaseModel):
    """What the new-training form starts with (the contract's defaults)."""

    base_model: str
    recipe: TrainingRecipe


class ModelPublic(BaseModel):
    """A published model (its manifest) with the metrics of the run that made it."""

    model_id: str
    base_model: str
    formats: list[str]
    created: datetime
    size: int
    training: TrainingSummary


class ModelsPublic(BaseModel):
    """Every published model."""

    data: list[ModelPublic]
    count: int


class GenerationCreate(BaseModel):
    """Generate a track with a model; ``compare_with_base`` also renders the base model (same seed)."""

    model_config = ConfigDict(extra="forbid")

    model_id: str | None = Field(
        None, description="A published model id; absent: the base model given in base_model."
    )
    base_model: str | None = Field(None, description="Base model to use when model_id is absent.")
    parameters: GenerationParameters
    compare_with_base: bool = Field(False, description="Also generate with the base model, same seed.")

    @field_validator("parameters")
    @classmethod
    def _no_melody_paths(cls, parameters: GenerationParameters) -> GenerationParameters:
        # The studio would read melody_uri on its own machine: a caller never picks files it reads.
        if parameters.melody_uri is not None:
            raise ValueError("melody_uri is not accepted by the studio (use the CLI or the generator server)")
        if parameters.audio_prompt_uri is not None:  # the same for an audio prompt
            raise ValueError(
                "audio_prompt_uri is not accepted by the studio (use the CLI or the generator server)"
            )
        return parameters


class GenerationPublic(BaseModel):
    """One generation and, when done, its result."""

    id: str
    state: GenerationState
    model: str = Field(description="The model id, or the base model for a base-model generation.")
    is_base: bool
    parameters: GenerationParameters
    created: datetime
    compare_id: str | None = Field(None, description="The base-model generation made for A/B.")
    error: str | None = None
    result: GenerationResult | None = None
    audio_url: str | None = None
    spectrogram_url: str | None = None


class GenerationsPublic(BaseModel):
    """Recent generations, newest first."""

    data: list[GenerationPublic]
    count: int
