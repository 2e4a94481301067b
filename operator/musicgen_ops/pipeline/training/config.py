"""Training configuration: validated once, shared by the CLI, the Python API and the Kubernetes job."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainConfig(BaseModel):
    """Everything one LoRA fine-tuning run needs; saved as ``train_config.json`` beside the adapter."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path | None = Field(None, description="Preprocessed dataset folder (holds manifest.json).")
    output_dir: Path = Field(description="Checkpoints, logs, loss curve and final_model/ go here.")
    base_model: str = Field("facebook/musicgen-small", description="Hub id, local folder or tiny-random.")
    lora_r: int = Field(16, ge=1, le=256, description="LoRA rank (8-32 is typical).")
    lora_alpha: int | None = Field(
        None, ge=1, description="LoRA scaling numerator (updates scale by alpha / r); default 2 x lora_r."
    )
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout on the LoRA branch.")
    target_modules: list[str] | None = Field(
        None,
        description="Decoder layers to adapt: attention projections (q_proj, self_attn, "
        "encoder_attn.v_proj, ...) and/or the feed-forward fc1, fc2 (feed_forward = both); "
        "default: self- and cross-attention q/k/v/out.",
    )
    condition_dropout: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Share of training clips whose text condition is replaced by the unconditional (null) "
        "one, so classifier-free guidance keeps working (audiocraft's text-to-music recipe uses 0.3).",
    )
    epochs: int = Field(10, ge=1, description="Passes over the training set.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: run all epochs).")
    batch_size: int = Field(4, ge=1, description="Clips per forward pass.")
    grad_accum: int = Field(1, ge=1, description="Forward passes per optimizer step.")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="AdamW (default) or plain SGD.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warm-up."
    )
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="fp16/bf16 need a GPU.")
    seed: int = Field(42, description="Seeds data order, LoRA init and dropout.")
    val_fraction: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Share of tracks held out for validation (a track's clips stay together).",
    )
    max_duration_seconds: float = Field(30.0, gt=0, le=30.0, description="Longer clips are truncated.")
    save_steps: int = Field(50, ge=1, description="Checkpoint every N optimizer steps.")
    save_total_limit: int = Field(3, ge=1, description="Checkpoints kept (oldest removed first).")
    logging_steps: int = Field(1, ge=1)
    backend: Literal["hf", "lightning"] = Field(
        "hf", description="Hugging Face Trainer or PyTorch Lightning."
    )
    resume: bool = Field(False, description="Continue from the last checkpoint in output_dir.")
    merge: bool = Field(False, description="Also write merged full weights to final_model/merged/.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto")
    encode_batch_size: int = Field(
        16, ge=1, le=1024, description="Clips EnCodec encodes at once when building the code cache."
    )

    @model_validator(mode="after")
    def _default_lora_alpha(self) -> TrainConfig:
        """``lora_alpha`` defaults to twice the rank (alpha / r = 2 at every rank)."""
        if self.lora_alpha is None:
            self.lora_alpha = 2 * self.lora_r
        return self

    @property
    def final_model_dir(self) -> Path:
        """Where the trained adapter, processor and metadata are saved."""
        return self.output_dir / "final_model"

    @property
    def checkpoint_dir(self) -> Path:
        """Where resumable checkpoints are written."""
        return self.output_dir / "checkpoints"
