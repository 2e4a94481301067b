"""``manifest.json`` of a published model (``models/<model-id>/``): written last, verified when read."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

MANIFEST_NAME = "manifest.json"


class ManifestFile(BaseModel):
    """One file of a model artifact."""

    path: str = Field(description="'/'-separated path relative to the model folder")
    size: int = Field(ge=0, description="Size in bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex sha256 of the content")


class TrainingSummary(BaseModel):
    """What a training run reports about the model it published (``metadata`` of the manifest)."""

    final_loss: float | None = Field(None, description="Training loss at the end of the run.")
    validation_loss: float | None = Field(None, description="Validation loss of the fine-tuned model.")
    base_validation_loss: float | None = Field(
        None, description="Validation loss of the base model on the same held-out tracks (the baseline)."
    )
    steps: int | None = Field(None, description="Optimizer steps taken.")
    train_loss_per_epoch: list[float] = Field(default_factory=list)
    dataset_uri: str | None = None
    training_job: str | None = Field(None, description="<namespace>/<name> of the TrainingJob.")
    resumed_from: str | None = Field(None, description="Checkpoint the run resumed from, if any.")
    world_size: int | None = Field(None, ge=1, description="Data-parallel training processes (one per GPU).")
    effective_batch_size: int | None = Field(
        None,
        ge=1,
        description="Clips per optimizer step: per-device batch x world size x gradient accumulation.",
    )


class ModelManifest(BaseModel):
    """The ``manifest.json`` of ``models/<model-id>/``; its presence marks a complete artifact."""

    schema_version: int = 1
    model_id: str
    base_model: str
    formats: list[str] = Field(default_factory=list, description="e.g. adapter, merged, torchscript, onnx")
    files: list[ManifestFile]
    created: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def total_size(self) -> int:
        """Sum of the file sizes in bytes."""
        return sum(f.size for f in self.files)

    @property
    def training(self) -> TrainingSummary:
        """The training summary stored in ``metadata`` (empty when the model was not trained here)."""
        known = {k: v for k, v in self.metadata.items() if k in TrainingSummary.model_fields}
        return TrainingSummary.model_validate(known)

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys), the bytes that are stored and hashed."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True).encode()

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON: changes whenever any file, format or metadata changes."""
        return hashlib.sha256(self.to_json()).hexdigest()
