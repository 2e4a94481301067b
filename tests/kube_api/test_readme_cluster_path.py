"""README "On a cluster", end to end against the emulator with the real kubectl and Helm's library.

Deviations from a real cluster, each forced by the test machine and kept small:
- ``helm install``: the chart is rendered by Helm's own engine (helm-python-sdk) and the result applied
  with ``kubectl apply`` (the emulator has no Helm release storage); CRDs first, as Helm does.
- Storage is a ``file://`` folder instead of MinIO (no MinIO server here); the liveness and metrics ports
  are free ports (the pods share the test machine's network).
- The operator Deployment and the Jobs run as local processes (the test kubelet, tests/kube_api/kubelet.py);
  the operator's requests carry its ServiceAccount's token, so the chart's RBAC is enforced.
- examples/trainingjob.yaml points at a small local dataset with the tiny random model on CPU and
  without the Kueue queue label (no Kueue here); examples/generationrequest.yaml asks for 2 s of audio on CPU.
Every kubectl call and its output is in the test log.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from tests.kube_api.kubectl import REPO, Kubectl, needs_kubectl, table_rows
from tests.kube_api.kubelet import Kubelet
from tests.kube_emulator import EmulatorThread, KubeEmulator

pytestmark = [pytest.mark.slow, pytest.mark.emulator, needs_kubectl]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _render_chart(artifacts: Path, out: Path) -> Path:
    """``helm template`` with Helm's engine: the values a user would --set, written as one manifest."""
    helm = pytest.importorskip("helm_python")
    chart = helm.Chart.load(REPO / "charts" / "musicgen")
    values = {
        "storage": {"artifactsUri": f"file://{artifacts}"},
        "operator": {"livenessPort": _free_port(), "progressPollSeconds": 1},
        "metrics": {"port": _free_port()},
    }
    chart.validate_schema(values)
    rendered = chart.render(values, name="musicgen", namespace="musicgen", is_install=True)
    docs = [
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    out.write_text(yaml.safe_dump_all(docs))
    return out


def _examples(tmp_path: Path, dataset: Path) -> tuple[Path, Path]:
    training = yaml.safe_load((REPO / "examples" / "trainingjob.yaml").read_text())
    training["metadata"].pop("labels")
    training["spec"] |= {
        "datasetUri": f"file://{dataset}",
        "baseModel": "tiny-random",
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "training": {"epochs": 2, "batchSize": 4, "learningRate": 0.003, "precision": "fp32", "saveSteps": 2},
        "exportFormats": ["adapter"],
        "resources": {"gpu": 0},
    }
    generation = yaml.safe_load((REPO / "examples" / "generationrequest.yaml").read_text())
    generation["spec"] |= {"durationSeconds": 2, "resources": {"gpu": 0}}  # CPU pods here: no GPU to ask for
    (tmp_path / "trainingjob.yaml").write_text(yaml.safe_dump(training))
    (tmp_path / "generationrequest.yaml").write_text(yaml.safe_dump(generation))
    return tmp_path / "trainingjob.yaml", tmp_path / "generationrequest.yaml"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[EmulatorThread, Kubectl, Kubelet]]:
    with EmulatorThread(KubeEmulator(crds=None)) as server:
        kubectl = Kubectl(server.url, tmp_path / "kubectl")
        kubelet = Kubelet(server.url, tmp_path / "pods")
        try:
            yield server, kubectl, kubelet
        finally:
            kubelet.stop()


def test_readme_cluster_path(cluster, tmp_path: Path) -> None:
    from musicgen_ops.pipeline.audio import AudioDataPreprocessor
    from musicgen_ops.pipeline.demo_data import render_demo_dataset

    server, kubectl, kubelet = cluster
    artifacts = tmp_path / "artifacts"
    dataset = artifacts / "datasets" / "piano"
    raw = render_demo_dataset(tmp_path / "raw", num_tracks=2, seconds=4.0)
    AudioDataPreprocessor(target_duration=1.0).preprocess_directory(raw, dataset)
    training, generation = _examples(tmp_path, dataset)

    # helm install musicgen charts/musicgen -n musicgen --create-namespace
    namespace = tmp_path / "namespace.yaml"
    namespace.write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "musicgen"}})
    )
    kubectl("apply", "-f", str(namespace))
    # Jobs' pods read the storage Secret, which the chart creates in the release namespace: the resources
    # go there too (docs/cluster.md passes -n musicgen; a pod in another namespace could not start).
    kubectl("config", "set-context", "--current", "--namespace", "musicgen")
    kubectl("apply", "--server-side", "-f", "charts/musicgen/crds/")
    installed = kubectl(
        "apply", "-n", "musicgen", "-f", str(_render_chart(artifacts, tmp_path / "chart.yaml"))
    )
    assert "deployment.apps/musicgen-operator created" in installed
    operator = kubelet.start_deployment("musicgen", "musicgen-operator", tmp_path / "operator.log")
    kubelet.run_jobs("musicgen")

    # kubectl apply -f examples/trainingjob.yaml; kubectl get tj -w
    assert kubectl("apply", "-f", str(training)).strip() == "trainingjob.musicgen.io/piano-lora created"
    lines = kubectl.watch("get", "tj", "-w", until="Succeeded", action=lambda: None, timeout=180)
    phases = [line.split()[1] for line in lines[1:] if len(line.split()) > 2]
    assert "Running" in phases and phases[-1] == "Succeeded", (lines, operator.poll(), kubelet.errors)
    assert "condition met" in kubectl("wait", "--for=condition=Succeeded", "tj/piano-lora", "--timeout=30s")

    # kubectl get trainedmodels.musicgen.io
    kubectl(
        "wait",
        "--for=jsonpath={.status.phase}=Ready",
        "trainedmodels.musicgen.io/piano-lora-v1",
        "--timeout=60s",
    )
    header, *rows = table_rows(kubectl("get", "trainedmodels.musicgen.io"))
    model = dict(zip(header, rows[0], strict=True))
    assert (model["NAME"], model["PHASE"], model["BASE"], model["FORMATS"]) == (
        "piano-lora-v1",
        "Ready",
        "tiny-random",
        "adapter",
    )

    # kubectl apply -f examples/generationrequest.yaml; kubectl get mgr
    assert "generationrequest.musicgen.io/calm-piano-1 created" in kubectl("apply", "-f", str(generation))
    kubectl("wait", "--for=condition=Succeeded", "mgr/calm-piano-1", "--timeout=240s")
    header, *rows = table_rows(kubectl("get", "mgr"))
    request = dict(zip(header, rows[0], strict=True))
    assert (request["PHASE"], request["MODEL"], request["DURATION"]) == ("Succeeded", "piano-lora-v1", "2")

    # musicgen-ops storage cp "$(kubectl get mgr calm-piano-1 -o jsonpath='{.status.outputUri}')" ./out.flac
    uri = kubectl("get", "mgr", "calm-piano-1", "-o", "jsonpath={.status.outputUri}")
    out = tmp_path / "out.flac"
    subprocess.run(
        [str(Path(sys.executable).parent / "musicgen-ops"), "storage", "cp", uri, str(out)],
        check=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "operator")},
        timeout=120,
    )
    audio, rate = sf.read(out)
    assert rate == 32_000 and len(audio) == 2 * 32_000
    described = kubectl("describe", "tj", "piano-lora")
    assert "Succeeded" in described.split("Events:")[1]
    assert kubelet.errors == []
    assert server.emulator.authorizer.denied == []  # the chart's RBAC allowed every operator request
    assert operator.poll() is None, "the operator exited"
