"""Request and response shapes of the generation service (pydantic only; no HTTP here).

The request body is the generation contract (``musicgen_ops.contracts.generation``) plus what only
the server needs (which model, a spectrogram); ``GenerationResult`` is the contract's sidecar.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import BaseModel, Field

from musicgen_ops.contracts.generation import GenerationParameters, GenerationResult

__all__ = [
    "CacheStats",
    "ErrorBody",
    "GenerateRequest",
    "GenerationResult",
    "Health",
    "JobAccepted",
    "JobState",
    "JobStatus",
    "ModelInfo",
    "ModelList",
]


class GenerateRequest(GenerationParameters):
    """The body of ``POST /v1/generate``: a model and one track's parameters."""

    trained_model_id: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        description="Trained model id (or local path); the server's default model when absent.",
    )
    spectrogram: bool | None = Field(None, description="Also write a spectrogram PNG (server default).")
    melody_base64: str | None = Field(
        None,
        min_length=4,
        description="musicgen-melody models only: the melody as an inline audio file (WAV/FLAC/MP3 "
        "bytes, base64); the request body limit applies. melody_uri must lie in the server's artifact store.",
    )
    audio_prompt_base64: str | None = Field(
        None,
        min_length=4,
        description="A clip to continue as an inline audio file (WAV/FLAC/OGG/MP3 bytes, base64); the "
        "request body limit applies. audio_prompt_uri must lie in the server's artifact store.",
    )


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
    source: str | None = Field(
        None,
        description="Artifact-store URI the model comes from; null for presets, hub ids and the server's "
        "own models volume (local paths are never shown).",
    )
    family: str | None = Field(None, description="Loaded models: musicgen or musicgen-melody.")
    melody: bool | None = Field(None, description="Loaded models: takes a melody (melody_uri/melody_base64).")
    decoders: list[str] | None = Field(
        None,
        description="Loaded models: audio decoders loaded for it; they share its weights, counted once in "
        "memory_bytes (with each decoder's own bytes, e.g. MBD's diffusion bands).",
    )


class ModelList(BaseModel):
    """Loaded and available models."""

    default_model: str
    count: int
    models: list[ModelInfo]
    cache: CacheStats


class Health(BaseModel):
    """Liveness/readiness answer."""

    status: Literal["ok", "loading", "failed", "draining"]
    ready: bool
    detail: str | None = None


class ErrorBody(BaseModel):
    """Body of every error answer."""

    error: str = Field(description="Error class, e.g. InvalidParameters, ServiceBusy.")
    message: str
    fields: list[str] | None = Field(None, description="For invalid parameters: one line per bad field.")
