"""Jobs and generator Deployments carry the base model cache volume, the mirror and an optional HF_TOKEN."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicgen_ops.api.generationrequest import GenerationRequestSpec
from musicgen_ops.api.trainedmodel import TrainedModelSpec
from musicgen_ops.api.trainingjob import TrainingJobSpec
from musicgen_ops.controllers.builders import pods as pod_builders
from musicgen_ops.controllers.builders.deployments import build_generator_deployment
from musicgen_ops.controllers.builders.jobs import build_generation_job, build_training_job, generate_settings
from musicgen_ops.controllers.builders.labels import Owner
from musicgen_ops.controllers.config import ConfigurationError, load_config
from musicgen_ops.storage.base_models import mirror_base_model, resolve_base_model

OWNER = Owner("TrainingJob", "piano", "music", "uid-1")


def pods(config) -> dict[str, dict]:
    """The pod specs of the three kinds of children the operator creates."""
    train = build_training_job(OWNER, TrainingJobSpec.model_validate({"datasetUri": "s3://d/x"}), config)
    spec = GenerationRequestSpec.model_validate({"model": "m", "prompt": "jazz"})
    owner = Owner("GenerationRequest", "g1", "music", "u")
    settings = generate_settings(owner, spec, "m", "s3://b/models/m", "base", config)
    generate = build_generation_job(owner, spec, settings, config)
    served = TrainedModelSpec.model_validate({"serving": {"enabled": True}})
    server = build_generator_deployment(
        Owner("TrainedModel", "tm", "music", "u"), served, "tm", "s3://b", config
    )
    return {
        "train": train["spec"]["template"]["spec"],
        "generate": generate["spec"]["template"]["spec"],
        "server": server["spec"]["template"]["spec"],
    }


@pytest.mark.parametrize("kind", ["train", "generate", "server"])
def test_default_cache_is_an_empty_dir_and_no_token(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUSICGEN_OPERATOR_BASE_MODEL_MIRROR", raising=False)
    pod = pods(load_config())[kind]
    container = pod["containers"][0]
    assert {"name": "base-models", "emptyDir": {}} in pod["volumes"]
    assert {"name": "base-models", "mountPath": "/cache/base-models"} in container["volumeMounts"]
    env = {item["name"]: item for item in container["env"]}
    assert env["MUSICGEN_BASE_MODEL_CACHE"]["value"] == "/cache/base-models"
    assert "MUSICGEN_BASE_MODEL_MIRROR" not in env and "HF_TOKEN" not in env


@pytest.mark.parametrize("kind", ["train", "generate", "server"])
def test_pvc_mirror_and_hf_token_from_operator_config(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICGEN_OPERATOR_BASE_MODEL_MIRROR", "s3://musicgen/base-models")
    monkeypatch.setenv("MUSICGEN_OPERATOR_BASE_MODEL_CACHE_PVC", "model-cache")
    monkeypatch.setenv("MUSICGEN_OPERATOR_HF_TOKEN_SECRET", "hf")
    pod = pods(load_config())[kind]
    assert {"name": "base-models", "persistentVolumeClaim": {"claimName": "model-cache"}} in pod["volumes"]
    env = {item["name"]: item for item in pod["containers"][0]["env"]}
    assert env["MUSICGEN_BASE_MODEL_MIRROR"]["value"] == "s3://musicgen/base-models"
    assert env["HF_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "hf", "key": "HF_TOKEN", "optional": True}
    }


def test_bad_mirror_uri_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICGEN_OPERATOR_BASE_MODEL_MIRROR", "ftp://mirror")
    with pytest.raises(ConfigurationError, match="MUSICGEN_OPERATOR_BASE_MODEL_MIRROR"):
        load_config()


def test_gpu_pods_get_the_configured_runtime_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICGEN_OPERATOR_DEFAULT_RUNTIME_CLASS", "nvidia")
    config = load_config()
    gpu = TrainingJobSpec.model_validate({"datasetUri": "s3://d/x", "resources": {"gpu": 1}})
    cpu = TrainingJobSpec.model_validate({"datasetUri": "s3://d/x", "resources": {"gpu": 0}})
    assert build_training_job(OWNER, gpu, config)["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    assert "runtimeClassName" not in build_training_job(OWNER, cpu, config)["spec"]["template"]["spec"]


def test_job_env_is_what_the_resolver_in_the_pod_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seam round trip: the container env the builder writes makes storage.base_models find the mirror."""
    folder = tmp_path / "musicgen-small"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    mirror = (tmp_path / "mirror").as_uri()
    mirror_base_model(str(folder), mirror, name="facebook/musicgen-small")
    monkeypatch.setattr(pod_builders, "BASE_MODEL_CACHE_PATH", str(tmp_path / "node-cache"))
    monkeypatch.setenv("MUSICGEN_OPERATOR_BASE_MODEL_MIRROR", mirror)
    container = pods(load_config())["train"]["containers"][0]
    for item in container["env"]:
        if "value" in item:
            monkeypatch.setenv(item["name"], item["value"])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "base-models")
    resolved = Path(resolve_base_model("facebook/musicgen-small"))
    assert resolved.parent == Path(mount["mountPath"]) / "facebook--musicgen-small"
    assert (resolved / "config.json").read_text() == "{}"
