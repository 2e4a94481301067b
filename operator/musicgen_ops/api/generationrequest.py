"""GenerationRequest: generate audio with a TrainedModel in a batch Job."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import Field

from musicgen_ops.api.common import (
    AGE_COLUMN,
    STORAGE_URI_PATTERN,
    CamelModel,
    ComputeResources,
    PrinterColumn,
    ResourceKind,
    Scheduling,
    StatusBase,
)

MusicalKey = Literal[
    "C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#", "Bb", "B"
]
Scale = Literal[
    "major", "minor", "dorian", "phrygian", "lydian", "mixolydian", "locrian", "pentatonic", "blues"
]


class GenerationPhase(str, Enum):
    """Where a GenerationRequest stands."""

    PENDING = "Pending"
    WAITING = "WaitingForModel"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class GenerationRequestSpec(CamelModel):
    """The prompt and sampling parameters."""

    model: str = Field(min_length=1, description="Name of a TrainedModel in this namespace.")
    prompt: str = Field(min_length=1, max_length=2000, description="Text description of the music.")
    duration_seconds: float = Field(10.0, ge=1, le=300, description="Length of the audio (1-300 s).")
    bpm: int | None = Field(None, ge=20, le=300, description="Tempo, added to the prompt.")
    style: str | None = Field(None, max_length=200, description="Genre/style, added to the prompt.")
    key: MusicalKey | None = Field(None, description="Musical key, added to the prompt.")
    scale: Scale | None = Field(None, description="Scale, added to the prompt.")
    temperature: float = Field(1.0, ge=0, le=2, description="Sampling temperature (0-2).")
    top_k: int = Field(250, ge=0, le=2048, description="Top-k sampling (0: off).")
    top_p: float = Field(0.0, ge=0, le=1, description="Nucleus sampling (0: off).")
    guidance_scale: float = Field(3.0, ge=0, le=20, description="Classifier-free guidance scale.")
    seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="Random seed (default: chosen and reported)."
    )
    output_format: Literal["wav", "flac"] = Field("wav", description="Audio container.")
    output_uri: str | None = Field(
        None,
        pattern=STORAGE_URI_PATTERN,
        description="Where to write the audio (default: <artifacts>/generations/<ns>/<name>/output.<fmt>).",
    )
    resources: ComputeResources = Field(default_factory=ComputeResources, description="Pod resources.")
    scheduling: Scheduling = Field(default_factory=Scheduling, description="Node selection.")
    image: str | None = Field(None, description="Generator image override.")


class Timings(CamelModel):
    """Seconds spent in each stage of the generation Job."""

    model_config = CamelModel.model_config | {"extra": "ignore"}

    load_seconds: float | None = None
    generate_seconds: float | None = None
    total_seconds: float | None = None


class GenerationRequestStatus(StatusBase):
    """Observed state of a GenerationRequest."""

    phase: GenerationPhase | None = Field(
        None, description="Pending, WaitingForModel, Running, Succeeded, Failed."
    )
    job_name: str | None = None
    model_uri: str | None = Field(None, description="Artifacts folder of the resolved model.")
    output_uri: str | None = Field(None, description="The generated audio.")
    result_uri: str | None = Field(None, description="The JSON the Job writes next to the audio.")
    audio_seconds: float | None = Field(None, description="Length of the generated audio.")
    sample_rate: int | None = None
    seed: int | None = Field(None, description="Seed actually used.")
    timings: Timings | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    failure_reason: str | None = None


GENERATION_REQUEST = ResourceKind(
    kind="GenerationRequest",
    plural="generationrequests",
    singular="generationrequest",
    short_names=("mgr",),
    spec_model=GenerationRequestSpec,
    status_model=GenerationRequestStatus,
    columns=(
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Model", ".spec.model"),
        PrinterColumn("Duration", ".spec.durationSeconds", "number", "Requested seconds of audio"),
        PrinterColumn("Output", ".status.outputUri"),
        AGE_COLUMN,
    ),
    description="Generate music with a TrainedModel in a batch Job.",
)
