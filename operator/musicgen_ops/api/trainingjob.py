"""TrainingJob: LoRA fine-tuning of a MusicGen base model on a dataset in object storage."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import Field, field_validator

from musicgen_ops.api.common import (
    AGE_COLUMN,
    DNS_LABEL_PATTERN,
    STORAGE_URI_PATTERN,
    CamelModel,
    ComputeResources,
    PrinterColumn,
    ResourceKind,
    Scheduling,
    StatusBase,
)

ExportFormat = Literal["adapter", "merged", "torchscript", "onnx", "onnx-int8"]


class TrainingPhase(str, Enum):
    """Where a TrainingJob stands."""

    PENDING = "Pending"
    SUSPENDED = "Suspended"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class LoraSpec(CamelModel):
    """LoRA adapter hyper-parameters (decoder self- and cross-attention)."""

    r: int = Field(16, ge=1, le=256, description="LoRA rank (8-32 is typical).")
    alpha: int = Field(32, ge=1, le=1024, description="Scaling numerator (alpha / r scales the update).")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout on the LoRA branch.")
    target_modules: list[str] = Field(
        default_factory=list, description="Modules to adapt (empty: self- and cross-attention q/k/v/out)."
    )


class TrainingSpec(CamelModel):
    """Optimisation settings."""

    epochs: int = Field(10, ge=1, le=1000, description="Passes over the training set.")
    batch_size: int = Field(4, ge=1, le=512, description="Clips per forward pass.")
    learning_rate: float = Field(1e-4, gt=0, le=1, description="Peak learning rate.")
    grad_accum: int = Field(1, ge=1, le=1024, description="Forward passes per optimizer step.")
    precision: Literal["fp32", "bf16", "fp16"] = Field("bf16", description="Numeric precision.")
    backend: Literal["hf", "lightning"] = Field("hf", description="Hugging Face Trainer or Lightning.")
    seed: int = Field(42, ge=0, description="Seeds data order, LoRA init and dropout.")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="Share of clips held out for validation.")
    max_steps: int = Field(-1, ge=-1, description="Stop after this many optimizer steps (-1: all epochs).")
    save_steps: int = Field(50, ge=1, description="Checkpoint every N optimizer steps (resume point).")


class TrainingJobSpec(CamelModel):
    """What to train, how, and on which hardware."""

    dataset_uri: str = Field(
        pattern=STORAGE_URI_PATTERN,
        description="Preprocessed dataset folder (holds manifest.json): s3://, az:// or file://.",
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
    export_formats: list[ExportFormat] = Field(
        default_factory=lambda: ["adapter", "merged"],
        min_length=1,
        description="Artifacts to produce (the LoRA adapter, merged weights, TorchScript, ONNX).",
    )
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

    @field_validator("export_formats")
    @classmethod
    def _unique_formats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"exportFormats lists a format twice: {value}")
        return value


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
        PrinterColumn("ETA", ".status.etaSeconds", "integer", "Seconds left", priority=1),
        AGE_COLUMN,
    ),
    description="LoRA fine-tuning of MusicGen on a dataset in object storage.",
)
