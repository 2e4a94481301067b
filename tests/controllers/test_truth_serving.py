"""Issue 13 against the emulator: serving truth (readyReplicas, lost Deployment, Service port, names),
TTL of finished resources, least privilege (images, storage Secrets) and the operator's /metrics."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.controllers.conftest import unique
from tests.controllers.helpers import (
    generation_request,
    job_failed,
    job_succeeded,
    publish,
    trained_model,
    training_job,
)

pytestmark = pytest.mark.emulator


def _conditions(obj):
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def _serving(obj):
    return _conditions(obj).get("Serving", {}).get("status")


def labelled_secret(cluster, name, labelled):
    labels = {"musicgen.io/storage": "true"} if labelled else {}
    cluster.create(
        "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": labels}}
    )


@pytest.mark.parametrize("event", ["pods-become-ready", "deployment-lost", "port-changed"])
def test_serving_status_follows_the_deployment(cluster, tmp_path, event):
    name = unique("tm")
    server = f"{name}-generator"
    publish(cluster.artifacts, tmp_path, name, ["adapter"])
    cluster.create("trainedmodels", trained_model(name, serving={"enabled": True, "replicas": 2}))
    model = cluster.wait_status("trainedmodels", name, lambda s: s.get("phase") == "Ready")
    assert _serving(model) == "False" and model["status"]["readyReplicas"] == 0  # exists, not yet serving
    assert model["status"]["servingUrl"].startswith(f"http://{server}.")
    if event == "pods-become-ready":
        cluster.patch("deployments", server, {"status": {"readyReplicas": 2, "replicas": 2}}, sub="status")
        model = cluster.wait_status("trainedmodels", name, lambda s: s.get("readyReplicas") == 2)
        assert _serving(model) == "True"
    elif event == "deployment-lost":
        cluster.delete("deployments", server)
        cluster.wait_for(
            "DeploymentLost event", lambda: any(e["reason"] == "DeploymentLost" for e in cluster.events(name))
        )
        cluster.wait_for("Deployment re-created", lambda: cluster.get("deployments", server))
    else:
        patches_before = [
            r for r in cluster.emulator.recorded if r.resource == "deployments" and r.verb == "patch"
        ]
        cluster.patch("trainedmodels", name, {"spec": {"serving": {"port": 9000}}})
        cluster.wait_for(
            "Service on the new port",
            lambda: cluster.get("services", server)["spec"]["ports"][0]["port"] == 9000,
        )
        model = cluster.wait_status(
            "trainedmodels", name, lambda s: s.get("servingUrl", "").endswith(":9000")
        )
        patches = [r for r in cluster.emulator.recorded if r.resource == "deployments" and r.verb == "patch"]
        assert len(patches) == len(patches_before) + 1  # one patch for one change, none on re-reconciles


@pytest.mark.parametrize("bad_name", ["1-{}", "a.{}"])
def test_names_that_cannot_name_a_service_are_refused_up_front(cluster, tmp_path, bad_name):
    name = bad_name.format(uuid.uuid4().hex[:6])
    publish(cluster.artifacts, tmp_path, name.replace(".", "-"), ["adapter"])
    cluster.create("trainedmodels", trained_model(name, serving={"enabled": True}))
    model = cluster.wait_status("trainedmodels", name, lambda s: s.get("phase") == "Invalid")
    assert model["status"]["reason"] == "InvalidSpec" and "DNS-1035" in model["status"]["message"]
    assert cluster.get("deployments", f"{name}-generator") is None
    assert not [
        r
        for r in cluster.emulator.recorded
        if r.resource == "services" and r.verb == "create" and r.name == f"{name}-generator"
    ]


@pytest.mark.parametrize("plural", ["trainingjobs", "generationrequests"])
def test_finished_resources_expire_after_their_ttl(cluster, tmp_path, plural):
    name = unique("ttl")
    if plural == "trainingjobs":
        cluster.create("trainingjobs", training_job(name, ttlSecondsAfterFinished=0))
        cluster.wait_status(plural, name, lambda s: s.get("jobName"))
        cluster.patch("jobs", f"{name}-train", job_succeeded(), sub="status")
    else:
        model = unique("tm")
        publish(cluster.artifacts, tmp_path, model, ["adapter"])
        cluster.create("trainedmodels", trained_model(model))
        cluster.wait_status("trainedmodels", model, lambda s: s.get("phase") == "Ready")
        cluster.create("generationrequests", generation_request(name, model, ttlSecondsAfterFinished=0))
        cluster.wait_status(plural, name, lambda s: s.get("jobName"))
        cluster.patch("jobs", f"{name}-generate", job_failed(), sub="status")
    cluster.wait_for(f"{plural}/{name} expired", lambda: cluster.get(plural, name) is None)


@pytest.mark.parametrize(
    ("plural", "spec", "secret", "problem"),
    [
        pytest.param("trainingjobs", {"image": "evil.example/miner:1"}, None, "spec.image", id="tj-image"),
        pytest.param(
            "trainingjobs", {"storageSecret": "{secret}"}, False, "spec.storageSecret", id="unlabelled"
        ),
        pytest.param("trainingjobs", {"storageSecret": "{secret}"}, True, None, id="labelled-secret"),
        pytest.param(
            "trainingjobs", {"storageSecret": "missing-secret"}, None, "does not exist", id="no-secret"
        ),
        pytest.param(
            "generationrequests", {"image": "evil.example/miner:1"}, None, "spec.image", id="gr-image"
        ),
        pytest.param(
            "trainedmodels",
            {"serving": {"enabled": True, "image": "evil.example/x:1"}},
            None,
            "spec.serving.image",
            id="tm-image",
        ),
    ],
)
def test_least_privilege_images_and_storage_secrets(cluster, tmp_path, plural, spec, secret, problem):
    name = unique("lp")
    if secret is not None:
        secret_name = unique("creds")
        labelled_secret(cluster, secret_name, secret)
        spec = {k: v.format(secret=secret_name) if isinstance(v, str) else v for k, v in spec.items()}
    if plural == "trainingjobs":
        cluster.create(plural, training_job(name, **spec))
    elif plural == "generationrequests":
        cluster.create(plural, generation_request(name, "any-model", **spec))
    else:
        publish(cluster.artifacts, tmp_path, name, ["adapter"])
        cluster.create(plural, trained_model(name, **spec))
    if problem is None:
        cluster.wait_status(plural, name, lambda s: s.get("jobName"))
        container = cluster.get("jobs", f"{name}-train")["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"] == [{"secretRef": {"name": spec["storageSecret"]}}]
        return
    obj = cluster.wait_status(plural, name, lambda s: s.get("reason") == "InvalidSpec")
    assert problem in obj["status"]["message"]
    assert (
        cluster.get("jobs", f"{name}-train") is None
        and cluster.get("deployments", f"{name}-generator") is None
    )


def test_metrics_endpoint_reports_handlers_and_phases(cluster):
    name = unique("tj")
    cluster.create("trainingjobs", training_job(name))
    cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Pending")
    text = httpx.get(cluster.metrics_url, timeout=5).text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    reconciles = samples[
        'musicgen_operator_reconciles_total{handler="reconcile_trainingjob",resource="trainingjobs"}'
    ]
    assert reconciles >= 1
    assert samples['musicgen_operator_resources{phase="Pending",resource="trainingjobs"}'] >= 1
