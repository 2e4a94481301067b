"""PEFT LoRA adapters on MusicGen's decoder attention (optionally feed-forward); the rest stays frozen."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from musicgen_ops.pipeline.errors import TrainingError

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import MusicgenForConditionalGeneration

ATTENTIONS = ("self_attn", "encoder_attn")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")
FEED_FORWARD = ("fc1", "fc2")
DEFAULT_TARGET_MODULES = [f"{a}.{p}" for a in ATTENTIONS for p in PROJECTIONS]
_DECODER_LAYERS = r"decoder\.model\.decoder\.layers\.\d+\."


def target_modules_regex(names: list[str] | None) -> str:
    """A regex matching only the MusicGen decoder layers' linear modules named in ``names``.

    ``names`` items are ``q_proj`` (both attentions), ``self_attn`` / ``encoder_attn`` (all four
    projections of one attention), ``self_attn.q_proj``, or the feed-forward ``fc1`` / ``fc2``
    (``feed_forward``: both). The T5 text encoder's own q/k/v/o are never matched: it stays frozen.
    """
    modules: set[str] = set()
    for name in names or DEFAULT_TARGET_MODULES:
        if name in FEED_FORWARD or name == "feed_forward":
            modules.update(FEED_FORWARD if name == "feed_forward" else [name])
            continue
        attention, _, projection = name.rpartition(".") if "." in name else ("", "", name)
        if name in ATTENTIONS:
            attention, projection = name, ""
        if attention and attention not in ATTENTIONS or projection and projection not in PROJECTIONS:
            raise TrainingError(
                f"unknown LoRA target module {name!r}: use {', '.join(PROJECTIONS)}, "
                f"{', '.join(ATTENTIONS)}, <attention>.<projection> such as self_attn.q_proj, "
                f"or the feed-forward {', '.join(FEED_FORWARD)} (feed_forward: both)"
            )
        for a in [attention] if attention else ATTENTIONS:
            for p in [projection] if projection else PROJECTIONS:
                modules.add(f"{a}.{p}")
    alternatives = "|".join(sorted(m.replace(".", "\\.") for m in modules))
    return rf"{_DECODER_LAYERS}({alternatives})"


def apply_lora(
    model: MusicgenForConditionalGeneration,
    r: int = 16,
    alpha: int | None = None,
    dropout: float = 0.1,
    target_modules: list[str] | None = None,
) -> PeftModel:
    """Freeze the model and add LoRA adapters on the decoder's attention projections (and feed-forward
    layers when targeted); ``alpha`` defaults to ``2 * r``."""
    from peft import LoraConfig, get_peft_model

    pattern = target_modules_regex(target_modules)
    if not any(re.fullmatch(pattern, name) for name, _ in model.named_modules()):
        raise TrainingError(f"no module of {type(model).__name__} matches the LoRA targets {target_modules}")
    config = LoraConfig(
        r=r, lora_alpha=alpha or 2 * r, lora_dropout=dropout, target_modules=pattern, bias="none"
    )
    return get_peft_model(model, config)


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
