"""Issue 13 at the unit level: CEL rules, one writer per condition, finite numbers, child drift,
failure classes, TTLs, the phase gauge and the policy checks (no emulator, a FakeKube where needed)."""

from __future__ import annotations

import asyncio
import datetime
import json
import math

import pytest

from musicgen_ops.api.crdgen import openapi_schema
from musicgen_ops.api.trainingjob import TRAINING_JOB, TrainingJobSpec
from musicgen_ops.controllers import artifacts, metrics, trainingjob
from musicgen_ops.controllers.builders.jobs import build_training_job
from musicgen_ops.controllers.builders.labels import Owner
from musicgen_ops.controllers.config import load_config
from musicgen_ops.controllers.context import Context
from musicgen_ops.controllers.failures import failed_attempts
from musicgen_ops.controllers.kube import DEPLOYMENTS, TRAINED_MODELS, TRAINING_JOBS
from musicgen_ops.controllers.lifetime import expiry_seconds
from musicgen_ops.controllers.policy import OWNER_UID_LABEL, image_problem, model_owner_problem, spec_digest
from musicgen_ops.controllers.status import StatusUpdate, write_status
from musicgen_ops.controllers.trainedmodel import APPLIED_ANNOTATION, _apply, name_problem
from tests.controllers.fakes import FakeKube

OWNER = Owner("TrainingJob", "piano", "music", "uid-1")
SPEC = {"datasetUri": "s3://d/x"}


def _config(**overrides):
    return load_config(
        trainer_image="reg/trainer:1",
        generator_image="reg/generator:1",
        artifacts_uri="file:///nowhere",
        **overrides,
    )


def _body(status=None, generation=1, **spec):
    return {
        "kind": "TrainingJob",
        "metadata": {"name": "piano", "namespace": "music", "uid": "uid-1", "generation": generation},
        "spec": {**SPEC, **spec},
        "status": status or {},
    }


# --- 2. spec changes: CEL self == oldSelf generated from the models ---------------------------------


@pytest.mark.parametrize(
    ("field", "immutable"),
    [
        ("datasetUri", True),
        ("baseModel", True),
        ("lora", True),
        ("training", True),
        ("exportFormats", True),
        ("resources", True),
        ("image", True),
        ("storageSecret", True),
        ("suspend", False),
        ("ttlSecondsAfterFinished", False),
        ("deletionPolicy", False),
    ],
)
def test_crd_makes_run_shaping_fields_immutable(field, immutable):
    spec = openapi_schema(TRAINING_JOB)["properties"]["spec"]
    rules = [r["rule"] for r in spec["properties"][field].get("x-kubernetes-validations", [])]
    assert ("self == oldSelf" in rules) is immutable
    # An optional field may not be added or removed either (property rules skip a missing side).
    spec_rules = [r["rule"] for r in spec.get("x-kubernetes-validations", [])]
    if field in ("image", "storageSecret"):
        assert f"has(self.{field}) == has(oldSelf.{field})" in spec_rules


@pytest.mark.parametrize(
    ("change", "same"),
    [
        ({"suspend": True}, True),
        ({"ttlSecondsAfterFinished": 60}, True),
        ({"deletionPolicy": "Delete"}, True),
        ({"training": {"epochs": 20}}, False),
        ({"image": "reg/trainer:1"}, False),
        ({"exportFormats": ["adapter"]}, False),
    ],
)
def test_spec_digest_covers_only_run_shaping_fields(change, same):
    before = TrainingJobSpec.model_validate(SPEC)
    after = TrainingJobSpec.model_validate({**SPEC, **change})
    assert (spec_digest(before) == spec_digest(after)) is same


# --- 6. one writer per condition, observedGeneration, finite numbers ---------------------------------


@pytest.mark.parametrize(
    ("stale", "fresh", "writes", "expected"),
    [
        # the daemon's stale snapshot must not drop the reconcile handler's newer condition
        (
            [{"type": "Validated", "status": "True"}],
            [{"type": "Validated", "status": "True"}, {"type": "SpecAccepted", "status": "False"}],
            {"Running": True},
            {"Validated": "True", "SpecAccepted": "False", "Running": "True"},
        ),
        # and the reconcile handler's stale snapshot must not drop the daemon's
        (
            [],
            [{"type": "Running", "status": "True"}, {"type": "ProgressValid", "status": "False"}],
            {"SpecAccepted": False},
            {"Running": "True", "ProgressValid": "False", "SpecAccepted": "False"},
        ),
    ],
)
def test_conditions_merge_by_type_per_writer(stale, fresh, writes, expected):
    kube = FakeKube()
    kube.put(TRAINING_JOBS, {**_body(), "status": {"conditions": fresh}})
    update = StatusUpdate(_body({"conditions": stale}))
    for type_, value in writes.items():
        update.condition(type_, value, "Test")
    asyncio.run(write_status(kube, TRAINING_JOBS, "music", "piano", update))
    stored = kube.objects[("trainingjobs", "music", "piano")]["status"]["conditions"]
    assert {c["type"]: c["status"] for c in stored} == expected


