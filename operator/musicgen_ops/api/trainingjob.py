"""TrainingJob: LoRA fine-tuning of a MusicGen base model on a dataset in object storage."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field

from musicgen_ops.api.common import (
    AGE_COLUMN,
    CAMEL_CONFIG,
    DNS_LABEL_PATTERN,
    STORAGE_URI_PATTERN,
    CamelModel,
    ComputeResources,
    PrinterColumn,
    ResourceKind,
    Scheduling,
    StatusBase,
)
from musicgen_ops.contracts.training import LoraParameters, TrainingParameters, TrainingRecipe


class TrainingPhase(str, Enum):
    """Where a TrainingJob stands."""

    PENDING = "Pending"
    SUSPENDED = "Suspended"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class LoraSpec(LoraParameters, CamelModel):
    """LoRA adapter hyper-parameters (the contract's, camelCase)."""

    model_config = CAMEL_CONFIG


class TrainingSpec(TrainingParameters, CamelModel):
    """Optimisation settings (the contract's, camelCase)."""

    model_config = CAMEL_CONFIG


class TrainingJobSpec(TrainingRecipe, CamelModel):
    """What to train, how, and on which hardware."""

    model_config = CAMEL_CONFIG

    dataset_uri: str = Field(
        pattern=STORAGE_URI_PATTERN,
        description="Dataset folder: preprocessed (holds manifest.json) or raw tracks; s3://, az:// or file://.",
    )
    base_model: str = Field(
        "facebook/musicgen-small", min_length=1, description="Hub id or folder URI of the base model."
    )
    model_id: str | None = Field(
        None,
        pattern=DNS_LABEL_PATTERN,
        max_length=63,
        description="Name of the TrainedModel (and artifacts folder) to produce; default: this name.",
    )
    lora: LoraSpec = Field(default_factory=LoraSpec, description="LoRA hyper-parameters.")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Optimisation settings.")
    resources: ComputeResources = Field(default_factory=ComputeResources, description="Pod resources.")
    scheduling: Scheduling = Field(default_factory=Scheduling, description="Node selection.")
    image: str | None = Field(None, description="Trainer image override.")
    storage_secret: str | None = Field(
        None, description="Secret with storage credentials (envFrom); default from the operator."
    )
    suspend: bool = Field(False, description="Suspend the Job (Kueue admission or manual pause).")
    active_deadline_seconds: int = Field(
        86400, ge=60, le=14 * 86400, description="Kill the Job after this long."
    )
    backoff_limit: int | None = Field(
        None, ge=0, le=20, description="Pod retries (each resumes from the last checkpoint)."
    )


class TrainingJobStatus(StatusBase):
    """Observed state of a TrainingJob, with live training progress."""

    phase: TrainingPhase | None = Field(None, description="Pending, Suspended, Running, Succeeded or Failed.")
    job_name: str | None = Field(None, description="The batch/v1 Job running the training.")
    start_time: datetime | None = None
    completion_time: datetime | None = None
    current_epoch: float | None = Field(None, description="Epoch reached (fractional while running).")
    total_epochs: int | None = None
    epochs: str | None = Field(None, description="'epoch/total' for kubectl.")
    current_step: int | None = None
    total_steps: int | None = None
    progress_percent: int | None = Field(None, ge=0, le=100, description="Completed share of the steps.")
    current_loss: float | None = Field(None, description="Latest training loss.")
    validation_loss: float | None = Field(None, description="Latest validation loss.")
    base_validation_loss: float | None = Field(
        None, description="The base model's validation loss, measured before training (the baseline)."
    )
    eta_seconds: int | None = Field(None, description="Estimated seconds left.")
    training_phase: str | None = Field(None, description="Trainer phase from progress.json.")
    last_progress_time: datetime | None = None
    progress_uri: str | None = Field(None, description="Where the Job writes progress.json.")
    artifacts_uri: str | None = Field(None, description="Folder of the finished model artifacts.")
    trained_model: str | None = Field(None, description="TrainedModel created on success.")
    failure_reason: str | None = Field(None, description="Why the run failed (Job condition, OOMKilled...).")


TRAINING_JOB = ResourceKind(
    kind="TrainingJob",
    plural="trainingjobs",
    singular="trainingjob",
    short_names=("mtj", "tj"),
    spec_model=TrainingJobSpec,
    status_model=TrainingJobStatus,
    columns=(
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Epoch", ".status.epochs", description="Epoch / total epochs"),
        PrinterColumn("Progress", ".status.progressPercent", "integer", "Percent of steps done"),
        PrinterColumn("Loss", ".status.currentLoss", "number"),
        PrinterColumn("Model", ".status.trainedModel"),
        PrinterColumn("Val Loss", ".status.validationLoss", "number", priority=1),
        PrinterColumn("Base Loss", ".status.baseValidationLoss", "number", "Base model", priority=1),
        PrinterColumn("ETA", ".status.etaSeconds", "integer", "Seconds left", priority=1),
        AGE_COLUMN,
    ),
    description="LoRA fine-tuning of MusicGen on a dataset in object storage.",
)
