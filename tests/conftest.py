"""Fixtures shared by every test package."""

from __future__ import annotations

import json
import os

import pytest

# Never reach for the Hugging Face hub from tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """On a small shared CPU, one intra-op thread makes the tiny model's steps many times faster."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny random MusicGen (model + processor), built once per session. Do not train it in place."""
    from musicgen_ops.pipeline.presets import build_random_musicgen

    return build_random_musicgen("tiny-random")


@pytest.fixture
def fresh_tiny_model():
    """A tiny random MusicGen of its own, for tests that change weights."""
    from musicgen_ops.pipeline.presets import build_random_musicgen

    return build_random_musicgen("tiny-random")


LORA_TARGETS = r".*decoder\.layers\.\d+\.(self_attn|encoder_attn)\.(q_proj|k_proj|v_proj|out_proj)"


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory):
    """A trained checkpoint folder as training writes it: adapter, processor, training_metadata.json."""
    import torch
    from peft import LoraConfig, get_peft_model

    from musicgen_ops.pipeline.presets import build_random_musicgen

    loaded = build_random_musicgen("tiny-random")
    peft_model = get_peft_model(loaded.model, LoraConfig(r=8, target_modules=LORA_TARGETS))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    folder = tmp_path_factory.mktemp("models") / "my-model"
    peft_model.save_pretrained(folder)
    loaded.processor.save_pretrained(folder)
    (folder / "training_metadata.json").write_text(json.dumps({"base_model": "tiny-random"}))
    return folder


@pytest.fixture(scope="session")
def tiny_engine(tiny_model):
    """A TorchEngine over the session's tiny model, warmed up once (the first generate() is slow)."""
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    engine = TorchEngine(tiny_model)
    engine.generate(["warm up"], num_frames=2, seeds=[0])
    return engine
