"""Fixtures for export tests: a tiny MusicGen with a perturbed LoRA adapter, its checkpoint, one export."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

LORA_TARGETS = r".*decoder\.layers\.\d+\.(self_attn|encoder_attn)\.(q_proj|k_proj|v_proj|out_proj)"
PROMPTS = ["calm piano melody", "fast rock drums with distorted electric guitar"]


@pytest.fixture(scope="session")
def lora_model():
    """A PEFT LoRA model over a fresh tiny MusicGen, ``lora_B`` randomised so the adapter matters."""
    import torch
    from peft import LoraConfig, get_peft_model

    from musicgen_ops.pipeline.presets import build_random_musicgen

    loaded = build_random_musicgen("tiny-random")
    peft_model = get_peft_model(loaded.model, LoraConfig(r=8, lora_alpha=16, target_modules=LORA_TARGETS))
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    peft_model.eval()
    return SimpleNamespace(peft=peft_model, processor=loaded.processor)


@pytest.fixture(scope="session")
def merged_model(lora_model):
    """The reference: the same adapter merged by the exporter's merge step (a copy)."""
    from musicgen_ops.pipeline.export.merge import merge_lora

    return merge_lora(lora_model.peft)


@pytest.fixture(scope="session")
def checkpoint(lora_model, tmp_path_factory) -> Path:
    """A ``final_model/`` folder as training writes it: adapter, processor, training_metadata.json."""
    path = tmp_path_factory.mktemp("train") / "final_model"
    lora_model.peft.save_pretrained(path)
    lora_model.processor.save_pretrained(path)
    (path / "training_metadata.json").write_text(json.dumps({"base_model": "tiny-random", "epochs": 1}))
    return path


@pytest.fixture(scope="session")
def exported(checkpoint, tmp_path_factory) -> SimpleNamespace:
    """One export of every format (done once per session)."""
    from musicgen_ops.pipeline.export.exporter import export_trained_model_from_checkpoint

    out = tmp_path_factory.mktemp("export") / "exported"
    manifest = export_trained_model_from_checkpoint(
        checkpoint, out, ["merged", "torchscript", "onnx", "onnx-int8"]
    )
    return SimpleNamespace(root=out, manifest=manifest)


@pytest.fixture(scope="session")
def onnx_engine(exported):
    from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine

    return ONNXInferenceEngine(exported.root)


def hf_generate(model, processor, prompts: list[str], max_new_tokens: int, guidance_scale: float):
    """Greedy ``generate()``: returns (codes ``[B, K, frames]``, audio ``[B, samples]``) as numpy."""
    from unittest import mock

    import torch

    captured = {}
    decode = model.audio_encoder.decode

    def spy(codes, *args, **kwargs):
        captured["codes"] = codes.clone()
        return decode(codes, *args, **kwargs)

    inputs = processor(text=prompts, padding=True, return_tensors="pt")
    with mock.patch.object(model.audio_encoder, "decode", side_effect=spy), torch.no_grad():
        out = model.generate(
            **inputs,
            do_sample=False,
            guidance_scale=guidance_scale,
            max_new_tokens=max_new_tokens,
            return_dict_in_generate=True,
        )
    # transformers 5 puts the decoded audio in `sequences`; the codes are what it handed to EnCodec.
    return captured["codes"][0].numpy(), out.sequences[:, 0].numpy()
