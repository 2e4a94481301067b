"""The Kubernetes studio's files have a lifecycle: deleting GenerationRequests, failed creation, the sweep."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from musicgen_ops.studio.kube import generations
from musicgen_ops.studio.retention import Throttle, utc_now
from tests.controllers.conftest import (  # noqa: F401  (pytest fixtures, imported to be used here)
    _delete_test_resources,
    cluster,
)
from tests.controllers.helpers import trained_model
from tests.studio.test_generation_inputs import clip_bytes
from tests.studio.test_kube_backend import kube_studio  # noqa: F401

pytestmark = pytest.mark.emulator
RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"


def post_clip(client: TestClient, model_id: str, compare: bool = True):
    request = {"model_id": model_id, "parameters": {"prompt": "lofi"}, "compare_with_base": compare}
    parts = {
        "request": (None, json.dumps(request), "application/json"),
        "audio_prompt": ("intro.wav", clip_bytes(seconds=0.1), "audio/wav"),
    }
    return client.post("/api/v1/generations/upload", files=parts)


def local(cluster, uri: str) -> Path:  # noqa: F811
    return cluster.artifacts / uri.removeprefix(f"file://{cluster.artifacts}/")


def test_deleting_a_generation_deletes_both_requests_their_audio_and_the_inputs(kube_studio, cluster):  # noqa: F811
    cluster.create("trainedmodels", trained_model("gc-model"))
    answer = post_clip(kube_studio, "gc-model")
    assert answer.status_code == 202, answer.text
    main, twin = answer.json()["id"], answer.json()["compare_id"]
    inputs = local(cluster, answer.json()["parameters"]["audio_prompt_uri"]).parent
    outputs = [cluster.artifacts / "generations/default" / name for name in (main, twin)]
    for folder in outputs:  # the generator Jobs' audio, where the operator puts it
        folder.mkdir(parents=True)
        (folder / "output.wav").write_bytes(b"RIFF")
    assert inputs.is_dir()

    deleted = kube_studio.delete(f"/api/v1/generations/{main}")
    assert deleted.status_code == 200, deleted.text
    cluster.wait_for("both GenerationRequests to go", lambda: not cluster.get("generationrequests", main))
    cluster.wait_for("the twin to go", lambda: not cluster.get("generationrequests", twin))
    assert not inputs.exists() and not any(folder.exists() for folder in outputs)
    studio_calls = [r for r in cluster.emulator.recorded if r.user_agent == "musicgen-studio"]
    deletes = {r.name for r in studio_calls if (r.verb, r.resource) == ("delete", "generationrequests")}
    assert {main, twin} <= deletes
    assert kube_studio.delete(f"/api/v1/generations/{main}").status_code == 404


def test_deleting_the_base_twin_alone_keeps_the_partner_without_a_dangling_compare(kube_studio, cluster):  # noqa: F811
    cluster.create("trainedmodels", trained_model("gc-twin"))
    answer = post_clip(kube_studio, "gc-twin")
    main, twin = answer.json()["id"], answer.json()["compare_id"]
    inputs = local(cluster, answer.json()["parameters"]["audio_prompt_uri"]).parent
    assert kube_studio.delete(f"/api/v1/generations/{twin}").status_code == 200
    cluster.wait_for("the twin to go", lambda: not cluster.get("generationrequests", twin))
    listed = {item["id"]: item for item in kube_studio.get("/api/v1/generations").json()["data"]}
    assert main in listed and twin not in listed
    assert listed[main]["compare_id"] is None  # the page shows no A/B against a deleted clip
    assert inputs.is_dir()  # the fine-tuned request still names the clip


def test_the_callers_token_decides_and_a_refused_creation_leaves_no_inputs(kube_studio, cluster):  # noqa: F811
    cluster.create("trainedmodels", trained_model("gc-rbac"))
    made = post_clip(kube_studio, "gc-rbac", compare=False).json()
    inputs = local(cluster, made["parameters"]["audio_prompt_uri"]).parent
    rules = [
        {"apiGroups": ["musicgen.io"], "resources": ["trainedmodels"], "verbs": ["get"]},
        {"apiGroups": ["musicgen.io"], "resources": ["generationrequests"], "verbs": ["get", "list"]},
    ]
    assert cluster.http.post(f"{RBAC}/roles", json={"metadata": {"name": "gc-viewer"}, "rules": rules})
    binding = {
        "metadata": {"name": "gc-viewer"},
        "subjects": [{"kind": "ServiceAccount", "name": "gc-viewer", "namespace": "default"}],
        "roleRef": {"kind": "Role", "name": "gc-viewer", "apiGroup": "rbac.authorization.k8s.io"},
    }
    assert cluster.http.post(f"{RBAC}/rolebindings", json=binding).status_code == 201
    viewer = cluster.emulator.authorizer.issue("default", "gc-viewer")
    kube_studio.headers["Authorization"] = f"Bearer {viewer}"

    refused = kube_studio.delete(f"/api/v1/generations/{made['id']}")
    assert refused.status_code == 403 and "delete generationrequests" in refused.json()["detail"]
    assert cluster.get("generationrequests", made["id"]) and inputs.is_dir()  # nothing deleted

    before = set((cluster.artifacts / "generation-inputs/default").iterdir())
    not_created = post_clip(kube_studio, "gc-rbac", compare=False)
    assert not_created.status_code == 403 and "create generationrequests" in not_created.json()["detail"]
    assert set((cluster.artifacts / "generation-inputs/default").iterdir()) == before  # stored, then deleted


def test_listing_sweeps_orphaned_inputs_older_than_the_retention(kube_studio, cluster, monkeypatch):  # noqa: F811
    monkeypatch.setattr(generations, "SWEEPS", Throttle())  # this test's list is the first of its interval
    cluster.create("trainedmodels", trained_model("gc-sweep"))
    named = local(cluster, post_clip(kube_studio, "gc-sweep").json()["parameters"]["audio_prompt_uri"]).parent
    folders = cluster.artifacts / "generation-inputs/default"
    old_orphan, fresh_orphan = folders / "0123456789ab", folders / "ba9876543210"
    for folder in (old_orphan, fresh_orphan):
        folder.mkdir()
        (folder / "melody.wav").write_bytes(b"RIFF")
    stamp = (utc_now() - timedelta(days=30)).timestamp()
    for path in (named / "audio_prompt.wav", old_orphan / "melody.wav"):
        os.utime(path, (stamp, stamp))

    assert kube_studio.get("/api/v1/generations").status_code == 200
    assert named.is_dir() and fresh_orphan.is_dir() and not old_orphan.exists()
