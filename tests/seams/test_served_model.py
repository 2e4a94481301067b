"""A served TrainedModel serves *that* model: the operator's Deployment env, given to the real server app,
preloads and warms up the trained adapter, and a request returns its audio (not the base model's)."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import soundfile as sf

from musicgen_ops.api.trainedmodel import TrainedModelSpec
from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.controllers.builders.deployments import build_generator_deployment
from musicgen_ops.controllers.builders.labels import Owner
from musicgen_ops.controllers.config import OperatorConfig
from musicgen_ops.storage import publish_model
from tests.seams.test_environments import container_env

REQUEST = {"prompt": "calm piano", "duration_seconds": 0.4, "random_seed": 5, "guidance_scale": 1.0}


def generate_locally(model_ref: str, tmp_path) -> np.ndarray:
    """The same request through the pipeline's own generation path, without the server."""
    from musicgen_ops.pipeline.generation.batch import generate_to_files

    (result,) = generate_to_files([REQUEST], model_ref, tmp_path / model_ref.replace("/", "_"), device="cpu")
    return sf.read(result.audio_path, dtype="float32")[0]


def test_deployment_env_serves_the_trained_adapter(trained_model_dir, tmp_path):
    from fastapi.testclient import TestClient

    from musicgen_ops.serving.app import create_app

    root = f"file://{tmp_path / 'store'}"
    publish_model(trained_model_dir, root, "piano-v1", base_model="tiny-random", formats=["adapter"])
    spec = TrainedModelSpec.model_validate(
        {"modelId": "piano-v1", "serving": {"enabled": True, "resources": {"gpu": 0}}}
    )
    deployment = build_generator_deployment(
        Owner("TrainedModel", "piano-v1", "music", "u"),
        spec,
        "piano-v1",
        root,
        OperatorConfig(artifacts_uri=root),
    )
    # The pod's scratch volume is a local folder here; everything else is the Deployment's env as built.
    settings = ServeEnvironment.from_environ(
        container_env(deployment), cache_dir=tmp_path / "cache", output_dir=tmp_path / "out"
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.2)
        models = {m["model_id"]: m for m in client.get("/v1/models").json()["models"]}
        assert models["piano-v1"]["loaded"] is True  # preloaded and warmed before ready
        assert models["piano-v1"]["source"] == f"{root}/models/piano-v1"  # the store URI, no local path
        answer = client.post("/v1/generate", json=REQUEST)
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Model-Id"] == "piano-v1"
        served, rate = sf.read(io.BytesIO(answer.content), dtype="float32")
    assert rate == 32_000 and len(served) == round(0.4 * 32_000)
    trained = generate_locally(str(trained_model_dir), tmp_path)
    base = generate_locally("tiny-random", tmp_path)
    assert np.array_equal(served, trained)  # the trained adapter, same seed, same audio
    assert not np.allclose(served, base)  # not the base model


@pytest.mark.parametrize("variable", ["MUSICGEN_SERVE_MODEL", "MUSICGEN_SERVE_FORMAT"])
def test_server_refuses_to_start_with_the_old_variables(variable, monkeypatch):
    from musicgen_ops.serving.app import create_app

    monkeypatch.setenv(variable, "piano-v1")
    with pytest.raises(ValueError, match=variable):
        create_app()
