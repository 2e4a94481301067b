"""Request and response shapes of the generation service (pydantic only; no HTTP here).

``GenerationParameters`` is what a caller asks for; ``GenerationResult`` is what a finished
generation reports (and what the JSON sidecar beside the audio holds). Field names follow the
issue (``target_bpm``, ``random_seed``); the GenerationRequest CRD's names (``bpm``, ``seed``) are
accepted as aliases so the generate-job can pass a CR spec straight through.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from musicgen_ops.api.generationrequest import MusicalKey, Scale


class GenerationParameters(BaseModel):
    """One track to generate. Unknown fields are refused, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    trained_model_id: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        description="Trained model id (or local path); the server's default base model when absent.",
    )
    prompt: str = Field(min_length=1, max_length=2000, description="Text description of the music.")
    duration_seconds: float = Field(10.0, gt=0, le=300, description="Length of the audio in seconds.")
    target_bpm: float | None = Field(
        None, ge=20, le=300, validation_alias=AliasChoices("target_bpm", "bpm"), description="Tempo."
    )
    style: str | None = Field(None, max_length=200, description="Genre/style, e.g. 'lofi hip hop'.")
    key: MusicalKey | None = Field(None, description="Musical key, e.g. 'C', 'F#', 'Bb'.")
    scale: Scale | None = Field(None, description="Scale: major, minor, dorian, ...")
    temperature: float = Field(1.0, ge=0, le=2, description="Sampling temperature (0: greedy).")
    top_k: int = Field(250, ge=0, le=2048, description="Top-k sampling (0: off).")
    top_p: float = Field(0.0, ge=0, le=1, description="Nucleus sampling (0: off).")
    guidance_scale: float = Field(3.0, ge=0, le=20, description="Classifier-free guidance (<=1: off).")
    random_seed: int | None = Field(
        None,
        ge=0,
        le=2**32 - 1,
        validation_alias=AliasChoices("random_seed", "seed"),
        description="Seed; chosen at random (and reported) when absent.",
    )
    output_format: Literal["wav", "flac"] = Field("wav", description="Audio container (16-bit PCM).")
    spectrogram: bool | None = Field(None, description="Also write a spectrogram PNG (server default).")


def describe_validation_error(err: ValidationError) -> list[str]:
    """One ``field: reason`` line per bad field, in the order pydantic found them."""
    lines = []
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "parameters"
        lines.append(f"{where}: {item['msg']} (got {item.get('input')!r})")
    return lines


class GenerationResult(BaseModel):
    """A finished generation: files written and how it was made (also the JSON sidecar's content)."""

    id: str = Field(description="Result id (also the file stem for server-side results).")
    audio_path: str
    sidecar_path: str
    spectrogram_path: str | None = None
    model_id: str = Field(description="The trained model id, or the base model used.")
    conditioning_text: str = Field(description="The text the model was conditioned on (fields folded in).")
    parameters: dict[str, Any] = Field(description="The validated request parameters.")
    seed: int = Field(description="Seed actually used (reuse it to get the same audio).")
    sample_rate: int
    duration_seconds: float
    num_samples: int
    output_format: str
    windows: int = Field(description="generate() windows used (more than 1 beyond the model's window).")
    batch_size: int = Field(description="Requests generated together in the same forward pass.")
    wall_seconds: float = Field(description="Seconds from start of generation to files written.")
    real_time_factor: float = Field(
        description="wall_seconds / duration_seconds (below 1: faster than real time)."
    )
    audio_sha256: str
    created: datetime


class JobState(str, Enum):
    """Where an asynchronous generation job stands."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobAccepted(BaseModel):
    """Answer to a request too long to wait for: poll ``status_url``."""

    job_id: str
    state: JobState
    status_url: str


class JobStatus(BaseModel):
    """An asynchronous job: its state, its result once done, or the error."""

    job_id: str
    state: JobState
    created: datetime
    finished: datetime | None = None
    result: GenerationResult | None = None
    error: str | None = None
    audio_url: str | None = None


class CacheStats(BaseModel):
    """The LRU model cache: occupancy and hit/miss/eviction counts."""

    hits: int
    misses: int
    evictions: int
    models: int
    bytes: int
    max_models: int
    max_bytes: int


class ModelInfo(BaseModel):
    """A model the server knows: loaded in the cache, or available to load."""

    model_id: str
    loaded: bool
    memory_bytes: int | None = None
    source: str | None = Field(None, description="Local folder or reference it is loaded from.")


class ModelList(BaseModel):
    """Loaded and available models."""

    default_model: str
    count: int
    models: list[ModelInfo]
    cache: CacheStats


class Health(BaseModel):
    """Liveness/readiness answer."""

    status: Literal["ok", "loading", "failed"]
    ready: bool
    detail: str | None = None


class ErrorBody(BaseModel):
    """Body of every error answer."""

    error: str = Field(description="Error class, e.g. InvalidParameters, ServiceBusy.")
    message: str
    fields: list[str] | None = Field(None, description="For invalid parameters: one line per bad field.")
