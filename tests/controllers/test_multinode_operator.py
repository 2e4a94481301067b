"""Multi-node TrainingJobs against the emulator: the test plays the Job controller of an Indexed Job."""

from __future__ import annotations

import pytest

from musicgen_ops.contracts.progress import TrainingProgress
from tests.controllers.conftest import unique
from tests.controllers.helpers import training_job, write_progress

pytestmark = pytest.mark.emulator


def test_workers_run_then_one_index_fails_the_run(cluster):
    name = unique("mn")
    cluster.create("trainingjobs", training_job(name, resources={"gpu": 2, "nodes": 2}, backoffLimit=1))
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Pending")
    assert tj["status"]["requestedWorldSize"] == 4
    job = cluster.get("jobs", f"{name}-train")
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["backoffLimitPerIndex"] == 1
    service = cluster.wait_for("Service", lambda: cluster.get("services", f"{name}-train"))
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert any(e["reason"] == "ServiceCreated" for e in cluster.events(name))

    cluster.patch(
        "jobs", f"{name}-train", {"status": {"active": 1, "startTime": "2026-01-01T00:00:00Z"}}, sub="status"
    )
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("workers") == "1/2")
    assert tj["status"]["phase"] == "Running" and "1/2 workers" in tj["status"]["message"]
    write_progress(
        cluster.artifacts,
        tj["status"]["runUri"],
        TrainingProgress,
        phase="training",
        epoch=0.5,
        total_epochs=1,
        step=1,
        total_steps=2,
        world_size=4,
    )
    cluster.wait_status("trainingjobs", name, lambda s: s.get("worldSize") == 4)

    failed = {
        "active": 0,
        "failed": 2,
        "failedIndexes": "1",
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "FailedIndexes",
                "message": "Job has failed indexes",
            }
        ],
    }
    cluster.patch("jobs", f"{name}-train", {"status": failed}, sub="status")
    status = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Failed")["status"]
    assert status["failureReason"] == "FailedIndexes" and status["failedIndexes"] == "1"
    assert "worker indexes 1" in status["message"]


def test_a_name_that_cannot_name_the_workers_service_is_refused(cluster):
    name = "7" + unique("mn")
    cluster.create("trainingjobs", training_job(name, resources={"gpu": 1, "nodes": 2}))
    status = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Failed")["status"]
    assert status["reason"] == "InvalidSpec" and "must start with a letter" in status["message"]
    assert cluster.get("jobs", f"{name}-train") is None


def test_a_service_of_that_name_owned_by_another_is_not_used(cluster):
    name = unique("mn")
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{name}-train"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "other"}},
    }
    cluster.create("services", foreign)
    cluster.create("trainingjobs", training_job(name, resources={"gpu": 1, "nodes": 2}))
    cluster.wait_for(
        "ServiceConflict event", lambda: [e for e in cluster.events(name) if e["reason"] == "ServiceConflict"]
    )
    assert "ownerReferences" not in cluster.get("services", f"{name}-train")["metadata"]
    assert (cluster.get("trainingjobs", name).get("status") or {}).get("phase") != "Running"
    cluster.delete("services", f"{name}-train")
