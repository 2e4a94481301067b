"""Pure builders, config, settings round trip, conditions and failure reasons: plain unit tests."""

from __future__ import annotations

import pytest

from musicgen_ops.api.generationrequest import GenerationRequestSpec
from musicgen_ops.api.trainedmodel import TrainedModelSpec
from musicgen_ops.api.trainingjob import TrainingJobSpec
from musicgen_ops.contracts.environment import GenerateJobEnvironment, TrainJobEnvironment
from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.controllers.builders.deployments import build_generator_deployment, build_generator_service
from musicgen_ops.controllers.builders.jobs import (
    build_generation_job,
    build_training_job,
    generate_settings,
    train_settings,
)
from musicgen_ops.controllers.builders.labels import QUEUE_LABEL, Owner, child_name
from musicgen_ops.controllers.config import ConfigurationError, load_config
from musicgen_ops.controllers.failures import failure_reason, job_outcome
from musicgen_ops.controllers.permissions import cluster_role_rules, rules_for
from musicgen_ops.controllers.status import set_condition
from musicgen_ops.controllers.trainingjob import progress_fields

OWNER = Owner("TrainingJob", "piano", "music", "uid-1", {QUEUE_LABEL: "gpu"})


@pytest.fixture
def config(monkeypatch):
    monkeypatch.setenv("MUSICGEN_OPERATOR_ARTIFACTS_URI", "s3://bucket/root")
    monkeypatch.setenv("MUSICGEN_OPERATOR_STORAGE_SECRET", "creds")
    monkeypatch.setenv("MUSICGEN_OPERATOR_DEFAULT_NODE_SELECTOR", '{"pool": "gpu"}')
    monkeypatch.setenv("MUSICGEN_OPERATOR_DEFAULT_TOLERATIONS", '[{"key": "gpu", "operator": "Exists"}]')
    return load_config()


class TestTrainingJob:
    def test_job_shape(self, config):
        spec = TrainingJobSpec.model_validate(
            {
                "datasetUri": "s3://d/x",
                "resources": {"gpu": 4, "gpuType": "A100"},
                "suspend": True,
                "scheduling": {"priorityClassName": "high", "nodeSelector": {"zone": "a"}},
            }
        )
        job = build_training_job(OWNER, spec, config)
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert job["metadata"]["name"] == "piano-train"
        assert job["metadata"]["labels"][QUEUE_LABEL] == "gpu"
        assert job["spec"]["suspend"] is True and job["spec"]["backoffLimit"] == 3
        rules = job["spec"]["podFailurePolicy"]["rules"]
        assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
        assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [3, 137]
        assert pod["restartPolicy"] == "Never" and pod["priorityClassName"] == "high"
        assert pod["nodeSelector"] == {"pool": "gpu", "nvidia.com/gpu.product": "A100", "zone": "a"}
        assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]

    def test_env_round_trips_through_job_settings(self, config, monkeypatch):
        spec = TrainingJobSpec.model_validate(
            {
                "datasetUri": "s3://d/x",
                "lora": {"r": 8, "targetModules": ["q_proj"]},
                "exportFormats": ["onnx"],
            }
        )
        expected = train_settings(OWNER, spec, config)
        job = build_training_job(OWNER, spec, config)
        for item in job["spec"]["template"]["spec"]["containers"][0]["env"]:
            monkeypatch.setenv(item["name"], item["value"])
        rebuilt = TrainJobEnvironment.from_environ()
        assert rebuilt == expected
        assert rebuilt.progress_uri == "s3://bucket/root/runs/music/piano-uid-1/progress.json"
        assert rebuilt.output_uri == "s3://bucket/root/models/piano"
        assert rebuilt.lora.target_modules == ["q_proj"] and rebuilt.lora.r == 8 and rebuilt.resume is True

    def test_generation_env_round_trips(self, config, monkeypatch):
        spec = GenerationRequestSpec.model_validate({"model": "m", "prompt": "jazz", "bpm": 90, "key": "C#"})
        owner = Owner("GenerationRequest", "g1", "music", "u")
        settings = generate_settings(owner, spec, "m", "s3://bucket/root/models/m", "base", config)
        job = build_generation_job(owner, spec, settings, config)
        assert job["metadata"]["name"] == "g1-generate"
        for item in job["spec"]["template"]["spec"]["containers"][0]["env"]:
            monkeypatch.setenv(item["name"], item["value"])
        assert GenerateJobEnvironment.from_environ() == settings
        assert settings.result_uri == settings.output_uri + ".json"


