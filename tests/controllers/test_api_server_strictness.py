"""What a real API server refuses, met by the operator: each test here fails against today's operator
(issue 13) and is kept as a strict xfail so it flips to a failure the day the operator is fixed.
The refusals themselves are the emulator's (tests/kube_api/test_emulator_fidelity.py)."""

from __future__ import annotations

import json

import pytest

from tests.controllers.conftest import Cluster, unique
from tests.controllers.helpers import publish, trained_model, training_job

pytestmark = pytest.mark.emulator


def test_a_nan_loss_does_not_block_progress(cluster: Cluster) -> None:
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name))
    job = cluster.wait_status("trainingjobs", name, lambda s: s.get("jobName"))["status"]["jobName"]
    cluster.patch("jobs", job, {"status": {"active": 1, "startTime": "2026-01-01T00:00:00Z"}}, sub="status")
    # A diverged run's progress.json as Python's json.dumps writes it: the loss is the bare token NaN.
    progress = cluster.artifacts / "runs" / "default" / name / "progress.json"
    progress.parent.mkdir(parents=True, exist_ok=True)
    values = {"epoch": 1, "total_epochs": 10, "step": 7, "total_steps": 70, "loss": float("nan")}
    progress.write_text(json.dumps({**values, "phase": "training", "updated_at": "2026-01-01T00:01:00Z"}))
    status = cluster.wait_status("trainingjobs", name, lambda s: s.get("currentStep") == 7, timeout=6)[
        "status"
    ]
    assert status.get("currentLoss") is None


@pytest.mark.xfail(
    strict=True,
    reason="operator bug: a TrainedModel named '1-x' makes a Service name that is not a DNS-1035 label; "
    "the API server refuses it (422) and kopf retries forever instead of failing the model (issue 13)",
)
def test_a_model_name_that_cannot_name_a_service_fails_the_model(cluster: Cluster, tmp_path) -> None:
    name = f"1-{unique('x')}"
    publish(cluster.artifacts, tmp_path, name, ["merged"])
    cluster.create("trainedmodels", trained_model(name, serving={"enabled": True}))
    status = cluster.wait_status(
        "trainedmodels", name, lambda s: s.get("phase") in ("Failed", "Invalid"), timeout=6
    )["status"]
    assert "DNS-1035" in (status.get("message") or "")


@pytest.mark.xfail(
    strict=True,
    reason="operator bug: the Deployment drift check compares its desired spec with the live one, which a "
    "real API server has defaulted, so every reconcile patches the Deployment (issue 13)",
)
def test_a_reconcile_without_serving_changes_does_not_patch_the_deployment(
    cluster: Cluster, tmp_path
) -> None:
    name = unique("tm")
    publish(cluster.artifacts, tmp_path, name, ["merged"])
    cluster.create("trainedmodels", trained_model(name, serving={"enabled": True}))
    cluster.wait_status("trainedmodels", name, lambda s: s.get("phase") == "Ready")
    deployment = f"{name}-generator"
    live = cluster.get("deployments", deployment)
    assert live["spec"]["revisionHistoryLimit"] == 10  # defaulted by the server

    def patches() -> int:
        return sum(
            r.verb == "patch" and r.resource == "deployments" and r.name == deployment
            for r in list(cluster.emulator.recorded)
        )

    before = patches()
    cluster.patch("trainedmodels", name, {"spec": {"deletionPolicy": "Delete"}})
    cluster.wait_status("trainedmodels", name, lambda s: s.get("observedGeneration") == 2)
    assert patches() == before