@pytest.mark.parametrize(("observe", "expected"), [(True, 2), (False, 1)])
def test_observed_generation_moves_only_when_acted_on(observe, expected):
    update = StatusUpdate(_body({"observedGeneration": 1}, generation=2)).set(jobName="piano-train")
    if observe:
        update.observe()
    assert update.as_patch().get("observedGeneration", 1) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_become_null(value):
    update = StatusUpdate(_body({"currentLoss": 2.0})).set(currentLoss=value, currentStep=5)
    assert update.as_patch() == {"currentLoss": None, "currentStep": 5}


def test_a_conflicting_writer_makes_the_status_write_read_again():
    kube = FakeKube()
    kube.put(TRAINING_JOBS, _body({"phase": "Running"}))
    update = StatusUpdate(_body()).set(currentStep=7)
    original_get = kube.get

    async def racing_get(resource, namespace, name):  # another writer lands between read and patch
        found = await original_get(resource, namespace, name)
        if sum(1 for c in kube.calls if c[0] == "get") == 1:
            kube.put(TRAINING_JOBS, {**kube.objects[("trainingjobs", "music", "piano")]})
        return found

    kube.get = racing_get
    asyncio.run(write_status(kube, TRAINING_JOBS, "music", "piano", update))
    assert kube.objects[("trainingjobs", "music", "piano")]["status"]["currentStep"] == 7
    assert sum(1 for c in kube.calls if c[0] == "get") == 2


# --- 6. children: a normalised comparison instead of the server-defaulted spec ----------------------


@pytest.mark.parametrize(
    ("wanted_replicas", "patches"),
    [(2, 0), (3, 1)],
)
def test_child_patched_only_when_the_wish_changes(wanted_replicas, patches):
    kube = FakeKube()
    ctx = Context(config=_config(), kube=kube)

    def deployment(replicas):
        return {
            "metadata": {"name": "m-generator", "namespace": "music", "labels": {"a": "b"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "server"}]}}},
        }

    asyncio.run(_apply(ctx, DEPLOYMENTS, deployment(2)))
    stored = kube.objects[("deployments", "music", "m-generator")]
    # What a real API server adds: defaults everywhere in the spec.
    stored["spec"].update(
        revisionHistoryLimit=10, progressDeadlineSeconds=600, strategy={"type": "RollingUpdate"}
    )
    stored["spec"]["template"]["spec"].update(dnsPolicy="ClusterFirst", schedulerName="default-scheduler")
    asyncio.run(_apply(ctx, DEPLOYMENTS, deployment(wanted_replicas)))
    assert sum(1 for c in kube.calls if c[0] == "patch") == patches
    assert kube.objects[("deployments", "music", "m-generator")]["spec"]["replicas"] == wanted_replicas
    assert (
        APPLIED_ANNOTATION in kube.objects[("deployments", "music", "m-generator")]["metadata"]["annotations"]
    )


@pytest.mark.parametrize(("name", "valid"), [("piano", True), ("a-1", True), ("1-x", False), ("a.b", False)])
def test_names_that_cannot_name_a_service_are_refused(name, valid):
    problem = name_problem(name)
    assert (problem is None) is valid
    if not valid:
        assert problem.startswith("metadata.name:") and "DNS-1035" in problem


# --- 5. failure classes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_oom", "codes"), [(False, [3, 137]), (True, [3])])
def test_oom_fails_the_job_at_once_unless_configured(retry_oom, codes):
    job = build_training_job(OWNER, TrainingJobSpec.model_validate(SPEC), _config(retry_oom=retry_oom))
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "Ignore"  # disruptions first: never counted, never fatal
    assert [r["onExitCodes"]["values"] for r in rules if r["action"] == "FailJob"] == [codes]


