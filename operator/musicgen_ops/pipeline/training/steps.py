"""The one definition of a training/validation step, shared by the HF Trainer and Lightning loops."""

from __future__ import annotations

import math
import zlib
from typing import Any

import torch

from musicgen_ops.pipeline.errors import TrainingError

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


def model_inputs(batch: dict, device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """Keep the tensors MusicGen's forward takes (drop prompt strings and paths), on ``device``."""
    inputs = {k: batch[k] for k in MODEL_INPUTS}
    return {k: v.to(device) for k, v in inputs.items()} if device is not None else inputs


class ConditionDropout:
    """Classifier-free-guidance dropout: which clips of a training batch lose their text condition.

    Seeded and stateless across restarts: the rows dropped depend only on ``seed``, the optimizer step and
    the micro-batch's position within that step, so a resumed run and both training loops draw alike.
    Under data-parallel training the draw covers the global batch and each rank takes its own slice.

    Args:
        probability: chance that a clip trains unconditionally (audiocraft's text-to-music recipe: 0.3).
        seed: the run's seed.
        rank, world_size: this process's place among the data-parallel ranks.
    """

    def __init__(self, probability: float, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1], got {probability}")
        self.probability = probability
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self._step: int | None = None
        self._micro_batch = 0

    def rows(self, batch_size: int, step: int) -> torch.Tensor:
        """Boolean ``[batch_size]``: True where the clip trains without its text condition."""
        if step != self._step:
            self._step, self._micro_batch = step, 0
        key = zlib.crc32(f"{self.seed}:{step}:{self._micro_batch}".encode())
        self._micro_batch += 1
        if self.probability in (0.0, 1.0):
            return torch.full((batch_size,), self.probability == 1.0)
        draw = torch.rand(batch_size * self.world_size, generator=torch.Generator().manual_seed(key))
        return draw[self.rank * batch_size : (self.rank + 1) * batch_size] < self.probability


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The MusicGen inside a DDP wrapper and a PEFT model."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def unconditional_where(model: torch.nn.Module, inputs: dict, dropped: torch.Tensor) -> dict:
    """Replace the text condition of the ``dropped`` rows by MusicGen's unconditional one.

    The null condition is what ``MusicgenForConditionalGeneration.generate`` feeds the unconditional half
    of classifier-free guidance (and ``get_unconditional_inputs``): text-encoder states of zeros with an
    all-zero attention mask. The frozen T5 runs once, without gradients.
    """
    if not bool(dropped.any()):
        return inputs
    base = base_model(model)
    mask = inputs["attention_mask"]
    with torch.no_grad():
        states = base.text_encoder(input_ids=inputs["input_ids"], attention_mask=mask).last_hidden_state
    keep = ~dropped.to(states.device)
    return {
        "encoder_outputs": (states * keep[:, None, None].to(states.dtype),),
        "attention_mask": mask * keep[:, None].to(mask.dtype),
        "labels": inputs["labels"],
    }


def compute_loss(
    model: torch.nn.Module,
    batch: dict,
    *,
    step: int | None = None,
    condition_dropout: ConditionDropout | None = None,
) -> torch.Tensor:
    """Mean cross-entropy over the 4 codebooks of the delayed codes (pad and -100 ignored).

    In train mode, ``condition_dropout`` replaces the text condition of some clips by the unconditional
    one (see :class:`ConditionDropout`); evaluation always keeps the prompts.

    Raises:
        TrainingError: the loss is NaN or infinite (learning rate too high, fp16 overflow, bad data).
    """
    inputs = model_inputs(batch)
    if model.training:
        frozen_in_eval_mode(model)
        if condition_dropout is not None and condition_dropout.probability > 0:
            dropped = condition_dropout.rows(inputs["labels"].shape[0], step or 0)
            inputs = unconditional_where(model, inputs, dropped)
    loss = model(**inputs).loss
    if not torch.isfinite(loss.detach()).all():
        where = f" at step {step}" if step is not None else ""
        raise TrainingError(
            f"the training loss became {float(loss.detach())}{where}: lower the learning rate, use bf16/fp32 "
            "instead of fp16, or check the dataset"
        )
    return loss


def evaluate_loss(
    model: torch.nn.Module,
    dataset: Any,
    collator: Any,
    batch_size: int,
    device: torch.device | None = None,
) -> float | None:
    """Mean validation loss of ``model`` over ``dataset`` (clip-weighted over batches, eval mode, prompts
    kept); None for an empty dataset. The same code scores the base and the fine-tuned model."""
    if dataset is None or len(dataset) == 0:
        return None
    was_training = model.training
    model.eval()
    total, clips = 0.0, 0
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collator)
    try:
        with torch.no_grad():
            for batch in loader:
                count = int(batch["labels"].shape[0])
                total += float(compute_loss(model, model_inputs(batch, device))) * count
                clips += count
    finally:
        model.train(was_training)
    return total / clips


def frozen_in_eval_mode(model: torch.nn.Module) -> None:
    """Run the frozen T5 text encoder and EnCodec without dropout, as audiocraft does; the training loops
    switch the whole model to train mode before each step."""
    base = base_model(model)
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
