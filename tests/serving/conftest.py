"""Fixtures for the generation service: a warm tiny engine, a trained checkpoint, short windows."""

from __future__ import annotations

import json

import pytest

from musicgen_ops.contracts.environment import ServeEnvironment

LORA_TARGETS = r".*decoder\.layers\.\d+\.(self_attn|encoder_attn)\.(q_proj|k_proj|v_proj|out_proj)"


@pytest.fixture(scope="session")
def tiny_engine(tiny_model):
    """A TorchEngine over the session's tiny model, warmed up once (the first generate() is slow)."""
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    engine = TorchEngine(tiny_model)
    engine.generate(["warm up"], num_frames=2, seeds=[0])
    return engine


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory):
    """A trained checkpoint folder as training writes it: adapter, processor, training_metadata.json."""
    import torch
    from peft import LoraConfig, get_peft_model

    from musicgen_ops.pipeline.models import build_random_musicgen

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


@pytest.fixture
def settings(tmp_path, trained_model_dir) -> ServeEnvironment:
    """Settings for tests: tiny default model, 0.2 s windows, the trained model under models_root."""
    return ServeEnvironment(
        default_model="tiny-random",
        models_root=trained_model_dir.parent,
        output_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        window_seconds=0.2,
        context_seconds=0.1,
        batch_window_ms=100,
        warmup=False,
        preload=[],
    )


@pytest.fixture
def engine_factory(tiny_engine):
    """Engine factory sharing the warm tiny engine for the default model; real loading otherwise."""
    from musicgen_ops.pipeline.inference.loader import open_engine

    def factory(reference: str):
        return tiny_engine if reference == "tiny-random" else open_engine(reference)

    return factory


@pytest.fixture
async def service(settings, engine_factory):
    """A started GenerationService."""
    from musicgen_ops.serving.service import GenerationService

    svc = GenerationService(settings, engine_factory=engine_factory)
    await svc.start()
    yield svc
    await svc.close()