def test_every_failed_attempt_is_kept_with_its_own_reason():
    def pod(name, created, terminated):
        return {
            "metadata": {"name": name, "creationTimestamp": created},
            "status": {"containerStatuses": [{"name": "trainer", "state": {"terminated": terminated}}]},
        }

    pods = [
        pod("p2", "2026-01-01T00:02:00Z", {"exitCode": 1, "reason": "Error", "message": "x\nCUDA error"}),
        pod("p1", "2026-01-01T00:01:00Z", {"exitCode": 137, "reason": "OOMKilled"}),
        pod("p0", "2026-01-01T00:00:00Z", {"exitCode": 0, "reason": "Completed"}),
    ]
    assert failed_attempts(pods) == [
        {"pod": "p1", "reason": "OOMKilled", "exitCode": 137},
        {"pod": "p2", "reason": "Error", "exitCode": 1, "message": "CUDA error"},
    ]


# --- 6. TTL of finished resources --------------------------------------------------------------------

NOW = datetime.datetime(2026, 1, 1, 0, 10, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("ttl", "phase", "expected"),
    [(None, "Succeeded", None), (60, "Running", None), (60, "Succeeded", -540.0), (3600, "Failed", 3000.0)],
)
def test_expiry_counts_from_completion(ttl, phase, expected):
    body = {
        "spec": {} if ttl is None else {"ttlSecondsAfterFinished": ttl},
        "status": {"phase": phase, "completionTime": "2026-01-01T00:00:00Z"},
    }
    assert expiry_seconds(body, NOW) == expected


# --- 6. the phase gauge is rebuilt when the operator resumes -----------------------------------------


def test_phase_gauge_rebuilt_on_resume(monkeypatch):
    monkeypatch.setattr(metrics, "_phases", {})
    kube = FakeKube()
    ctx = Context(config=_config(), kube=kube)
    for name, phase in (("a", "Succeeded"), ("b", "Succeeded"), ("c", "Failed")):
        body = {
            **_body({"phase": phase, "observedGeneration": 1}),
            "metadata": {"name": name, "namespace": "m"},
        }
        asyncio.run(trainingjob.reconcile(body, ctx))
    assert metrics.PHASES.labels("trainingjobs", "Succeeded")._value.get() == 2
    assert metrics.PHASES.labels("trainingjobs", "Failed")._value.get() == 1
    assert kube.calls == []  # finished runs: nothing else is touched


# --- 7. images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "image", "ok"),
    [
        ("", None, True),
        ("", "reg/trainer:1", True),
        ("", "reg/generator:1", True),
        ("", "evil/miner:latest", False),
        ("reg/trainer:2", "reg/trainer:2", True),
        ("reg/trainer:2", "reg/trainer:1", False),
    ],
)
def test_image_allow_list(allowed, image, ok):
    ctx = Context(config=_config(allowed_images=allowed), kube=FakeKube())
    problem = image_problem(image, ctx)
    assert (problem is None) is ok
    if not ok:
        assert problem.startswith("spec.image:")


@pytest.mark.parametrize(
    ("model_labels", "ok"),
    [
        (None, True),  # no such model: free
        ({OWNER_UID_LABEL: "uid-1"}, True),  # produced by this very TrainingJob
        ({OWNER_UID_LABEL: "uid-0", "musicgen.io/trainingjob": "piano"}, False),  # an earlier incarnation
        ({}, False),  # made by hand
    ],
)
def test_a_model_another_trainingjob_owns_is_refused(model_labels, ok):
    kube = FakeKube()
    if model_labels is not None:
        kube.put(
            TRAINED_MODELS, {"metadata": {"name": "piano", "namespace": "music", "labels": model_labels}}
        )
    problem = asyncio.run(model_owner_problem(OWNER, "piano", Context(config=_config(), kube=kube)))
    assert (problem is None) is ok
    if not ok:
        assert problem.startswith("spec.modelId:")


@pytest.mark.parametrize(("loss", "bad"), [(1.5, []), (math.inf, ["loss"]), (math.nan, ["loss"])])
def test_non_finite_progress_fields_are_named(tmp_path, loss, bad):
    raw = {"phase": "training", "epoch": 1, "total_epochs": 2, "step": 3, "total_steps": 9, "loss": loss}
    (tmp_path / "progress.json").write_text(json.dumps(raw))  # json writes NaN/Infinity as a trainer might
    progress, non_finite = artifacts.read_progress(f"file://{tmp_path}/progress.json")
    assert non_finite == bad
    assert progress.loss == (loss if not bad else None)
