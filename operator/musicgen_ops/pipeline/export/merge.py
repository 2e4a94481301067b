"""Merging LoRA adapters into the base weights, so every exported graph is a plain MusicGen."""

from __future__ import annotations

import copy
import logging
from typing import Any

from musicgen_ops.pipeline.errors import ExportError

logger = logging.getLogger(__name__)


def _tuner_layers(model: Any) -> list[str]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [name for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]


def merge_lora(model: Any, *, inplace: bool = False) -> Any:
    """Return a ``MusicgenForConditionalGeneration`` with every LoRA adapter merged into its weights.

    Args:
        model: a ``peft.PeftModel`` wrapping MusicGen, a MusicGen with adapters injected in place, or a
            plain MusicGen (returned as is).
        inplace: merge into ``model`` itself instead of a deep copy (saves memory for large models; the
            caller's PEFT model is unusable afterwards).

    Raises:
        ExportError: the model is not MusicGen, or adapter layers remain after merging.
    """
    from peft import PeftModel
    from transformers import MusicgenForConditionalGeneration

    if isinstance(model, PeftModel):
        source = model if inplace else copy.deepcopy(model)
        merged = source.merge_and_unload()
        logger.info("merged LoRA adapter(s) %s into the base weights", ", ".join(model.peft_config))
    elif _tuner_layers(model):
        merged = model if inplace else copy.deepcopy(model)
        _merge_injected(merged)
    else:
        merged = model
    if not isinstance(merged, MusicgenForConditionalGeneration):
        raise ExportError(
            "expected a MusicgenForConditionalGeneration (or a PEFT model wrapping one), "
            f"got {type(merged).__name__}"
        )
    remaining = _tuner_layers(merged)
    if remaining:
        raise ExportError(f"LoRA layers remain after merging (first: {remaining[0]}); cannot export")
    merged.eval()
    return merged


def _merge_injected(model: Any) -> None:
    """Merge adapters injected with ``peft.inject_adapter_in_model`` and put the base layers back."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name in _tuner_layers(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = getattr(parent, child)
        if not isinstance(layer, BaseTunerLayer):  # already replaced through an outer layer
            continue
        layer.merge()
        setattr(parent, child, layer.get_base_layer())
    logger.info("merged injected LoRA layers into the base weights")
