"""generate-job with ``decoder: mbd``: the MBD weights come from the artifact store like a base model
(``MUSICGEN_JOB_MBD_WEIGHTS`` = ``<root>/models/<name>``); missing weights fail the Job permanently with a
message naming the setting."""

from __future__ import annotations

import pytest
import soundfile as sf

from musicgen_ops.contracts.environment import EXIT_CODE_INVALID_INPUT, GenerateJobEnvironment
from musicgen_ops.contracts.generation import GenerationParameters
from musicgen_ops.jobs import generate_job
from musicgen_ops.jobs.runtime import classify
from musicgen_ops.pipeline.inference.decoders.mbd_checkpoint import (
    MBD_MUSICGEN_FILENAME,
    build_random_bands,
    save_mbd_checkpoint,
)
from musicgen_ops.pipeline.models import set_base_model_resolver
from musicgen_ops.pipeline.presets import build_random_musicgen
from musicgen_ops.storage import publish_model


@pytest.fixture(scope="module")
def store(tmp_path_factory, trained_model_dir):
    """An artifact root holding the trained model and tiny random MBD weights (models/mbd-tiny)."""
    root = tmp_path_factory.mktemp("artifacts")
    publish_model(trained_model_dir, root.as_uri(), "my-model", base_model="tiny-random", formats=["adapter"])
    codec = build_random_musicgen("tiny-random").model.audio_encoder
    weights = tmp_path_factory.mktemp("mbd")
    bands = build_random_bands(int(codec.config.codebook_dim), int(codec.config.sampling_rate))
    save_mbd_checkpoint(weights / MBD_MUSICGEN_FILENAME, bands, int(codec.config.sampling_rate))
    publish_model(weights, root.as_uri(), "mbd-tiny", base_model="mbd", formats=["mbd"])
    return root


def _settings(store, tmp_path, mbd_weights: str) -> GenerateJobEnvironment:
    return GenerateJobEnvironment(
        model_id="my-model",
        model_uri=f"{store.as_uri()}/models/my-model",
        base_model="tiny-random",
        parameters=GenerationParameters(prompt="calm", duration_seconds=0.1, random_seed=9, decoder="mbd"),
        output_uri=(tmp_path / "out.wav").as_uri(),
        result_uri=(tmp_path / "out.json").as_uri(),
        cache_dir=tmp_path / "cache",
        device="cpu",
        mbd_weights=mbd_weights,
        mbd_sampling_steps=2,
    )


def test_mbd_weights_come_from_the_artifact_store(store, tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICGEN_BASE_MODEL_CACHE", str(tmp_path / "node-cache"))
    try:
        result = generate_job.generate(_settings(store, tmp_path, f"{store.as_uri()}/models/mbd-tiny"))
    finally:
        set_base_model_resolver(None)
    assert result.num_samples == 3200 == sf.info(str(tmp_path / "out.wav")).frames
    assert list((tmp_path / "node-cache").glob(f"mbd-tiny/*/{MBD_MUSICGEN_FILENAME}"))


@pytest.mark.parametrize("where", ["empty-folder", "unpublished-uri"])
def test_missing_mbd_weights_fail_the_job_naming_the_setting(store, tmp_path, monkeypatch, where):
    monkeypatch.setenv("MUSICGEN_BASE_MODEL_CACHE", str(tmp_path / "node-cache"))
    empty = tmp_path / "no-weights"
    empty.mkdir()
    weights = str(empty) if where == "empty-folder" else f"{store.as_uri()}/models/no-such-mbd"
    downloads: list[str] = []
    monkeypatch.setattr(generate_job, "models_root", lambda uri, model_id: downloads.append(uri))
    try:
        with pytest.raises(Exception, match="MUSICGEN_JOB_MBD_WEIGHTS=") as info:
            generate_job.generate(_settings(store, tmp_path, weights))
    finally:
        set_base_model_resolver(None)
    assert classify(info.value) == EXIT_CODE_INVALID_INPUT
    assert downloads == []  # refused before the model is downloaded
