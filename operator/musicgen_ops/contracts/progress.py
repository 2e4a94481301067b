"""``progress.json``: where a training run stands (the Job writes it, the operator and the CLI read it)."""

from __future__ import annotations

import math
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TrainingPhase = Literal["starting", "training", "evaluating", "saving", "completed", "failed"]


class CheckpointSample(BaseModel):
    """One clip rendered with the model being trained, at one checkpoint, for one sample prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: int = Field(ge=0, description="Optimizer step of the checkpoint.")
    index: int = Field(ge=0, description="Position of the prompt in sample_prompts.")
    prompt: str
    path: str = Field(
        min_length=1,
        description="The WAV file, relative to the run's checkpoints folder (checkpoint-50/samples/0.wav).",
    )
    seconds: float = Field(gt=0)
    sample_rate: int = Field(gt=0)
    seed: int = Field(ge=0)

    @field_validator("path")
    @classmethod
    def _relative_inside(cls, value: str) -> str:
        parts = value.split("/")
        if value.startswith("/") or "\\" in value or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"must be a relative path inside the checkpoints folder, got {value!r}")
        return value


class TrainingProgress(BaseModel):
    """One progress event of a training run; non-finite numbers become null (JSON has no NaN)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: TrainingPhase
    epoch: float = Field(ge=0)
    total_epochs: int = Field(ge=0)
    step: int = Field(ge=0)
    total_steps: int = Field(ge=0)
    loss: float | None = Field(None, description="Latest training loss.")
    val_loss: float | None = Field(
        None, description="Latest validation loss (the fine-tuned model's at the end)."
    )
    base_val_loss: float | None = Field(
        None, description="The base model's validation loss, measured before training (the baseline)."
    )
    learning_rate: float | None = None
    world_size: int | None = Field(
        None, ge=1, description="Training processes (one per GPU) taking part; null in files of older runs."
    )
    samples_per_second: float | None = None
    eta_seconds: float | None = Field(None, description="Estimated seconds left.")
    elapsed_seconds: float = 0.0
    message: str = ""
    time: float = Field(default_factory=time.time, description="Unix time of the event.")
    updated_at: str | None = Field(None, description="UTC time the Job wrote this file (ISO 8601).")
    samples: list[CheckpointSample] = Field(
        default_factory=list,
        description="Checkpoint samples rendered so far (of the checkpoints still kept), oldest first.",
    )

    @field_validator("loss", "val_loss", "learning_rate", "samples_per_second", "eta_seconds", mode="before")
    @classmethod
    def _finite_or_none(cls, value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    @property
    def fraction(self) -> float:
        """Completed share of the optimizer steps, 0..1."""
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def percent(self) -> int:
        """Completed share of the optimizer steps in whole percent."""
        return max(0, min(100, int(100 * self.fraction)))

    def to_dict(self) -> dict:
        """JSON-ready fields (what ``progress.json`` and the JSON-lines log hold)."""
        return self.model_dump(mode="json")
