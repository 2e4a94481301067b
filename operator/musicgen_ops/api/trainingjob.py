"""TrainingJob: LoRA fine-tuning of a MusicGen base model on a dataset in object storage."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import ClassVar

from pydantic import Field

from musicgen_ops.api.common import (
    AGE_COLUMN,
    CAMEL_CONFIG,
    DNS_LABEL_PATTERN,
    REASON_COLUMN,
    STORAGE_URI_PATTERN,
    CamelModel,
    ComputeResources,
    PrinterColumn,
    ResourceKind,
    Scheduling,
    StatusBase,
)
from musicgen_ops.api.trainedmodel import DeletionPolicy
from musicgen_ops.contracts.training import LoraParameters, TrainingParameters, TrainingRecipe


class TrainingPhase(str, Enum):
    """Where a TrainingJob stands."""

    PENDING = "Pending"
    #: Waiting for Kueue to admit the Job (it is suspended until then).
    QUEUED = "Queued"
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


#: Most worker pods one TrainingJob may ask for (a bound, not a promise that the cluster has them).
MAX_NODES = 64


class TrainingResources(ComputeResources):
    """What each worker pod of a TrainingJob asks for, and how many worker pods (nodes) train together.

    World size = nodes x max(gpu, 1): one training process per GPU, or one per pod on CPU (gloo).
    """

    gpu: int = Field(
        1, ge=0, le=16, description="GPUs per worker pod (per node); one training process each (0: CPU)."
    )
    nodes: int = Field(
        1,
        ge=1,
        le=MAX_NODES,
        description="Worker pods (one per node) that train together; over 1: an Indexed Job and a "
        "headless Service, torchrun rendezvous on index 0 (0 GPUs: one gloo process per pod).",
    )

    @property
    def processes_per_node(self) -> int:
        """Training processes in each worker pod: one per GPU, or one on CPU."""
        return max(self.gpu, 1)

    @property
    def world_size(self) -> int:
        """Training processes in the whole run."""
        return self.nodes * self.processes_per_node


class TrainingJobSpec(TrainingRecipe, CamelModel):
    """What to train, how, and on which hardware."""

    model_config = CAMEL_CONFIG
    #: What shapes the run: fixed once created (CEL ``self == oldSelf`` in the CRD; the operator refuses
    #: an edit it sees anyway). suspend, ttlSecondsAfterFinished and deletionPolicy stay editable.
    immutable_fields: ClassVar[tuple[str, ...]] = (
        "dataset_uri",
        "base_model",
        "model_id",
        "lora",
        "training",
        "export_formats",
        "resources",
        "scheduling",
        "image",
        "storage_secret",
        "active_deadline_seconds",
        "backoff_limit",
    )

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
    resources: TrainingResources = Field(
        default_factory=TrainingResources, description="Resources of each worker pod, and how many."
    )
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
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete this TrainingJob that long after it finished (unset: keep it)."
    )
    deletion_policy: DeletionPolicy = Field(
        DeletionPolicy.RETAIN,
        description="Retain (default) or Delete the run folder (checkpoints, progress) with the resource.",
    )


class Attempt(CamelModel):
    """One failed pod of the training Job."""

    pod: str = Field(description="Pod name.")
    reason: str = Field(description="OOMKilled, Error, DeadlineExceeded...")
    exit_code: int | None = Field(None, description="The container's exit code.")
    message: str | None = Field(None, description="Last line of the termination message.")


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
    run_uri: str | None = Field(None, description="Folder of this incarnation's checkpoints and progress.")
    spec_digest: str | None = Field(
        None, description="Digest of the run-shaping spec the Job was built from."
    )
    attempts: int | None = Field(None, description="Pods started so far (retries included).")
    failed_attempts: list[Attempt] = Field(
        default_factory=list, description="Every failed pod, oldest first."
    )
    requested_world_size: int | None = Field(
        None, description="Training processes the spec asks for (nodes x GPUs per node, 1 per CPU pod)."
    )
    world_size: int | None = Field(
        None, description="Training processes taking part, as the trainer reports them in progress.json."
    )
    workers: str | None = Field(None, description="'running/requested' worker pods of a multi-node run.")
    failed_indexes: str | None = Field(
        None, description="Worker indexes that failed for good (Job status.failedIndexes), e.g. '1,3'."
    )


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
        REASON_COLUMN,
        PrinterColumn("Val Loss", ".status.validationLoss", "number", priority=1),
        PrinterColumn("Base Loss", ".status.baseValidationLoss", "number", "Base model", priority=1),
        PrinterColumn("ETA", ".status.etaSeconds", "integer", "Seconds left", priority=1),
        PrinterColumn("Workers", ".status.workers", description="Running/requested worker pods", priority=1),
        PrinterColumn("World", ".status.worldSize", "integer", "Training processes reported", priority=1),
        AGE_COLUMN,
    ),
    description="LoRA fine-tuning of MusicGen on a dataset in object storage.",
)
