"""The test API emulator refuses and rewrites what a real kube-apiserver refuses and rewrites."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.kube_api.conftest import JSON_PATCH, MERGE, SERVICES, TJ, patch_json, post_json, training_job
from tests.kube_emulator import EmulatorThread, KubeEmulator
from tests.kube_emulator.tables import human_duration, jsonpath


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("POST", json.dumps(training_job("nan-create", lora={"dropout": float("nan")}))),
        ("POST", json.dumps(training_job("inf-create", training={"learningRate": float("inf")}))),
        ("PATCH", json.dumps({"status": {"currentLoss": float("-inf")}})),
    ],
    ids=["nan-create", "infinity-create", "minus-infinity-status-patch"],
)
def test_non_finite_json_numbers_are_a_bad_request(api, method, body):
    post_json(api, TJ, training_job("finite"))
    path = TJ if method == "POST" else f"{TJ}/finite/status"
    response = api.request(method, path, content=body, headers=MERGE)
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "BadRequest"
    assert re.search(r"invalid character '[NI]'", response.json()["message"])


@pytest.mark.parametrize(
    ("path", "kind", "name", "fragment"),
    [
        (SERVICES, "Service", "1-x", "a DNS-1035 label must consist of lower case alphanumeric"),
        (SERVICES, "Service", "a.b", "a DNS-1035 label"),
        (SERVICES, "Service", "x" * 64, "must be no more than 63 characters"),
        (TJ, "TrainingJob", "Piano_LoRA", "a lowercase RFC 1123 subdomain must consist of"),
        ("/api/v1/namespaces", "Namespace", "a.b", "a lowercase RFC 1123 label"),
    ],
)
def test_invalid_object_names_are_422_with_the_real_message(api, path, kind, name, fragment):
    body = {"kind": kind, "metadata": {"name": name}, "spec": {"datasetUri": "s3://d/x"}}
    response = post_json(api, path, body)
    assert response.status_code == 422, response.text
    status = response.json()
    assert status["reason"] == "Invalid"
    assert status["message"].startswith(f'{kind}{".musicgen.io" if kind == "TrainingJob" else ""} "{name}"')
    assert f'metadata.name: Invalid value: "{name}": ' in status["message"]
    assert fragment in status["message"]
    assert status["details"]["causes"][0]["field"] == "metadata.name"


def test_valid_names_pass(api):
    assert post_json(api, SERVICES, {"kind": "Service", "metadata": {"name": "x-1"}}).status_code == 201
    assert post_json(api, TJ, training_job("a.b")).status_code == 201  # subdomain: dots allowed


def test_server_owned_metadata_and_generation(api):
    created = post_json(api, TJ, training_job("meta", status={"phase": "Succeeded"})).json()
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
    assert "status" not in created  # status is a subresource: a create never sets it
    version = int(meta["resourceVersion"])

    labelled = patch_json(api, f"{TJ}/meta", {"metadata": {"labels": {"a": "b"}}}).json()["metadata"]
    assert labelled["generation"] == 1 and int(labelled["resourceVersion"]) > version
    status = patch_json(api, f"{TJ}/meta/status", {"status": {"phase": "Running"}, "spec": {"suspend": True}})
    assert status.json()["metadata"]["generation"] == 1 and status.json()["status"]["phase"] == "Running"
    assert status.json()["spec"]["suspend"] is False  # the default; /status ignores everything but status
    edited = patch_json(api, f"{TJ}/meta", {"spec": {"suspend": True}, "status": {"phase": "Failed"}}).json()
    assert edited["metadata"]["generation"] == 2
    assert edited["status"]["phase"] == "Running"  # the main object ignores status
    assert edited["metadata"]["uid"] == meta["uid"]


def test_generate_name(api):
    body = {"kind": "Event", "metadata": {"generateName": "kopf-event-"}, "reason": "R"}
    name = post_json(api, "/api/v1/namespaces/default/events", body).json()["metadata"]["name"]
    assert name.startswith("kopf-event-") and len(name) == len("kopf-event-") + 5


def test_merge_patch_replaces_lists_and_null_deletes(api):
    models = TJ.replace("trainingjobs", "trainedmodels")
    body = {
        "apiVersion": "musicgen.io/v1alpha1",
        "kind": "TrainedModel",
        "metadata": {"name": "lists"},
        "spec": {"formats": ["adapter", "merged"], "trainingJob": "tj-1"},
    }
    assert post_json(api, models, body).status_code == 201
    patched = patch_json(api, f"{models}/lists", {"spec": {"formats": ["onnx"], "trainingJob": None}}).json()
    assert patched["spec"]["formats"] == ["onnx"]
    assert "trainingJob" not in patched["spec"]


def test_json_patch_test_guard_is_422_and_stale_versions_conflict(api):
    created = post_json(api, TJ, training_job("guard")).json()
    stale = str(int(created["metadata"]["resourceVersion"]) - 1)
    guard = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
    ]
    response = patch_json(api, f"{TJ}/guard", guard, JSON_PATCH)
    assert response.status_code == 422, response.text
    guard[0]["value"] = created["metadata"]["resourceVersion"]
    assert patch_json(api, f"{TJ}/guard", guard, JSON_PATCH).json()["metadata"]["finalizers"] == ["x"]
    conflict = patch_json(api, f"{TJ}/guard", {"metadata": {"resourceVersion": stale, "labels": {"a": "b"}}})
    assert conflict.status_code == 409 and conflict.json()["reason"] == "Conflict"


@pytest.mark.parametrize(
    ("spec", "field", "fragment"),
    [
        ({"lora": {"r": 0}}, "spec.lora.r", "should be greater than or equal to 1"),
        ({"lora": {"r": "16"}}, "spec.lora.r", "must be of type integer"),
        ({"training": {"precision": "fp8"}}, "spec.training.precision", 'Unsupported value: "fp8"'),
        ({"datasetUri": "http://x"}, "spec.datasetUri", "should match"),
        ({"exportFormats": []}, "spec.exportFormats", "should have at least 1 items"),
    ],
)
def test_structural_schema_is_enforced(api, spec, field, fragment):
    response = post_json(api, TJ, training_job("schema", **spec))
    assert response.status_code == 422, response.text
    (cause,) = response.json()["details"]["causes"]
    assert cause["field"] == field and fragment in cause["message"]


def test_unknown_fields_are_pruned_or_rejected_and_defaults_filled(api):
    body = training_job("prune", lora={"r": 8, "rank": 4}, colour="blue")
    strict = post_json(api, TJ, body, fieldValidation="Strict")
    assert strict.status_code == 400
    assert 'unknown field "spec.colour"' in strict.json()["message"]
    assert 'unknown field "spec.lora.rank"' in strict.json()["message"]
    response = post_json(api, TJ, body)
    assert response.status_code == 201 and "spec.colour" in response.headers["Warning"]
    spec = response.json()["spec"]
    assert "colour" not in spec and spec["lora"] == {"r": 8, "dropout": 0.1, "targetModules": []}
    assert spec["baseModel"] == "facebook/musicgen-small"


def test_self_equals_old_self_rules_are_evaluated(api):
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "dataset": {
                                            "type": "string",
                                            "x-kubernetes-validations": [
                                                {"rule": "self == oldSelf", "message": "dataset is immutable"}
                                            ],
                                        },
                                        "size": {
                                            "type": "integer",
                                            "x-kubernetes-validations": [
                                                {"rule": "self > 100", "message": "not evaluated"}
                                            ],
                                        },
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    assert post_json(api, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).status_code == 201
    widgets = "/apis/example.com/v1/namespaces/default/widgets"
    body = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"dataset": "a", "size": 1},
    }
    assert post_json(api, widgets, body).status_code == 201  # the other rule is not evaluated
    response = patch_json(api, f"{widgets}/w", {"spec": {"dataset": "b"}})
    assert response.status_code == 422
    assert response.json()["details"]["causes"][0] == {
        "reason": "FieldValueInvalid",
        "field": "spec.dataset",
        "message": 'Invalid value: "object": dataset is immutable',
    }
    assert patch_json(api, f"{widgets}/w", {"spec": {"size": 2}}).status_code == 200


def test_lists_carry_kind_and_api_version_and_tables_use_printer_columns(api):
    post_json(api, TJ, training_job("table"))
    patch_json(
        api, f"{TJ}/table/status", {"status": {"phase": "Running", "progressPercent": 40, "currentLoss": 2.5}}
    )
    listed = api.get(TJ).json()
    assert listed["kind"] == "TrainingJobList" and listed["apiVersion"] == "musicgen.io/v1alpha1"
    assert api.get("/api/v1/namespaces/default/services").json()["kind"] == "ServiceList"
    table = api.get(f"{TJ}/table", headers={"Accept": "application/json;as=Table;g=meta.k8s.io;v=v1"}).json()
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == [
        "Name",
        "Phase",
        "Epoch",
        "Progress",
        "Loss",
        "Model",
        "Reason",
        "Val Loss",
        "Base Loss",
        "ETA",
        "Workers",
        "World",
        "Age",
    ]
    cells = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert cells["Name"] == "table" and cells["Phase"] == "Running" and cells["Progress"] == 40
    assert cells["Loss"] == 2.5 and cells["Model"] is None and cells["Age"].endswith("s")


def test_watch_resumes_from_a_resource_version_and_expires_old_ones():
    with EmulatorThread(KubeEmulator(crds=None)) as small:
        small.emulator.store.log = type(small.emulator.store.log)(maxlen=5)
        with httpx.Client(base_url=small.url, timeout=5) as api:
            cms = "/api/v1/namespaces/default/configmaps"
            versions = [
                post_json(api, cms, {"metadata": {"name": f"c{i}"}}).json()["metadata"]["resourceVersion"]
                for i in range(8)
            ]
            with api.stream(
                "GET", cms, params={"watch": "true", "resourceVersion": versions[5], "timeoutSeconds": "1"}
            ) as stream:
                events = [json.loads(line) for line in stream.iter_lines() if line]
            assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
                ("ADDED", "c6"),
                ("ADDED", "c7"),
            ]
            with api.stream("GET", cms, params={"watch": "true", "resourceVersion": versions[0]}) as stream:
                (event,) = [json.loads(line) for line in stream.iter_lines() if line]
            assert event["type"] == "ERROR" and event["object"]["code"] == 410


def test_owner_references_are_garbage_collected_and_namespaces_must_exist(api):
    owner = post_json(api, TJ, training_job("owner")).json()
    ref = {
        "apiVersion": "musicgen.io/v1alpha1",
        "kind": "TrainingJob",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    jobs = "/apis/batch/v1/namespaces/default/jobs"
    assert post_json(api, jobs, {"metadata": {"name": "owned", "ownerReferences": [ref]}}).status_code == 201
    assert api.delete(f"{TJ}/owner").status_code == 200
    assert api.get(f"{jobs}/owned").status_code == 404
    missing = post_json(api, "/apis/batch/v1/namespaces/nowhere/jobs", {"metadata": {"name": "x"}})
    assert missing.status_code == 404 and missing.json()["message"] == 'namespaces "nowhere" not found'


def test_request_cost_does_not_grow_with_history(api):
    """Routing is a dict lookup: after 1500 more requests a request costs what it did (kmock: ~78 ms vs
    a few ms). The best of several small batches keeps other load on the machine out of the figures."""

    def cost() -> float:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(20):
                api.get(f"{TJ}/meta")
            best = min(best, (time.perf_counter() - start) / 20)
        return best

    early = cost()
    for _ in range(1500):
        api.get("/api/v1/namespaces/default/configmaps")
    late = cost()
    assert late < max(3 * early, 0.01), (early, late)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".status.phase", "Running"),
        (".status.conditions[1].type", "Ready"),
        ('.status.conditions[?(@.type=="Ready")].status', "False"),
        (".status.missing.deeper", None),
    ],
)
def test_printer_column_paths(path, expected):
    obj = {
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Validated", "status": "True"}, {"type": "Ready", "status": "False"}],
        }
    }
    assert jsonpath(obj, path) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (59, "59s"),
        (130, "2m10s"),
        (700, "11m"),
        (4 * 3600 + 60, "4h1m"),
        (30 * 3600, "30h"),
        (3 * 86400, "3d"),
        (400 * 86400, "400d"),
        (3 * 365 * 86400, "3y"),
    ],
)
def test_ages_read_like_kubectl(seconds, text):
    assert human_duration(seconds) == text