def test_long_names_stay_valid():
    name = child_name("x" * 70, "train")
    assert len(name) <= 63 and name.endswith("-train") and name == child_name("x" * 70, "train")


def test_deployment_and_service(config):
    owner = Owner("TrainedModel", "tm", "music", "u")
    spec = TrainedModelSpec.model_validate(
        {"serving": {"enabled": True, "replicas": 2, "resources": {"gpu": 0}}}
    )
    deployment = build_generator_deployment(owner, spec, "tm", "s3://bucket/root", config)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = build_generator_service(owner, spec)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize(
    ("name", "value", "variable"),
    [
        ("METRICS_PORT", "abc", "MUSICGEN_OPERATOR_METRICS_PORT"),
        ("DEFAULT_NODE_SELECTOR", "{oops", "MUSICGEN_OPERATOR_DEFAULT_NODE_SELECTOR"),
        ("IMAGE_PULL_POLICY", "Sometimes", "MUSICGEN_OPERATOR_IMAGE_PULL_POLICY"),
        ("ARTIFACTS_URI", "ftp://x", "MUSICGEN_OPERATOR_ARTIFACTS_URI"),
    ],
)
def test_bad_config_names_the_variable(monkeypatch, name, value, variable):
    monkeypatch.setenv(f"MUSICGEN_OPERATOR_{name}", value)
    with pytest.raises(ConfigurationError, match=variable):
        load_config()


def test_watch_namespaces(monkeypatch):
    monkeypatch.setenv("MUSICGEN_OPERATOR_WATCH_NAMESPACES", "a, b,")
    config = load_config()
    assert config.namespaces == ["a", "b"] and not config.clusterwide


def test_condition_transition_time_changes_only_on_flip():
    first = set_condition([], "Ready", False, "Missing", timestamp="t1")
    same = set_condition(first, "Ready", False, "StillMissing", timestamp="t2")
    flipped = set_condition(same, "Ready", True, "Found", timestamp="t3")
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["reason"] == "StillMissing"
    assert flipped[0]["lastTransitionTime"] == "t3" and flipped[0]["status"] == "True"


def test_failure_reason_prefers_oom_and_termination_message():
    job = {
        "status": {
            "conditions": [
                {"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": "exit code 3"}
            ]
        }
    }
    assert job_outcome(job) == "Failed"
    pod = {
        "status": {
            "containerStatuses": [
                {
                    "name": "trainer",
                    "state": {
                        "terminated": {"exitCode": 3, "message": "trace\nDatasetError: no audio in s3://d"}
                    },
                }
            ]
        }
    }
    reason, message = failure_reason(job, [pod])
    assert reason == "PodFailurePolicy" and message.endswith("DatasetError: no audio in s3://d")
    oom = {
        "status": {
            "containerStatuses": [
                {"name": "trainer", "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
            ]
        }
    }
    assert failure_reason(job, [oom])[0] == "OOMKilled"


def test_progress_fields():
    progress = TrainingProgress(
        phase="training", epoch=1.5, total_epochs=4, step=3, total_steps=12, loss=2.0, val_loss=float("nan")
    )
    fields = progress_fields(progress)
    assert fields == {
        "trainingPhase": "training",
        "currentEpoch": 1.5,
        "totalEpochs": 4,
        "currentStep": 3,
        "totalSteps": 12,
        "currentLoss": 2.0,
        "progressPercent": 25,
        "epochs": "1/4",
    }


def test_rbac_scopes():
    assert {r["resources"][0] for r in rules_for("cluster")} == {"customresourcedefinitions"}
    assert len(cluster_role_rules(True)) == len(
        rules_for("cluster") + rules_for("clusterwide") + rules_for("namespace")
    )
