"""Fixtures for the generation service: a warm tiny engine, a trained checkpoint, short windows."""

from __future__ import annotations

import pytest

from musicgen_ops.contracts.environment import ServeEnvironment


@pytest.fixture
def settings(tmp_path, trained_model_dir) -> ServeEnvironment:
    """Settings for tests: tiny default model, 0.2 s windows, the trained model under models_root."""
    return ServeEnvironment(
        default_model="tiny-random",
        models_root=trained_model_dir.parent,
        output_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        window_seconds=0.2,
        stride_seconds=0.1,
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
