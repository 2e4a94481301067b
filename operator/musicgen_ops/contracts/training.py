"""Training: the LoRA adapter's shape and the optimisation settings of one fine-tuning run.

The TrainingJob spec (``spec.lora``, ``spec.training``), the train-job environment
(``MUSICGEN_JOB_LORA``, ``MUSICGEN_JOB_TRAINING``), the ``train`` CLI and the pipeline's
``TrainConfig`` all use these two models.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from musicgen_ops.contracts.base import Contract

ExportFormat = Literal["adapter", "merged", "torchscript", "onnx", "onnx-int8"]
#: Every export format, in the order they are produced.
EXPORT_FORMATS: tuple[str, ...] = ("adapter", "merged", "torchscript", "onnx", "onnx-int8")
#: ``auto``: bf16 where the GPU supports it, fp32 on CPU.
Precision = Literal["auto", "fp32", "bf16", "fp16"]
TrainingBackend = Literal["hf", "lightning"]
#: Checkpoint samples: at most this many prompts, each at most this long.
MAX_SAMPLE_PROMPTS = 8
MAX_SAMPLE_SECONDS = 30.0
SamplePrompt = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class LoraParameters(Contract):
    """The LoRA adapter on MusicGen's decoder (self- and cross-attention by default)."""

    r: int = Field(16, ge=1, le=256, description="LoRA rank (8-32 is typical).")
    alpha: int | None = Field(
        None, ge=1, le=4096, description="Scaling numerator: the update is scaled by alpha/r (default 2*r)."
    )
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout on the LoRA branch.")
    target_modules: list[str] = Field(
        default_factory=list,
        description="Decoder layers to adapt: attention projections (q_proj, self_attn, encoder_attn.v_proj, "
        "...) and/or the feed-forward fc1, fc2 (feed_forward = both); empty: self- and cross-attention "
        "q/k/v/out.",
    )

    @property
    def scaling_alpha(self) -> int:
        """``alpha``, or ``2 * r`` when unset."""
        return self.alpha if self.alpha is not None else 2 * self.r


class TrainingParameters(Contract):
    """Optimisation settings of one run."""

    epochs: int = Field(10, ge=1, le=1000, description="Passes over the training set.")
    max_steps: int = Field(-1, ge=-1, description="Stop after this many optimizer steps (-1: all epochs).")
    batch_size: int = Field(4, ge=1, le=512, description="Clips per forward pass.")
    grad_accum: int = Field(1, ge=1, le=1024, description="Forward passes per optimizer step.")
    learning_rate: float = Field(1e-4, gt=0, le=1, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="AdamW (default) or plain SGD.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Learning-rate decay after warm-up."
    )
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    precision: Precision = Field(
        "auto", description="auto (bf16 on a capable GPU, else fp32), fp32, bf16, fp16."
    )
    backend: TrainingBackend = Field("hf", description="Hugging Face Trainer (hf) or PyTorch Lightning.")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seeds data order, LoRA init and dropout.")
    val_fraction: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Share of tracks held out for validation (a track's clips stay together).",
    )
    condition_dropout: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Share of training clips whose text condition is replaced by the unconditional (null) "
        "one, so classifier-free guidance keeps working (audiocraft's text-to-music recipe uses 0.3).",
    )
    encode_batch_size: int = Field(
        16, ge=1, le=1024, description="Clips EnCodec encodes at once when building the code cache."
    )
    max_duration_seconds: float = Field(30.0, gt=0, le=30.0, description="Longer clips are truncated.")
    save_steps: int = Field(50, ge=1, description="Checkpoint every N optimizer steps (resume point).")
    save_total_limit: int = Field(3, ge=1, le=100, description="Checkpoints kept (oldest removed first).")
    logging_steps: int = Field(1, ge=1, description="Log the loss every N optimizer steps.")
    sample_prompts: list[SamplePrompt] = Field(
        default_factory=list,
        max_length=MAX_SAMPLE_PROMPTS,
        description="Text prompts rendered with the model being trained at each checkpoint and published "
        "beside it (checkpoint samples); empty: no samples.",
    )
    sample_seconds: float = Field(
        4.0, gt=0, le=MAX_SAMPLE_SECONDS, description="Length of each checkpoint sample in seconds."
    )
    sample_seed: int = Field(
        0, ge=0, le=2**32 - 1, description="Seed of the checkpoint samples (prompt i uses seed + i)."
    )


class TrainingRecipe(Contract):
    """What one training run produces from a dataset: adapter shape, optimisation, export formats."""

    lora: LoraParameters = Field(default_factory=LoraParameters, description="LoRA hyper-parameters.")
    training: TrainingParameters = Field(default_factory=TrainingParameters, description="Optimisation.")
    export_formats: list[ExportFormat] = Field(
        default_factory=lambda: ["adapter", "merged"],
        min_length=1,
        description="Artifacts to produce (the LoRA adapter, merged weights, TorchScript, ONNX, INT8 ONNX).",
    )

    @field_validator("export_formats")
    @classmethod
    def _unique_formats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"a format is listed twice: {value}")
        return value
