"""Base models fetched once, end to end: mirror a save_pretrained folder, a train-job loads it from the store,
a generate-job on the same node reuses the cached copy (no second download)."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from musicgen_ops.contracts.environment import GenerateJobEnvironment, TrainJobEnvironment
from musicgen_ops.contracts.generation import GenerationParameters
from musicgen_ops.contracts.training import TrainingParameters
from musicgen_ops.jobs import generate_job, train_job
from musicgen_ops.pipeline.models import set_base_model_resolver
from musicgen_ops.pipeline.presets import build_random_musicgen
from musicgen_ops.storage import open_store, read_manifest
from musicgen_ops.storage.base_models import CACHE_ENV, mirror_base_model
from tests.jobs.test_train_job import job_env, raw_dataset  # noqa: F401 - the module-scoped dataset fixture


def test_mirrored_base_model_is_downloaded_once_per_node(raw_dataset, tmp_path, monkeypatch):  # noqa: F811
    folder = tmp_path / "musicgen-tiny"
    loaded = build_random_musicgen("tiny-random", seed=3)
    loaded.model.save_pretrained(folder)
    loaded.processor.save_pretrained(folder)
    mirrored = mirror_base_model(str(folder), f"file://{raw_dataset}/base-models")
    cache = tmp_path / "node-cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    job_env(
        monkeypatch,
        raw_dataset,
        base_model=mirrored.uri,
        model_id="mirrored",
        work_dir=tmp_path / "scratch",
        training=TrainingParameters(epochs=1, batch_size=4, learning_rate=0.003, precision="fp32"),
    )
    try:
        train_job.train(TrainJobEnvironment.from_environ())

        manifest = read_manifest(f"file://{raw_dataset}/artifacts", "mirrored")
        assert manifest is not None and manifest.base_model == mirrored.uri
        metadata = json.loads((tmp_path / "scratch/publish/training_metadata.json").read_text())
        assert metadata["base_model"] == mirrored.uri  # the reference, not this node's cache path
        cached = list(cache.glob("musicgen-tiny/*/model.safetensors"))
        assert len(cached) == 1

        # The store loses the weights: the generate-job can only succeed from the node's cache.
        open_store(mirrored.uri).delete("model.safetensors")
        output = tmp_path / "out.wav"
        clip = tmp_path / "prompts" / "intro.wav"  # an audio prompt, downloaded through storage
        clip.parent.mkdir()
        sf.write(clip, np.zeros((4800, 2), np.float32), 48_000)
        parameters = GenerationParameters(
            prompt="calm piano", duration_seconds=1, random_seed=1, audio_prompt_uri=clip.as_uri()
        )
        settings = GenerateJobEnvironment(
            model_id="mirrored",
            model_uri=f"file://{raw_dataset}/artifacts/models/mirrored",
            parameters=parameters,
            output_uri=output.as_uri(),
            result_uri=(tmp_path / "out.json").as_uri(),
            cache_dir=tmp_path / "model-cache",
            device="cpu",
        )
        result = generate_job.generate(settings)
        assert output.stat().st_size > 0 and result.duration_seconds == 1.0
        assert list(cache.glob("musicgen-tiny/*/model.safetensors")) == cached
    finally:
        set_base_model_resolver(None)
