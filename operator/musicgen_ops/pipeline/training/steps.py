"""The one definition of a training/validation step, shared by the HF Trainer and Lightning loops."""

from __future__ import annotations

import math

import torch

from musicgen_ops.pipeline.errors import TrainingError

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


def model_inputs(batch: dict, device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """Keep the tensors MusicGen's forward takes (drop prompt strings and paths), on ``device``."""
    inputs = {k: batch[k] for k in MODEL_INPUTS}
    return {k: v.to(device) for k, v in inputs.items()} if device is not None else inputs


def compute_loss(model: torch.nn.Module, batch: dict, *, step: int | None = None) -> torch.Tensor:
    """Mean cross-entropy over the 4 codebooks of the delayed codes (pad and -100 ignored).

    Raises:
        TrainingError: the loss is NaN or infinite (learning rate too high, fp16 overflow, bad data).
    """
    if model.training:
        frozen_in_eval_mode(model)
    loss = model(**model_inputs(batch)).loss
    if not torch.isfinite(loss.detach()).all():
        where = f" at step {step}" if step is not None else ""
        raise TrainingError(
            f"the training loss became {float(loss.detach())}{where}: lower the learning rate, use bf16/fp32 "
            "instead of fp16, or check the dataset"
        )
    return loss


def frozen_in_eval_mode(model: torch.nn.Module) -> None:
    """Run the frozen T5 text encoder and EnCodec without dropout, as audiocraft does; the training loops
    switch the whole model to train mode before each step."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for part in ("text_encoder", "audio_encoder"):
        if (module := getattr(base, part, None)) is not None:
            module.eval()


def is_finite(value: float | None) -> bool:
    """True for a real number (not None, NaN or infinite)."""
    return value is not None and math.isfinite(value)


def check_precision(precision: str, device: str = "auto") -> None:
    """fp16/bf16 need a GPU here: refuse with a clear message instead of a crash deep in autocast."""
    if precision in ("fp16", "bf16") and (device == "cpu" or not torch.cuda.is_available()):
        raise TrainingError(
            f"precision {precision} needs a CUDA GPU and none is available: use --precision fp32 on CPU"
        )
