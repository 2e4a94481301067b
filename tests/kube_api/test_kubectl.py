"""The real kubectl against the emulator: CRDs applied from crds/, then what a user types."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.kube_api.kubectl import Kubectl, needs_kubectl, table_rows
from tests.kube_emulator import EmulatorThread, KubeEmulator

pytestmark = needs_kubectl
TJ = "/apis/musicgen.io/v1alpha1/namespaces/default/trainingjobs"
STATUS = {
    "phase": "Running",
    "epochs": "2/10",
    "progressPercent": 20,
    "currentLoss": 2.5,
    "conditions": [
        {
            "type": "Validated",
            "status": "True",
            "reason": "SpecValid",
            "message": "spec is valid",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        },
    ],
}


@pytest.fixture(scope="module")
def bare() -> Iterator[EmulatorThread]:
    """An emulator that knows only built-in kinds: the CRDs come from ``kubectl apply -f crds/``."""
    with EmulatorThread(KubeEmulator(crds=None)) as running:
        yield running


@pytest.fixture(scope="module")
def kubectl(bare: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    client = Kubectl(bare.url, tmp_path_factory.mktemp("kubectl"))
    applied = client("apply", "-f", "crds/")
    for plural in ("trainingjobs", "trainedmodels", "generationrequests"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{plural}.musicgen.io created" in applied
    return client


@pytest.fixture(scope="module")
def api(bare: EmulatorThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bare.url, timeout=10) as client:
        yield client


def test_api_resources_lists_the_kinds_with_short_names(kubectl):
    rows = {row[0]: row for row in table_rows(kubectl("api-resources", "--api-group=musicgen.io"))[1:]}
    assert rows["trainingjobs"][1:] == ["mtj,tj", "musicgen.io/v1alpha1", "true", "TrainingJob"]
    assert rows["trainedmodels"][1:] == ["mtm", "musicgen.io/v1alpha1", "true", "TrainedModel"]
    assert rows["generationrequests"][1:] == ["mgr", "musicgen.io/v1alpha1", "true", "GenerationRequest"]
    assert "trainingjobs" in kubectl("api-resources", "--categories=musicgen", "-o", "name")[:200]


def test_apply_get_and_printer_columns(kubectl, api):
    assert (
        kubectl("apply", "-f", "examples/trainingjob.yaml").strip()
        == "trainingjob.musicgen.io/piano-lora created"
    )
    assert "unchanged" in kubectl("apply", "-f", "examples/trainingjob.yaml")
    assert (
        api.patch(
            f"{TJ}/piano-lora/status",
            json={"status": STATUS},
            headers={"Content-Type": "application/merge-patch+json"},
        ).status_code
        == 200
    )
    for resource in ("tj", "trainingjobs.musicgen.io", "mtj"):
        header, row = table_rows(kubectl("get", resource))
        assert header == ["NAME", "PHASE", "EPOCH", "PROGRESS", "LOSS", "MODEL", "REASON", "AGE"]
        assert row[:6] == ["piano-lora", "Running", "2/10", "20", "2.5", ""]  # no model yet: empty
        assert re.fullmatch(r"\d+s", row[7])
    wide_header = table_rows(kubectl("get", "tj", "-o", "wide"))[0]
    assert wide_header == [
        "NAME",
        "PHASE",
        "EPOCH",
        "PROGRESS",
        "LOSS",
        "MODEL",
        "REASON",
        "VAL LOSS",
        "BASE LOSS",
        "ETA",
        "WORKERS",
        "WORLD",
        "AGE",
    ]
    assert kubectl("get", "tj", "piano-lora", "-o", "jsonpath={.spec.lora.r}") == "16"

    assert "trainedmodel.musicgen.io/piano-lora-v1 created" in kubectl(
        "apply", "-f", "examples/trainedmodel.yaml"
    )
    header, row = table_rows(kubectl("get", "trainedmodels"))
    assert header == [
        "NAME",
        "PHASE",
        "BASE",
        "FORMATS",
        "LOSS",
        "VAL LOSS",
        "BASE LOSS",
        "URL",
        "READY",
        "REASON",
        "AGE",
    ]
    assert row[:3] == ["piano-lora-v1", "", "facebook/musicgen-small"]
    everything = kubectl("get", "musicgen")
    assert "trainingjob.musicgen.io/piano-lora" in everything
    assert "trainedmodel.musicgen.io/piano-lora-v1" in everything


def test_server_side_validation_errors_reach_the_user(kubectl, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        json.dumps(
            {
                "apiVersion": "musicgen.io/v1alpha1",
                "kind": "TrainingJob",
                "metadata": {"name": "bad"},
                "spec": {"datasetUri": "s3://d/x", "lora": {"r": 1000}, "colour": "blue"},
            }
        )
    )
    strict = kubectl.run("apply", "-f", str(bad), check=False)
    assert strict.returncode != 0 and 'unknown field "spec.colour"' in strict.stderr
    invalid = kubectl.run("apply", "--validate=false", "-f", str(bad), check=False)
    assert invalid.returncode != 0
    assert 'The TrainingJob "bad" is invalid: spec.lora.r: Invalid value: 1000' in invalid.stderr


def test_explain_reads_the_published_schema(kubectl):
    spec = kubectl("explain", "trainingjob.spec")
    assert "KIND:       TrainingJob" in spec and "datasetUri\t<string> -required-" in spec
    lora = kubectl("explain", "tj.spec.lora.r")
    assert "FIELD: r <integer>" in lora and "LoRA rank" in lora


def test_describe_shows_conditions_and_events(kubectl, api):
    uid = api.get(f"{TJ}/piano-lora").json()["metadata"]["uid"]
    event = {
        "metadata": {"generateName": "piano-lora-"},
        "involvedObject": {
            "apiVersion": "musicgen.io/v1alpha1",
            "kind": "TrainingJob",
            "name": "piano-lora",
            "namespace": "default",
            "uid": uid,
        },
        "reason": "JobCreated",
        "message": "created Job piano-lora-train",
        "type": "Normal",
        "source": {"component": "musicgen-operator"},
        "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    assert api.post("/api/v1/namespaces/default/events", json=event).status_code == 201
    described = kubectl("describe", "tj", "piano-lora")
    assert re.search(r"Conditions:\s+Last Transition Time:\s+2026-01-01T00:00:00Z", described)
    assert "Reason:                SpecValid" in described
    assert re.search(
        r"Normal\s+JobCreated\s+\S+\s+musicgen-operator\s+created Job piano-lora-train", described
    )


def test_get_watch_prints_changes_astable_rows(kubectl, api):
    def progress() -> None:
        patch = {"status": {"epochs": "3/10", "progressPercent": 30}}
        api.patch(
            f"{TJ}/piano-lora/status", json=patch, headers={"Content-Type": "application/merge-patch+json"}
        )

    lines = kubectl.watch("get", "tj", "-w", until="3/10", action=progress)
    assert lines[0].split() == ["NAME", "PHASE", "EPOCH", "PROGRESS", "LOSS", "MODEL", "REASON", "AGE"]
    assert lines[1].split()[:5] == ["piano-lora", "Running", "2/10", "20", "2.5"]
    assert lines[-1].split()[:5] == ["piano-lora", "Running", "3/10", "30", "2.5"]


def test_wait_for_a_condition(kubectl, api):
    waiting = kubectl.popen("wait", "--for=condition=Succeeded", "tj/piano-lora", "--timeout=20s")
    done = {
        "type": "Succeeded",
        "status": "True",
        "reason": "JobSucceeded",
        "message": "ok",
        "lastTransitionTime": "2026-01-01T00:10:00Z",
    }
    patch = {"status": {"phase": "Succeeded", "conditions": [*STATUS["conditions"], done]}}
    assert (
        api.patch(
            f"{TJ}/piano-lora/status", json=patch, headers={"Content-Type": "application/merge-patch+json"}
        ).status_code
        == 200
    )
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, err
    assert out.strip() == "trainingjob.musicgen.io/piano-lora condition met"
    assert "deleted" in kubectl("delete", "-f", "examples/trainingjob.yaml")
    assert "No resources found" in kubectl.run("get", "tj").stderr


def test_server_side_apply_creates_then_updates(kubectl, tmp_path):
    applied = kubectl("apply", "--server-side", "-f", "crds/")
    assert (
        "customresourcedefinition.apiextensions.k8s.io/trainingjobs.musicgen.io serverside-applied" in applied
    )
    manifest = tmp_path / "ssa.yaml"
    manifest.write_text(
        json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}})
    )
    assert (
        kubectl("apply", "--server-side", "-f", str(manifest)).strip() == "configmap/ssa serverside-applied"
    )
    manifest.write_text(manifest.read_text().replace('"1"', '"2"'))
    kubectl("apply", "--server-side", "-f", str(manifest))
    assert kubectl("get", "configmap", "ssa", "-o", "jsonpath={.data.a}") == "2"


def test_typed_create_commands_for_core_kinds(kubectl):
    """Typed ``kubectl create namespace|secret|configmap|serviceaccount`` sends protobuf (docs/cluster.md)."""
    assert kubectl("create", "namespace", "musicgen").strip() == "namespace/musicgen created"
    created = kubectl(
        "-n",
        "musicgen",
        "create",
        "secret",
        "generic",
        "musicgen-s3",
        "--from-literal=AWS_ACCESS_KEY_ID=minio",
        "--from-literal=AWS_SECRET_ACCESS_KEY=minio123",
    )
    assert created.strip() == "secret/musicgen-s3 created"
    key = kubectl(
        "-n", "musicgen", "get", "secret", "musicgen-s3", "-o", "jsonpath={.data.AWS_ACCESS_KEY_ID}"
    )
    assert base64.b64decode(key) == b"minio"
    assert kubectl("-n", "musicgen", "get", "secret", "musicgen-s3", "-o", "jsonpath={.type}") == "Opaque"
    assert "configmap/settings created" in kubectl(
        "-n", "musicgen", "create", "configmap", "settings", "--from-literal=a=1"
    )
    assert kubectl("-n", "musicgen", "get", "configmap", "settings", "-o", "jsonpath={.data.a}") == "1"
    assert "serviceaccount/runner created" in kubectl("-n", "musicgen", "create", "serviceaccount", "runner")
    refused = kubectl.run("-n", "musicgen", "create", "deployment", "web", "--image=nginx", check=False)
    assert refused.returncode != 0 and "use kubectl apply" in refused.stderr
