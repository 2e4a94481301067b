"""A user's path with the real kubectl, against the operator running on the emulator: apply the example
TrainingJob, watch its phase move in ``kubectl get tj``, ``kubectl wait`` for Succeeded, find the model
with ``kubectl get trainedmodels``, apply the example GenerationRequest and read its output URI with
``-o jsonpath``. The test plays the Job controller and the Jobs' uploads. Every kubectl call and its
output is in the test log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from musicgen_ops.contracts.generation import GenerationJobResult, Timings
from musicgen_ops.contracts.progress import TrainingProgress
from tests.controllers.conftest import Cluster
from tests.controllers.helpers import job_succeeded, publish, write_progress
from tests.kube_api.kubectl import REPO, Kubectl, needs_kubectl, table_rows

pytestmark = [pytest.mark.emulator, needs_kubectl]


def _example(tmp_path: Path) -> Path:
    """examples/trainingjob.yaml with the tiny model, and without the Kueue queue (no Kueue here)."""
    manifest = yaml.safe_load((REPO / "examples" / "trainingjob.yaml").read_text())
    del manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
    manifest["spec"]["baseModel"] = "tiny-random"
    manifest["spec"]["exportFormats"] = ["adapter", "merged"]
    path = tmp_path / "trainingjob.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def _tj_row(kubectl: Kubectl) -> dict[str, str]:
    header, *rows = table_rows(kubectl("get", "tj"))
    (row,) = [r for r in rows if r[0] == "piano-lora"]
    return dict(zip(header, row, strict=True))


def test_apply_watch_wait_and_find_the_model(cluster: Cluster, tmp_path: Path) -> None:
    kubectl = Kubectl(cluster.url, tmp_path / "kubectl")
    assert (
        kubectl("apply", "-f", str(_example(tmp_path))).strip()
        == "trainingjob.musicgen.io/piano-lora created"
    )
    job_name = cluster.wait_status("trainingjobs", "piano-lora", lambda s: s.get("jobName"))["status"][
        "jobName"
    ]
    assert _tj_row(kubectl)["PHASE"] == "Pending"

    cluster.patch(
        "jobs", job_name, {"status": {"active": 1, "startTime": "2026-01-01T00:00:00Z"}}, sub="status"
    )
    write_progress(
        cluster.artifacts,
        "piano-lora",
        TrainingProgress,
        epoch=5,
        total_epochs=10,
        step=40,
        total_steps=80,
        loss=1.5,
        eta_seconds=60,
        phase="training",
        updated_at="2026-01-01T00:05:00Z",
    )
    cluster.wait_status("trainingjobs", "piano-lora", lambda s: s.get("currentStep") == 40)
    running = _tj_row(kubectl)
    assert (running["PHASE"], running["EPOCH"], running["PROGRESS"], running["LOSS"]) == (
        "Running",
        "5/10",
        "50",
        "1.5",
    )

    waiting = kubectl.popen("wait", "--for=condition=Succeeded", "tj/piano-lora", "--timeout=30s")
    publish(cluster.artifacts, tmp_path / "upload", "piano-lora-v1", ["adapter", "merged"], loss=1.25)
    cluster.patch("jobs", job_name, job_succeeded(), sub="status")
    out, err = waiting.communicate(timeout=40)
    assert waiting.returncode == 0, err
    assert out.strip() == "trainingjob.musicgen.io/piano-lora condition met"
    done = _tj_row(kubectl)
    assert (done["PHASE"], done["PROGRESS"], done["MODEL"]) == ("Succeeded", "100", "piano-lora-v1")

    cluster.wait_status("trainedmodels", "piano-lora-v1", lambda s: s.get("phase") == "Ready")
    header, *rows = table_rows(kubectl("get", "trainedmodels.musicgen.io"))
    model = dict(zip(header, next(r for r in rows if r[0] == "piano-lora-v1"), strict=True))
    assert (model["PHASE"], model["BASE"], model["FORMATS"], model["LOSS"]) == (
        "Ready",
        "tiny-random",
        "adapter,merged",
        "1.25",
    )
    described = kubectl("describe", "tj", "piano-lora")
    for reason in ("JobCreated", "Running", "Succeeded", "TrainedModelCreated"):
        assert reason in described.split("Events:")[1], reason

    assert kubectl("apply", "-f", "examples/generationrequest.yaml").strip() == (
        "generationrequest.musicgen.io/calm-piano-1 created"
    )
    gen_job = cluster.wait_status("generationrequests", "calm-piano-1", lambda s: s.get("jobName"))["status"][
        "jobName"
    ]
    header, *rows = table_rows(kubectl("get", "mgr"))
    request = dict(zip(header, next(r for r in rows if r[0] == "calm-piano-1"), strict=True))
    assert (request["PHASE"], request["MODEL"], request["DURATION"]) == ("Running", "piano-lora-v1", "30")
    output = cluster.artifacts / "generations" / "default" / "calm-piano-1" / "output.flac"
    output.parent.mkdir(parents=True, exist_ok=True)
    result = GenerationJobResult(  # as generate-job writes it
        output_uri=f"file://{output}",
        model_id="piano-lora-v1",
        seed=1234,
        duration_seconds=30.0,
        sample_rate=32000,
        num_samples=960_000,
        conditioning_text="ambient, 72 bpm, C major, calm solo piano, soft dynamics",
        audio_sha256="0" * 64,
        real_time_factor=0.5,
        timings=Timings(total_seconds=15.0),
    )
    (output.parent / "output.flac.json").write_text(result.model_dump_json())
    cluster.patch("jobs", gen_job, job_succeeded(), sub="status")
    kubectl("wait", "--for=condition=Succeeded", "mgr/calm-piano-1", "--timeout=30s")
    uri = kubectl("get", "mgr", "calm-piano-1", "-o", "jsonpath={.status.outputUri}")
    assert uri == f"file://{output}"
