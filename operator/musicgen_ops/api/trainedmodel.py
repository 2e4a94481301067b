"""TrainedModel: a fine-tuned model's artifacts in storage, optionally served by a generator Deployment."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import ClassVar

from pydantic import Field

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
from musicgen_ops.contracts.environment import EngineName, ModelFormat
from musicgen_ops.contracts.training import ExportFormat


class ModelPhase(str, Enum):
    """Where a TrainedModel stands."""

    PENDING = "Pending"
    READY = "Ready"
    INVALID = "Invalid"


class DeletionPolicy(str, Enum):
    """What happens to the artifacts when the TrainedModel is deleted."""

    RETAIN = "Retain"
    DELETE = "Delete"


class ServingSpec(CamelModel):
    """A generator Deployment + Service serving this model over HTTP."""

    legacy_names: ClassVar[dict[str, str]] = {"format": "model_format"}

    enabled: bool = Field(False, description="Create the Deployment and Service.")
    replicas: int = Field(1, ge=0, le=50, description="Generator pods.")
    model_format: ModelFormat = Field(
        "auto", description="Which exported format to load (auto: the adapter, merged at load)."
    )
    engine: EngineName = Field("auto", description="Generation backend (auto: fast on GPU, torch on CPU).")
    resources: ComputeResources = Field(default_factory=ComputeResources, description="Per-pod resources.")
    scheduling: Scheduling = Field(default_factory=Scheduling, description="Node selection.")
    image: str | None = Field(None, description="Generator image override.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the generator.")


class TrainedModelSpec(CamelModel):
    """Which artifacts make up the model and whether to serve it."""

    model_id: str | None = Field(
        None,
        pattern=DNS_LABEL_PATTERN,
        max_length=63,
        description="Folder name under <artifacts>/models/; default: this resource's name.",
    )
    artifacts_uri: str | None = Field(
        None,
        pattern=STORAGE_URI_PATTERN,
        description="Root URI holding models/<modelId>/ (default: the operator's ARTIFACTS_URI).",
    )
    base_model: str = Field(
        "facebook/musicgen-small", min_length=1, description="Base model the adapter fits."
    )
    formats: list[ExportFormat] = Field(
        default_factory=list, description="Formats that must be present (empty: whatever the manifest lists)."
    )
    training_job: str | None = Field(None, description="The TrainingJob that produced it, if any.")
    deletion_policy: DeletionPolicy = Field(
        DeletionPolicy.RETAIN, description="Retain (default) or Delete the artifacts with the resource."
    )
    serving: ServingSpec = Field(default_factory=ServingSpec, description="Serve the model over HTTP.")


class TrainedModelStatus(StatusBase):
    """Observed state of a TrainedModel."""

    phase: ModelPhase | None = Field(None, description="Pending, Ready or Invalid.")
    artifacts_uri: str | None = Field(None, description="Folder of the model's artifacts.")
    formats: list[str] = Field(default_factory=list, description="Formats listed in the manifest.")
    formats_text: str | None = Field(None, description="Formats joined by ',' for kubectl.")
    final_loss: float | None = Field(None, description="Final training loss from the manifest.")
    validation_loss: float | None = Field(None, description="Validation loss of the fine-tuned model.")
    base_validation_loss: float | None = Field(
        None, description="Validation loss of the base model on the same held-out tracks (the baseline)."
    )
    size_bytes: int | None = Field(None, description="Total size of the artifacts.")
    missing: list[str] = Field(default_factory=list, description="What is missing, when Invalid.")
    serving_url: str | None = Field(None, description="In-cluster URL of the generator Service.")
    deployment_name: str | None = None
    checked_time: datetime | None = Field(None, description="When the artifacts were last checked.")


TRAINED_MODEL = ResourceKind(
    kind="TrainedModel",
    plural="trainedmodels",
    singular="trainedmodel",
    short_names=("mtm",),
    spec_model=TrainedModelSpec,
    status_model=TrainedModelStatus,
    columns=(
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Base", ".spec.baseModel"),
        PrinterColumn("Formats", ".status.formatsText"),
        PrinterColumn("Loss", ".status.finalLoss", "number"),
        PrinterColumn("Val Loss", ".status.validationLoss", "number", "Fine-tuned model, held-out tracks"),
        PrinterColumn("Base Loss", ".status.baseValidationLoss", "number", "Base model, same tracks"),
        PrinterColumn("URL", ".status.servingUrl"),
        AGE_COLUMN,
    ),
    description="A fine-tuned MusicGen model in object storage, optionally served.",
)
