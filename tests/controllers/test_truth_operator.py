"""Issue 13 against the emulator: Kueue, spec edits, lost Jobs, run identity, failure classes.

Each test is a table of cases; each case failed on the operator before issue 13.
"""

from __future__ import annotations

import json
import math

import pytest

from musicgen_ops.contracts.environment import TrainJobEnvironment
from musicgen_ops.contracts.progress import TrainingProgress
from tests.controllers.conftest import TEST_AGENT, unique
from tests.controllers.helpers import (
    generation_request,
    job_failed,
    job_succeeded,
    pod_of,
    publish,
    trained_model,
    training_job,
    write_progress,
)

pytestmark = pytest.mark.emulator
QUEUE = {"kueue.x-k8s.io/queue-name": "gpu"}


def _conditions(obj):
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def _operator_writes(cluster, plural, name):
    return [
        r
        for r in cluster.emulator.recorded
        if r.user_agent != TEST_AGENT and r.resource == plural and r.name == name and r.verb == "patch"
    ]


def _env(job):
    container = job["spec"]["template"]["spec"]["containers"][0]
    return TrainJobEnvironment.from_environ({e["name"]: e["value"] for e in container["env"]})


# --- 1. Kueue ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "spec_suspend", "kueue_admits", "edit_suspend", "job_suspend", "phase", "admitted"),
    [
        pytest.param(QUEUE, False, False, None, True, "Queued", "False", id="queued-job-waits-for-kueue"),
        pytest.param(QUEUE, False, True, True, False, "Pending", "True", id="kueue-decides-not-spec"),
    ],
)
def test_kueue_owns_suspend_under_a_queue(
    cluster, labels, spec_suspend, kueue_admits, edit_suspend, job_suspend, phase, admitted
):
    name = unique("tj")
    body = training_job(name, suspend=spec_suspend)
    body["metadata"]["labels"] = dict(labels)
    cluster.create("trainingjobs", body)
    cluster.wait_status("trainingjobs", name, lambda s: s.get("jobName"))
    job_name = f"{name}-train"
    if labels:
        assert cluster.get("jobs", job_name)["spec"]["suspend"] is True  # created suspended for Kueue
    if kueue_admits:
        cluster.patch("jobs", job_name, {"spec": {"suspend": False}})
    if edit_suspend is not None:
        cluster.patch("trainingjobs", name, {"spec": {"suspend": edit_suspend}})
        cluster.wait_status("trainingjobs", name, lambda s: s.get("observedGeneration") == 2)
    cluster.wait_status(
        "trainingjobs",
        name,
        lambda s: (
            s.get("phase") == phase
            and (_conditions({"status": s}).get("Admitted") or {}).get("status") == admitted
        ),
    )
    assert cluster.get("jobs", job_name)["spec"]["suspend"] is job_suspend
    if labels:
        assert not _operator_writes(cluster, "jobs", job_name), "the operator patched a Kueue-managed Job"


# --- 2. spec edits ---------------------------------------------------------------------------------


def test_editable_fields_are_acted_on(cluster):
    """TTL and deletion policy stay editable, and the new generation is really acted on. Run-shaping edits
    never get this far: the API server refuses them (the CRD's ``self == oldSelf`` rules, below); where a
    server lacks CEL, the operator's own refusal is covered by ``test_truth_units``."""
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name, training={"epochs": 10}, exportFormats=["adapter"]))
    cluster.wait_status("trainingjobs", name, lambda s: s.get("observedGeneration") == 1)
    cluster.patch(
        "trainingjobs", name, {"spec": {"ttlSecondsAfterFinished": 3600, "deletionPolicy": "Delete"}}
    )
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("observedGeneration") == 2)
    assert _conditions(tj)["SpecAccepted"]["status"] == "True"


@pytest.mark.parametrize(
    "edit",
    # Adding an unset optional field (e.g. spec.image) is guarded by a has() rule the emulator does not
    # evaluate; the operator refuses that edit itself.
    [{"training": {"epochs": 20}}, {"exportFormats": ["adapter", "adapter"]}],
)
def test_api_server_rejects_run_shaping_edits(cluster, edit):
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name))
    response = cluster.http.patch(
        cluster.path("trainingjobs", name),
        json={"spec": edit},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 422 and "immutable" in response.text


def test_cross_field_problems_fail_before_any_job(cluster):
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name, exportFormats=["onnx", "onnx"]))
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Failed")
    assert tj["status"]["reason"] == "InvalidSpec" and "spec.exportFormats" in tj["status"]["message"]
    assert cluster.get("jobs", f"{name}-train") is None


# --- 3. lost children ------------------------------------------------------------------------------


@pytest.mark.parametrize("plural", ["trainingjobs", "generationrequests"])
def test_a_lost_job_fails_the_run_with_job_lost(cluster, tmp_path, plural):
    name = unique("lost")
    if plural == "trainingjobs":
        cluster.create("trainingjobs", training_job(name))
        job_name = f"{name}-train"
    else:
        model = unique("tm")
        publish(cluster.artifacts, tmp_path, model, ["adapter"])
        cluster.create("trainedmodels", trained_model(model))
        cluster.wait_status("trainedmodels", model, lambda s: s.get("phase") == "Ready")
        cluster.create("generationrequests", generation_request(name, model))
        job_name = f"{name}-generate"
    cluster.wait_status(plural, name, lambda s: s.get("jobName"))
    cluster.patch(
        "jobs", job_name, {"status": {"active": 1, "startTime": "2026-01-01T00:00:00Z"}}, sub="status"
    )
    cluster.delete("jobs", job_name)
    obj = cluster.wait_status(plural, name, lambda s: s.get("phase") == "Failed")
    assert obj["status"]["failureReason"] == "JobLost" and obj["status"]["reason"] == "JobLost"
    assert _conditions(obj)["Failed"]["reason"] == "JobLost"
    cluster.wait_for("JobLost event", lambda: any(e["reason"] == "JobLost" for e in cluster.events(name)))
    assert cluster.get("jobs", job_name) is None  # no silent re-run


