"""End to end: the operator's Jobs really run. A test "kubelet" executes each Job's container command
locally (the same console scripts, env taken from the Job spec) against file:// storage with the tiny
model: TrainingJob -> train-job -> adapter in storage -> TrainedModel Ready -> GenerationRequest ->
generate-job -> a WAV in storage whose URI is in the status -> serving enabled -> the generator
Deployment's container answers a request with the trained adapter's audio.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from musicgen_ops.pipeline.audio import AudioDataPreprocessor
from musicgen_ops.pipeline.demo_data import render_demo_dataset
from tests.controllers.conftest import Cluster, unique
from tests.controllers.helpers import generation_request, job_failed, job_succeeded, training_job

pytestmark = pytest.mark.slow


def run_job_container(cluster: Cluster, job_name: str, scratch: Path) -> subprocess.CompletedProcess:
    """Play the kubelet: run the Job's container command with the env from its pod template."""
    job = cluster.wait_for(f"job {job_name}", lambda: cluster.get("jobs", job_name))
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(scratch),
        "HF_HUB_OFFLINE": "1",
        # The kubelet mounts the scratch emptyDir at /scratch; here it is a local folder.
        "MUSICGEN_JOB_WORK_DIR": str(scratch / "work"),
        "MUSICGEN_JOB_CACHE_DIR": str(scratch / "cache"),
        "MUSICGEN_JOB_TERMINATION_LOG": str(scratch / "termination-log"),
    }
    command = container.get("command", []) + container.get("args", [])
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if process.returncode == 0:
        cluster.patch("jobs", job_name, job_succeeded(), sub="status")
    else:
        cluster.patch(
            "jobs", job_name, job_failed("BackoffLimitExceeded", process.stderr[-500:]), sub="status"
        )
    return process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_deployment(cluster: Cluster, name: str, scratch: Path) -> Iterator[httpx.Client]:
    """Play the kubelet for a Deployment: run its container (command and env as built) until /readyz is 200.

    Only what the pod's volumes and network namespace would provide is swapped in: local folders for
    the scratch volume and a free loopback port."""
    deployment = cluster.wait_for(f"deployment {name}", lambda: cluster.get("deployments", name), timeout=30)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
    port = free_port()
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(scratch),
        "HF_HUB_OFFLINE": "1",
        "MUSICGEN_SERVE_CACHE_DIR": str(scratch / "models"),
        "MUSICGEN_SERVE_OUTPUT_DIR": str(scratch / "output"),
        "MUSICGEN_SERVE_HOST": "127.0.0.1",
        "MUSICGEN_SERVE_PORT": str(port),
    }
    env = {k: v for k, v in env.items() if not k.startswith("MUSICGEN_BASE_MODEL_CACHE")} | {
        "MUSICGEN_BASE_MODEL_CACHE": str(scratch / "base-models")
    }
    scratch.mkdir(parents=True, exist_ok=True)
    log = open(scratch / "server.log", "w")  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        container["command"] + container.get("args", []), env=env, stdout=log, stderr=log
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, (scratch / "server.log").read_text()[-3000:]
                try:
                    if client.get("/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (scratch / "server.log").read_text()[-3000:]
                time.sleep(0.3)
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def generate_base_model_audio(request: dict, folder: Path) -> np.ndarray:
    """The same request with the base model, through the pipeline's generation path."""
    from musicgen_ops.pipeline.generation.batch import generate_to_files

    (result,) = generate_to_files([request], "tiny-random", folder, device="cpu")
    return sf.read(result.audio_path, dtype="float32")[0]


def test_training_to_generated_audio(cluster: Cluster, tmp_path: Path) -> None:
    raw = render_demo_dataset(tmp_path / "raw", num_tracks=2, seconds=4.0)
    AudioDataPreprocessor(target_duration=1.0).preprocess_directory(
        raw, cluster.artifacts / "datasets" / "e2e"
    )

    name = unique("e2e")
    cluster.create(
        "trainingjobs",
        training_job(
            name,
            datasetUri=f"file://{cluster.artifacts}/datasets/e2e",
            modelId=f"{name}-model",
            lora={"r": 8, "alpha": 16, "dropout": 0.0},
            training={
                "epochs": 2,
                "batchSize": 4,
                "learningRate": 0.003,
                "precision": "fp32",
                "saveSteps": 2,
            },
            exportFormats=["adapter"],
            resources={"gpu": 0},
        ),
    )
    job_name = cluster.wait_status("trainingjobs", name, lambda s: s.get("jobName"))["status"]["jobName"]
    process = run_job_container(cluster, job_name, tmp_path / "train-pod")
    assert process.returncode == 0, process.stderr[-3000:]

    done = cluster.wait_status("trainingjobs", name, lambda s: s.get("phase") == "Succeeded", timeout=30)
    assert done["status"].get("progressPercent") == 100
    model_name = done["status"]["trainedModel"]
    model = cluster.wait_status("trainedmodels", model_name, lambda s: s.get("phase") == "Ready", timeout=30)
    assert "adapter" in model["status"]["formats"]

    request = unique("e2e-gen")
    cluster.create(
        "generationrequests",
        generation_request(request, model_name, durationSeconds=2, seed=7, resources={"gpu": 0}),
    )
    gen_job = cluster.wait_status("generationrequests", request, lambda s: s.get("jobName"))["status"][
        "jobName"
    ]
    process = run_job_container(cluster, gen_job, tmp_path / "generate-pod")
    assert process.returncode == 0, process.stderr[-3000:]

    status = cluster.wait_status(
        "generationrequests", request, lambda s: s.get("phase") == "Succeeded", timeout=30
    )["status"]
    assert status["outputUri"].startswith("file://") and status["seed"] == 7
    audio, rate = sf.read(status["outputUri"].removeprefix("file://"))
    assert rate == 32_000 and len(audio) == 2 * 32_000

    # Serve the trained model: the kubelet runs the operator's generator Deployment as it was built.
    cluster.patch(
        "trainedmodels", model_name, {"spec": {"serving": {"enabled": True, "resources": {"gpu": 0}}}}
    )
    request_body = {"prompt": "calm piano", "duration_seconds": 0.5, "random_seed": 3}
    with serve_deployment(cluster, f"{model_name}-generator", tmp_path / "server-pod") as served:
        answer = served.post("/v1/generate", json=request_body, timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Model-Id"] == model_name
    served_audio, rate = sf.read(io.BytesIO(answer.content), dtype="float32")
    assert rate == 32_000 and len(served_audio) == 16_000
    base = generate_base_model_audio(request_body, tmp_path / "base")
    assert not np.allclose(served_audio, base)  # the trained adapter, not the base model, same seed
