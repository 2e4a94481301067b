"""The Kubernetes backend against the test API emulator (tests/kube_emulator) with the operator running."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.studio.app import create_app
from tests.controllers.conftest import (  # noqa: F401  (pytest fixtures, imported to be used here)
    _delete_test_resources,
    cluster,
)
from tests.controllers.helpers import job_succeeded, publish, trained_model, write_progress
from tests.studio.conftest import studio_settings, upload, wait_for

pytestmark = pytest.mark.emulator
CALLER_TOKEN = "alice-kubernetes-token"


@pytest.fixture
def kube_studio(cluster, tmp_path) -> Iterator[TestClient]:  # noqa: F811
    settings = studio_settings(
        tmp_path / "studio",
        backend="kubernetes",
        kube_api_url=cluster.url,
        artifacts=f"file://{cluster.artifacts}",
    )
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {CALLER_TOKEN}"
        yield client


def test_training_is_a_trainingjob_watched_to_the_end(kube_studio, cluster, demo_tracks, tmp_path):  # noqa: F811
    assert kube_studio.post("/api/v1/datasets", json={"name": "kube-demo"}).status_code == 201
    assert upload(kube_studio, "kube-demo", demo_tracks[0], prompt="synth pop").status_code == 201
    assert (cluster.artifacts / "datasets/kube-demo" / demo_tracks[0].name).is_file()

    body = {"dataset": "kube-demo", "base_model": "tiny-random", "training": {"epochs": 4, "batch_size": 2}}
    created = kube_studio.post("/api/v1/trainings", json=body)
    assert created.status_code == 201, created.text
    name = created.json()["id"]
    resource = cluster.get("trainingjobs", name)
    assert resource["spec"]["datasetUri"] == f"file://{cluster.artifacts}/datasets/kube-demo"
    assert resource["spec"]["training"]["epochs"] == 4 and resource["spec"]["baseModel"] == "tiny-random"
    assert resource["metadata"]["labels"]["musicgen.io/studio-dataset"] == "kube-demo"
    studio_calls = [r for r in cluster.emulator.recorded if r.user_agent == "musicgen-studio"]
    assert ("create", "trainingjobs") in {(r.verb, r.resource) for r in studio_calls}

    # The operator made the Job; play the Job controller and the trainer, watch over SSE.
    run_uri = cluster.wait_status("trainingjobs", name, lambda s: s.get("jobName"))["status"]["runUri"]
    cluster.patch(
        "jobs", f"{name}-train", {"status": {"active": 1, "startTime": "2026-01-01T00:00:00Z"}}, "status"
    )

    def run_the_job() -> None:
        write_progress(
            cluster.artifacts,
            run_uri,
            TrainingProgress,
            phase="training",
            epoch=2.0,
            total_epochs=4,
            step=4,
            total_steps=8,
            loss=2.5,
            eta_seconds=30,
        )
        cluster.wait_status("trainingjobs", name, lambda s: s.get("currentStep") == 4)
        publish(cluster.artifacts, tmp_path, name, ["adapter"], loss=2.25)
        cluster.patch("jobs", f"{name}-train", job_succeeded(), sub="status")

    runner = threading.Thread(target=run_the_job)
    events = []
    with kube_studio.stream("GET", f"/api/v1/trainings/{name}/events") as stream:
        runner.start()
        for line in stream.iter_lines():
            if line.startswith("data: ") and line != "data: {}":
                events.append(json.loads(line[6:]))
    runner.join(30)
    assert events[-1]["state"] == "completed"
    seen = [e for e in events if e["progress"] and e["progress"]["step"] == 4]
    assert seen and seen[0]["progress"]["loss"] == 2.5 and seen[0]["progress"]["eta_seconds"] == 30
    assert {"step": 4, "epoch": 2.0, "loss": 2.5, "val_loss": None} in events[-1]["points"]

    models = wait_for(lambda: kube_studio.get("/api/v1/models").json()["data"], 15, "the TrainedModel")
    assert models[0]["model_id"] == name and models[0]["training"]["final_loss"] == 2.25
    listed = kube_studio.get("/api/v1/trainings").json()["data"]
    assert [t["state"] for t in listed if t["id"] == name] == ["completed"]


def test_cancel_deletes_the_trainingjob_and_generation_is_a_request(kube_studio, cluster, demo_tracks):  # noqa: F811
    kube_studio.post("/api/v1/datasets", json={"name": "kube-cancel"})
    upload(kube_studio, "kube-cancel", demo_tracks[1])
    name = kube_studio.post("/api/v1/trainings", json={"dataset": "kube-cancel"}).json()["id"]
    cancelled = kube_studio.post(f"/api/v1/trainings/{name}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    wait_for(lambda: cluster.get("trainingjobs", name) is None, 10, "the TrainingJob to go")

    request = {"model_id": "some-model", "parameters": {"prompt": "lofi", "duration_seconds": 4}}
    missing = kube_studio.post("/api/v1/generations", json=request)
    assert missing.status_code == 404 and "no TrainedModel 'some-model'" in missing.json()["detail"]
    cluster.create("trainedmodels", trained_model("some-model"))  # not served: GenerationRequests
    answer = kube_studio.post("/api/v1/generations", json=request)
    assert answer.status_code == 202, answer.text
    resource = cluster.get("generationrequests", answer.json()["id"])
    assert resource["spec"]["trainedModelId"] == "some-model" and resource["spec"]["durationSeconds"] == 4
    assert resource["spec"]["randomSeed"] == answer.json()["parameters"]["random_seed"]
    ab = kube_studio.post("/api/v1/generations", json=request | {"compare_with_base": True}).json()
    fine_tuned, base = (
        cluster.get("generationrequests", ab["id"]),
        cluster.get("generationrequests", ab["compare_id"]),
    )
    assert fine_tuned["metadata"]["annotations"]["musicgen.io/studio-compare"] == base["metadata"]["name"]
    assert base["spec"]["useBaseModel"] is True and not fine_tuned["spec"]["useBaseModel"]
    assert base["spec"]["randomSeed"] == fine_tuned["spec"]["randomSeed"] == ab["parameters"]["random_seed"]
    twin = kube_studio.get(f"/api/v1/generations/{ab['compare_id']}").json()
    assert (
        twin["is_base"] is True and twin["model"] == "tiny-random" and twin["parameters"] == ab["parameters"]
    )


def test_checkpoint_samples_come_from_the_runs_progress(kube_studio, cluster, demo_tracks, tmp_path):  # noqa: F811
    """The operator's status has no samples: the studio reads them from the run's progress.json."""
    import numpy as np
    import soundfile as sf

    kube_studio.post("/api/v1/datasets", json={"name": "kube-samples"})
    upload(kube_studio, "kube-samples", demo_tracks[0])
    body = {"dataset": "kube-samples", "training": {"sample_prompts": ["dusty drums"], "sample_seconds": 1}}
    name = kube_studio.post("/api/v1/trainings", json=body).json()["id"]
    assert cluster.get("trainingjobs", name)["spec"]["training"]["samplePrompts"] == ["dusty drums"]
    run_uri = cluster.wait_status("trainingjobs", name, lambda s: s.get("runUri"))["status"]["runUri"]
    run = cluster.artifacts / run_uri.removeprefix(f"file://{cluster.artifacts}/")
    clip = run / "checkpoints/checkpoint-2/samples/0.wav"
    clip.parent.mkdir(parents=True)
    sf.write(clip, np.zeros(32_000, dtype=np.float32), 32_000)
    sample = {"step": 2, "index": 0, "prompt": "dusty drums", "path": "checkpoint-2/samples/0.wav"}
    sample |= {"seconds": 1.0, "sample_rate": 32_000, "seed": 0}
    write_progress(
        cluster.artifacts,
        run_uri,
        TrainingProgress,
        phase="saving",
        epoch=1.0,
        total_epochs=10,
        step=2,
        total_steps=20,
        samples=[sample],
    )
    cluster.wait_status("trainingjobs", name, lambda s: s.get("currentStep") == 2)
    training = kube_studio.get(f"/api/v1/trainings/{name}").json()
    assert training["progress"]["samples"] == [sample]
    audio = kube_studio.get(f"/api/v1/trainings/{name}/samples/2/0")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content == clip.read_bytes()
    assert kube_studio.get(f"/api/v1/trainings/{name}/samples/4/0").status_code == 404


class _DenyingAPI(BaseHTTPRequestHandler):
    """A Kubernetes API server whose RBAC denies everything, remembering the tokens it saw."""

    tokens: list[str] = []

    def _deny(self) -> None:
        self.tokens.append(self.headers.get("Authorization", ""))
        body = json.dumps(
            {
                "kind": "Status",
                "status": "Failure",
                "reason": "Forbidden",
                "code": 403,
                "message": 'trainingjobs.musicgen.io is forbidden: User "bob" cannot list',
            }
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _deny

    def log_message(self, *args: object) -> None:
        """Quiet."""


def test_a_token_without_rbac_rights_gets_a_clear_403_and_nothing_is_written(tmp_path, demo_tracks):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DenyingAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    artifacts = tmp_path / "artifacts"
    settings = studio_settings(
        tmp_path / "studio",
        backend="kubernetes",
        kube_api_url=f"http://127.0.0.1:{server.server_port}",
        artifacts=f"file://{artifacts}",
    )
    try:
        with TestClient(create_app(settings)) as client:
            page = client.get("/")  # the web app asks for the user's own token
            assert page.status_code == 200
            assert '<meta name="studio-backend" content="kubernetes">' in page.text
            assert '<meta name="studio-token" content="">' in page.text
            assert client.get("/api/v1/trainings").status_code == 401  # no token: nothing to forward
            client.headers["Authorization"] = "Bearer bob-token"
            answer = client.post("/api/v1/datasets", json={"name": "sneaky"})
            assert answer.status_code == 403
            denied = (
                "error: Kubernetes RBAC does not let your token list trainingjobs.musicgen.io in namespace"
            )
            assert answer.json()["detail"].startswith(f"{denied} default")
            assert client.get("/api/v1/models").status_code == 403
            presign = client.post("/api/v1/datasets/sneaky/uploads", json={"filename": "a.wav", "size": 9})
            assert presign.status_code == 403  # RBAC is asked before any URL is signed
    finally:
        server.shutdown()
    assert _DenyingAPI.tokens and set(_DenyingAPI.tokens) == {"Bearer bob-token"}
    assert not artifacts.exists()


def test_an_uploaded_clip_reaches_the_generation_requests_as_the_studios_object(kube_studio, cluster):  # noqa: F811
    """Not served: both GenerationRequests (A and B) name the object the studio wrote."""
    import io

    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(4410, dtype=np.float32) + 0.1, 44_100, format="WAV")
    cluster.create("trainedmodels", trained_model("clip-model"))
    request = {"model_id": "clip-model", "parameters": {"prompt": "lofi"}, "compare_with_base": True}
    parts = {
        "request": (None, json.dumps(request), "application/json"),
        "audio_prompt": ("my intro.wav", buffer.getvalue(), "audio/wav"),
    }
    answer = kube_studio.post("/api/v1/generations/upload", files=parts)
    assert answer.status_code == 202, answer.text
    uri = answer.json()["parameters"]["audio_prompt_uri"]
    assert uri.startswith(f"file://{cluster.artifacts}/generation-inputs/default/")
    assert (
        cluster.artifacts / uri.removeprefix(f"file://{cluster.artifacts}/")
    ).read_bytes() == buffer.getvalue()
    fine_tuned = cluster.get("generationrequests", answer.json()["id"])
    base = cluster.get("generationrequests", answer.json()["compare_id"])
    assert fine_tuned["spec"]["audioPromptUri"] == base["spec"]["audioPromptUri"] == uri
    assert "melodyUri" not in fine_tuned["spec"]
