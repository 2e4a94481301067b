"""Training configuration: the training contract plus where this run reads and writes, validated once."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from typing_extensions import Self

from musicgen_ops.contracts.environment import DEVICE_PATTERN
from musicgen_ops.contracts.training import LoraParameters, TrainingParameters


class TrainConfig(TrainingParameters):
    """Everything one LoRA fine-tuning run needs; saved as ``train_config.json`` beside the adapter.

    The optimisation fields and ``lora`` are the contract's (:mod:`musicgen_ops.contracts.training`),
    shared with the TrainingJob spec, the train-job environment and the ``train`` CLI.
    """

    data_dir: Path | None = Field(None, description="Preprocessed dataset folder (holds manifest.json).")
    output_dir: Path = Field(description="Checkpoints, logs, loss curve and final_model/ go here.")
    base_model: str = Field("facebook/musicgen-small", description="Hub id, local folder or tiny-random.")
    lora: LoraParameters = Field(default_factory=LoraParameters, description="LoRA hyper-parameters.")
    resume: bool = Field(False, description="Continue from the last checkpoint in output_dir.")
    merge: bool = Field(False, description="Also write merged full weights to final_model/merged/.")
    device: str = Field("auto", pattern=DEVICE_PATTERN, description="auto, cpu, cuda or cuda:N.")

    @model_validator(mode="after")
    def _resolve_precision(self) -> Self:
        """``auto`` becomes bf16 on a GPU that supports it, fp32 otherwise (recorded as resolved)."""
        if self.precision == "auto":
            import torch

            gpu = self.device != "cpu" and torch.cuda.is_available()
            self.precision = "bf16" if gpu and torch.cuda.is_bf16_supported() else "fp32"
        return self

    @property
    def final_model_dir(self) -> Path:
        """Where the trained adapter, processor and metadata are saved."""
        return self.output_dir / "final_model"

    @property
    def checkpoint_dir(self) -> Path:
        """Where resumable checkpoints are written."""
        return self.output_dir / "checkpoints"