# --- 4. run identity -------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["Delete"])  # Retain (the default) is kept by every other test
def test_a_new_incarnation_never_sees_the_old_run(cluster, policy):
    name = unique("tj")
    first = cluster.create("trainingjobs", training_job(name, deletionPolicy=policy))
    old = cluster.wait_status("trainingjobs", name, lambda s: s.get("runUri"))
    assert old["status"]["runUri"].endswith(f"/runs/default/{name}-{first['metadata']['uid']}")
    cluster.patch("jobs", f"{name}-train", {"status": {"active": 1}}, sub="status")
    write_progress(
        cluster.artifacts,
        old["status"]["runUri"],
        TrainingProgress,
        phase="training",
        epoch=3,
        total_epochs=10,
        step=30,
        total_steps=100,
    )
    cluster.wait_status("trainingjobs", name, lambda s: s.get("currentStep") == 30)
    old_folder = cluster.artifacts / old["status"]["runUri"].removeprefix(f"file://{cluster.artifacts}/")
    cluster.delete("trainingjobs", name)
    cluster.wait_for("deleted", lambda: cluster.get("trainingjobs", name) is None)
    assert (old_folder / "progress.json").exists() is (policy == "Retain")

    second = cluster.create("trainingjobs", training_job(name))
    new = cluster.wait_status("trainingjobs", name, lambda s: s.get("runUri"))
    assert new["status"]["runUri"] != old["status"]["runUri"]
    assert second["metadata"]["uid"] in new["status"]["runUri"]
    assert _env(cluster.get("jobs", f"{name}-train")).run_uri == new["status"]["runUri"]
    cluster.patch("jobs", f"{name}-train", {"status": {"active": 1}}, sub="status")
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Running")
    assert "currentStep" not in tj["status"]


@pytest.mark.parametrize("owner", ["published-artifacts"])  # a TrainedModel's owner: test_truth_units
def test_publishing_never_overwrites_a_model_someone_else_owns(cluster, tmp_path, owner):
    model = unique("model")
    if owner == "another-trainingjob":
        first = unique("tj")
        cluster.create("trainingjobs", training_job(first, modelId=model))
        cluster.wait_status("trainingjobs", first, lambda s: s.get("jobName"))
        cluster.patch("jobs", f"{first}-train", job_succeeded(), sub="status")
        cluster.wait_status("trainingjobs", first, lambda s: s.get("phase") == "Succeeded")
    else:
        publish(cluster.artifacts, tmp_path, model, ["adapter"])
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name, modelId=model))
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Failed")
    assert tj["status"]["reason"] == "InvalidSpec" and "spec.modelId" in tj["status"]["message"]
    assert cluster.get("jobs", f"{name}-train") is None


# --- 5. failure classes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terminations", "reason", "hint"),
    [
        pytest.param(
            [{"exitCode": 137, "reason": "OOMKilled"}, {"exitCode": 1, "reason": "Error", "message": "boom"}],
            "OOMKilled",
            "spec.resources.memory",
            id="oom-then-error-both-kept",
        ),
    ],
)
def test_every_failed_attempt_is_counted_and_kept(cluster, terminations, reason, hint):
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name))
    cluster.wait_status("trainingjobs", name, lambda s: s.get("jobName"))
    job_name = f"{name}-train"
    for index, terminated in enumerate(terminations):
        pod = pod_of(job_name, f"{job_name}-{index}", terminated)
        pod["metadata"]["creationTimestamp"] = f"2026-01-01T00:0{index}:00Z"
        cluster.create("pods", pod)
    failed = job_failed("PodFailurePolicy", "Container trainer exited with 137")
    failed["status"]["failed"] = len(terminations)
    cluster.patch("jobs", job_name, failed, sub="status")
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Failed")
    status = tj["status"]
    assert status["attempts"] == len(terminations)
    assert [a["reason"] for a in status["failedAttempts"]] == [t["reason"] for t in terminations]
    assert status["failureReason"] == reason and hint in _conditions(tj)["Failed"]["message"]
    job = cluster.get("jobs", job_name)
    assert [
        c
        for r in job["spec"]["podFailurePolicy"]["rules"]
        if r["action"] == "FailJob"
        for c in r["onExitCodes"]["values"]
        if c == 137
    ] == [137]


# --- 6. finite numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [math.nan])  # Infinity: test_truth_units
def test_non_finite_progress_becomes_null_and_a_condition(cluster, loss):
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name))
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("runUri"))
    cluster.patch("jobs", f"{name}-train", {"status": {"active": 1}}, sub="status")
    folder = cluster.artifacts / tj["status"]["runUri"].removeprefix(f"file://{cluster.artifacts}/")
    folder.mkdir(parents=True, exist_ok=True)
    progress = TrainingProgress(
        phase="training", epoch=1, total_epochs=10, step=12, total_steps=100, loss=1.5
    ).model_dump(mode="json")
    progress["loss"] = loss
    (folder / "progress.json").write_text(json.dumps(progress))  # json writes NaN/Infinity as a trainer might
    tj = cluster.wait_status("trainingjobs", name, lambda s: s.get("currentStep") == 12)
    assert "currentLoss" not in tj["status"]
    valid = cluster.wait_status(
        "trainingjobs",
        name,
        lambda s: _conditions({"status": s}).get("ProgressValid", {}).get("status") == "False",
    )
    assert "loss" in _conditions(valid)["ProgressValid"]["message"].lower()
