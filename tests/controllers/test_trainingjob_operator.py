"""TrainingJob end to end: kopf against the emulator, the test plays the Job controller."""

from __future__ import annotations

import time

import pytest

from musicgen_ops.contracts.environment import TrainJobEnvironment
from musicgen_ops.contracts.progress import TrainingProgress
from tests.controllers.conftest import unique
from tests.controllers.helpers import job_failed, job_succeeded, pod_of, training_job, write_progress

pytestmark = pytest.mark.emulator


def _jobs_of(cluster, name):
    return [j for j in cluster.list("jobs") if j["metadata"]["labels"].get("musicgen.io/trainingjob") == name]


def test_create_makes_one_job_with_image_gpu_env_and_owner(cluster):
    name = unique("tj")
    created = cluster.create(
        "trainingjobs", training_job(name, resources={"gpu": 2, "memory": "32Gi"}, training={"epochs": 3})
    )
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Pending")
    job = cluster.get("jobs", f"{name}-train")
    assert job is not None
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.test/trainer:1"
    # Two GPUs on one node: one training process per GPU under torchrun.
    assert container["command"][:5] == ["python", "-m", "musicgen_ops", "torchrun", "--nproc-per-node=2"]
    assert container["command"][-2:] == ["--no-python", "train-job"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["limits"]["memory"] == "32Gi"
    # What train-job really reads from that env.
    settings = TrainJobEnvironment.from_environ({e["name"]: e["value"] for e in container["env"]})
    assert settings.dataset_uri == "s3://datasets/piano"
    assert settings.training.epochs == 3 and settings.resume is True and settings.device == "cuda"
    assert container["envFrom"] == [{"secretRef": {"name": "storage-creds"}}]
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("TrainingJob", name, created["metadata"]["uid"])
    assert tj["status"]["totalEpochs"] == 3
    assert {c["type"]: c["status"] for c in tj["status"]["conditions"]}["Validated"] == "True"
    assert len(_jobs_of(cluster, name)) == 1


def test_progress_then_success_creates_trained_model(cluster):
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name, training={"epochs": 4}, exportFormats=["adapter"]))
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("jobName"))
    cluster.patch(
        "jobs", f"{name}-train", {"status": {"active": 1, "startTime": "2026-01-01T00:00:00Z"}}, sub="status"
    )
    write_progress(
        cluster.artifacts,
        tj["status"]["runUri"],
        TrainingProgress,
        epoch=2.5,
        total_epochs=4,
        step=50,
        total_steps=80,
        loss=2.3456,
        val_loss=2.5,
        eta_seconds=120,
        phase="training",
        updated_at="2026-01-01T00:05:00Z",
    )
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("currentStep") == 50)
    status = tj["status"]
    assert status["phase"] == "Running"
    assert status["epochs"] == "2/4"
    assert status["progressPercent"] == 62
    assert status["currentLoss"] == pytest.approx(2.3456)
    assert status["validationLoss"] == pytest.approx(2.5)
    assert status["etaSeconds"] == 120

    cluster.patch("jobs", f"{name}-train", job_succeeded(), sub="status")
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Succeeded")
    assert tj["status"]["trainedModel"] == name
    assert tj["status"]["progressPercent"] == 100
    model = cluster.get("trainedmodels", name)
    assert model["spec"]["trainingJob"] == name
    assert model["spec"]["formats"] == ["adapter"]
    assert "ownerReferences" not in model["metadata"]
    expected = {"JobCreated", "Running", "Succeeded", "TrainedModelCreated"}
    cluster.wait_for("events", lambda: expected <= {e["reason"] for e in cluster.events(name)})


@pytest.mark.parametrize(
    ("terminated", "reason", "text"),
    [
        ({"exitCode": 137, "reason": "OOMKilled"}, "OOMKilled", "out of memory"),
        (
            {"exitCode": 3, "reason": "Error", "message": "DatasetError: manifest.json missing in s3://x"},
            "BackoffLimitExceeded",
            "manifest.json missing",
        ),
    ],
)
def test_failure_reports_reason(cluster, terminated, reason, text):
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name))
    cluster.wait_status("trainingjobs", name, lambda s: s.get("jobName"))
    cluster.create("pods", pod_of(f"{name}-train", f"{name}-train-abc", terminated))
    cluster.patch("jobs", f"{name}-train", job_failed(), sub="status")
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Failed")
    assert tj["status"]["failureReason"] == reason
    failed = {c["type"]: c for c in tj["status"]["conditions"]}["Failed"]
    assert text in failed["message"]
    assert any(e["reason"] == reason and e["type"] == "Warning" for e in cluster.events(name))
    assert cluster.get("trainedmodels", name) is None


def test_schema_violations_are_refused_by_the_api_server(cluster):
    name = unique("tj")
    response = cluster.http.post(
        cluster.path("trainingjobs"), json=training_job(name, training={"epochs": 0}, lora={"r": 1000})
    )
    assert response.status_code == 422, response.text
    fields = {cause["field"] for cause in response.json()["details"]["causes"]}
    assert fields == {"spec.training.epochs", "spec.lora.r"}
    assert cluster.get("trainingjobs", name) is None


def test_invalid_spec_is_a_condition_and_event_without_job(cluster):
    # What the CRD schema cannot express (a format listed twice) is the operator's to refuse.
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name, exportFormats=["adapter", "adapter"]))
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Failed")
    validated = {c["type"]: c for c in tj["status"]["conditions"]}["Validated"]
    assert validated["status"] == "False"
    assert "exportFormats" in validated["message"]
    cluster.wait_for(
        "InvalidSpec event", lambda: any(e["reason"] == "InvalidSpec" for e in cluster.events(name))
    )
    time.sleep(0.5)  # no retry loop: the handler is not called again
    assert cluster.get("jobs", f"{name}-train") is None
    patches = [r for r in cluster.emulator.recorded if r.name == name and r.resource == "trainingjobs/status"]
    assert len(patches) <= 2


def test_suspend_and_resume_without_a_queue(cluster):
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name, suspend=True))
    cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Suspended")
    assert cluster.get("jobs", f"{name}-train")["spec"]["suspend"] is True
    cluster.patch("trainingjobs", name, {"spec": {"suspend": False}})
    cluster.wait_for("job resumed", lambda: cluster.get("jobs", f"{name}-train")["spec"]["suspend"] is False)
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Pending")
    assert tj["status"]["observedGeneration"] == 2
    assert len(_jobs_of(cluster, name)) == 1


def test_delete_removes_job_but_keeps_trained_model(cluster):
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name))
    cluster.wait_status("trainingjobs", name, lambda s: s.get("jobName"))
    cluster.patch("jobs", f"{name}-train", job_succeeded(), sub="status")
    cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Succeeded")
    cluster.delete("trainingjobs", name)
    cluster.wait_for("TrainingJob gone", lambda: cluster.get("trainingjobs", name) is None)
    assert cluster.get("jobs", f"{name}-train") is None
    assert cluster.get("trainedmodels", name) is not None
