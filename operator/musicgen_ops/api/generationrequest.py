"""GenerationRequest: generate audio with a TrainedModel in a batch Job."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import ClassVar

from pydantic import Field

from musicgen_ops.api.common import (
    AGE_COLUMN,
    CAMEL_CONFIG,
    REASON_COLUMN,
    STORAGE_URI_PATTERN,
    CamelModel,
    ComputeResources,
    PrinterColumn,
    ResourceKind,
    Scheduling,
    StatusBase,
)
from musicgen_ops.contracts.generation import (
    MAX_AUDIO_PROMPT_URI_CHARS,
    MAX_MELODY_URI_CHARS,
    GenerationParameters,
    Timings,
)


class GenerationPhase(str, Enum):
    """Where a GenerationRequest stands."""

    PENDING = "Pending"
    WAITING = "WaitingForModel"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class GenerationRequestSpec(GenerationParameters, CamelModel):
    """The model, the generation parameters (the contract's, camelCase) and where the Job runs."""

    model_config = CAMEL_CONFIG
    legacy_names: ClassVar[dict[str, str]] = {
        **GenerationParameters.legacy_names,
        "model": "trained_model_id",
    }

    trained_model_id: str = Field(
        min_length=1, max_length=253, description="Name of a TrainedModel in this namespace."
    )
    melody_uri: str | None = Field(
        None,
        pattern=STORAGE_URI_PATTERN,
        max_length=MAX_MELODY_URI_CHARS,
        description="musicgen-melody models only: audio (WAV/MP3/FLAC) in object storage whose melody "
        "(chroma) the music follows; the Job downloads it.",
    )
    audio_prompt_uri: str | None = Field(
        None,
        pattern=STORAGE_URI_PATTERN,
        max_length=MAX_AUDIO_PROMPT_URI_CHARS,
        description="Audio clip in object storage to continue: the track starts with the clip (as the codec "
        "reproduces it) and lasts durationSeconds in all; the Job downloads it.",
    )
    use_base_model: bool = Field(
        False,
        description="Generate with the TrainedModel's base model alone, without its adapter (the B of an "
        "A/B comparison; same prompt and seed).",
    )
    output_uri: str | None = Field(
        None,
        pattern=STORAGE_URI_PATTERN,
        description="Where to write the audio (default: <artifacts>/generations/<ns>/<name>/output.<fmt>).",
    )
    resources: ComputeResources = Field(default_factory=ComputeResources, description="Pod resources.")
    scheduling: Scheduling = Field(default_factory=Scheduling, description="Node selection.")
    image: str | None = Field(None, description="Generator image override.")
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete this GenerationRequest that long after it finished (unset: keep it)."
    )


class JobTimings(Timings, CamelModel):
    """Seconds spent in each stage of the generation Job (camelCase in the status)."""

    model_config = CAMEL_CONFIG | {"extra": "ignore"}


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
    timings: JobTimings | None = None
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
        PrinterColumn("Model", ".spec.trainedModelId"),
        PrinterColumn("Duration", ".spec.durationSeconds", "number", "Requested seconds of audio"),
        PrinterColumn("Output", ".status.outputUri"),
        REASON_COLUMN,
        AGE_COLUMN,
    ),
    description="Generate music with a TrainedModel in a batch Job.",
)
