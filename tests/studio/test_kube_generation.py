"""Generation on Kubernetes through a TrainedModel's serving Deployment (the real generator server, on a
local port the Service URL template points at), with the base model's A/B twin as a GenerationRequest."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
import uvicorn
from fastapi.testclient import TestClient

from musicgen_ops.contracts.environment import GenerateJobEnvironment, ServeEnvironment
from musicgen_ops.serving.app import create_app as create_server
from musicgen_ops.studio.app import create_app
from tests.controllers.conftest import (  # noqa: F401  (pytest fixtures, imported to be used here)
    _delete_test_resources,
    cluster,
    free_port,
    unique,
)
from tests.controllers.helpers import job_succeeded, publish, trained_model
from tests.studio.conftest import studio_settings, wait_for

pytestmark = pytest.mark.emulator


def viewer_token(cluster, name: str, verbs: list[str]) -> str:  # noqa: F811
    """A ServiceAccount token whose Role allows only ``verbs`` on GenerationRequests (and reading models)."""
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    rules = [
        {"apiGroups": ["musicgen.io"], "resources": ["trainedmodels"], "verbs": ["get", "list"]},
        {"apiGroups": ["musicgen.io"], "resources": ["generationrequests"], "verbs": verbs},
    ]
    assert (
        cluster.http.post(f"{rbac}/roles", json={"metadata": {"name": name}, "rules": rules}).status_code
        == 201
    )
    binding = {
        "metadata": {"name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}],
        "roleRef": {"kind": "Role", "name": name, "apiGroup": "rbac.authorization.k8s.io"},
    }
    assert cluster.http.post(f"{rbac}/rolebindings", json=binding).status_code == 201
    return cluster.emulator.authorizer.issue("default", name)


class GeneratorServer:
    """``musicgen-ops serve``'s app under uvicorn in a thread; remembers which models it loaded."""

    def __init__(self, settings: ServeEnvironment, engine) -> None:
        self.loaded: list[str] = []

        def factory(reference: str):
            self.loaded.append(reference)
            return engine

        self.port = free_port()
        # log_config=None: uvicorn's dictConfig would close the handlers pytest and kopf log through.
        app = create_server(settings, engine_factory=factory)
        config = uvicorn.Config(app, port=self.port, log_config=None, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> GeneratorServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def served_model(cluster, tmp_path, tiny_engine) -> Iterator[tuple[str, GeneratorServer]]:  # noqa: F811
    """A Ready TrainedModel with serving on and one ready generator pod, played by a local server."""
    name = unique("served")
    publish(cluster.artifacts, tmp_path, name, ["adapter"])
    cluster.create("trainedmodels", trained_model(name, serving={"enabled": True}))
    cluster.wait_status("trainedmodels", name, lambda s: s.get("phase") == "Ready")
    deployment = f"{name}-generator"
    cluster.patch("deployments", deployment, {"status": {"readyReplicas": 1, "replicas": 1}}, sub="status")
    cluster.wait_status("trainedmodels", name, lambda s: s.get("readyReplicas") == 1)
    settings = ServeEnvironment(
        default_model=name,
        models_uri=f"file://{cluster.artifacts}",
        models_root=tmp_path / "no-local-models",
        cache_dir=tmp_path / "server-cache",
        output_dir=tmp_path / "server-out",
        max_duration_seconds=1.0,
        warmup=False,
        preload=[],
    )
    with GeneratorServer(settings, tiny_engine) as server:
        yield name, server


@pytest.fixture
def kube_studio(cluster, served_model, tmp_path) -> Iterator[TestClient]:  # noqa: F811
    settings = studio_settings(
        tmp_path / "studio",
        backend="kubernetes",
        kube_api_url=cluster.url,
        artifacts=f"file://{cluster.artifacts}",
        serving_url_template=f"http://127.0.0.1:{served_model[1].port}",
        serving_timeout_seconds=60,
    )
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = "Bearer alice-kubernetes-token"
        yield client


def finished(client: TestClient, generation_id: str) -> dict:
    def check() -> dict | None:
        generation = client.get(f"/api/v1/generations/{generation_id}").json()
        return generation if generation["state"] in ("completed", "failed") else None

    return wait_for(check, 60, f"generation {generation_id}")  # type: ignore[return-value]


def test_a_served_model_generates_through_its_deployment_and_ab_adds_a_base_request(
    kube_studio,
    cluster,  # noqa: F811
    served_model,
):
    name, server = served_model
    body = {
        "model_id": name,
        "parameters": {"prompt": "warm lofi", "duration_seconds": 0.2, "random_seed": 11},
        "compare_with_base": True,
    }
    created = kube_studio.post("/api/v1/generations", json=body)
    assert created.status_code == 202, created.text
    generation = created.json()
    assert generation["id"].startswith("serve-") and generation["state"] == "running"
    done = finished(kube_studio, generation["id"])
    assert done["state"] == "completed", done["error"]
    assert done["model"] == name and done["parameters"]["random_seed"] == 11
    audio = kube_studio.get(done["audio_url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    samples, rate = sf.read(io.BytesIO(audio.content))
    assert rate == 32_000 and len(samples) == 6400
    # The server resolved the model the studio named, from the artifact store (no GenerationRequest).
    assert server.loaded and f"/server-cache/{name}/" in server.loaded[0]
    listed = {g["id"] for g in kube_studio.get("/api/v1/generations").json()["data"]}
    assert generation["id"] in listed and not any(
        r["spec"]["trainedModelId"] == name and not r["spec"]["useBaseModel"]
        for r in cluster.list("generationrequests")
    )

    # B: a GenerationRequest for the base model alone, same prompt and seed, played to the end here.
    base_name = generation["compare_id"]
    assert base_name in listed
    base = cluster.get("generationrequests", base_name)
    assert base["spec"]["useBaseModel"] is True and base["spec"]["trainedModelId"] == name
    assert (base["spec"]["prompt"], base["spec"]["randomSeed"]) == ("warm lofi", 11)
    running = cluster.wait_status("generationrequests", base_name, lambda s: s.get("phase") == "Running")
    job = cluster.get("jobs", f"{base_name}-generate")
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert GenerateJobEnvironment.from_environ(env).use_base_model is True
    output = cluster.artifacts / running["status"]["outputUri"].removeprefix(f"file://{cluster.artifacts}/")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(audio.content)  # what the generate-job would upload
    cluster.patch("jobs", f"{base_name}-generate", job_succeeded(), sub="status")
    twin = finished(kube_studio, base_name)
    assert twin["state"] == "completed" and twin["is_base"] is True and twin["model"] == "tiny-random"
    assert kube_studio.get(twin["audio_url"]).content == audio.content

    # Deleting the served generation deletes its base twin's GenerationRequest and audio too.
    assert kube_studio.delete(f"/api/v1/generations/{generation['id']}").status_code == 200
    cluster.wait_for("the twin to go", lambda: not cluster.get("generationrequests", base_name))
    assert not output.exists() and kube_studio.get(f"/api/v1/generations/{base_name}").status_code == 404


def test_a_refusal_of_the_generator_fails_the_generation_with_its_reason(kube_studio, served_model):
    body = {"model_id": served_model[0], "parameters": {"prompt": "too long", "duration_seconds": 5}}
    generation = kube_studio.post("/api/v1/generations", json=body).json()
    failed = finished(kube_studio, generation["id"])
    assert failed["state"] == "failed"
    assert failed["error"].startswith("error: the generator answered HTTP 422")
    assert "duration_seconds" in failed["error"]
    assert kube_studio.get(f"/api/v1/generations/{generation['id']}/audio").status_code == 409
    assert kube_studio.get("/api/v1/generations/serve-00000000").status_code == 404


def test_an_uploaded_clip_goes_to_the_deployment_as_a_multipart_part(
    kube_studio,
    served_model,
    cluster,  # noqa: F811
    monkeypatch,
):
    """Served: the studio sends the file itself to /v1/generate/upload (the generator reads no studio URI)."""
    import json

    import httpx
    import numpy as np

    from musicgen_ops.studio.kube import served

    calls = []
    real_post = httpx.post
    monkeypatch.setattr(served.httpx, "post", lambda url, **kw: calls.append(url) or real_post(url, **kw))
    clip = io.BytesIO()
    sf.write(clip, np.full(3200, 0.1, dtype=np.float32), 32_000, format="WAV")
    request = {"model_id": served_model[0], "parameters": {"prompt": "lofi", "duration_seconds": 0.2}}
    parts = {
        "request": (None, json.dumps(request), "application/json"),
        "audio_prompt": ("intro.wav", clip.getvalue(), "audio/wav"),
    }
    created = kube_studio.post("/api/v1/generations/upload", files=parts)
    assert created.status_code == 202, created.text
    done = finished(kube_studio, created.json()["id"])
    assert done["state"] == "completed", done["error"]
    assert calls and calls[0].endswith("/v1/generate/upload")
    assert "/generation-inputs/" in done["parameters"]["audio_prompt_uri"]
    samples, _ = sf.read(io.BytesIO(kube_studio.get(done["audio_url"]).content))
    assert len(samples) == 6400

    # Deleting it deletes the studio's record, the audio and the uploaded clip.
    artifacts = kube_studio.app.state.settings.artifacts_uri.removeprefix("file://")
    record = Path(artifacts) / "studio/generations/default" / done["id"]
    clip_folder = Path(done["parameters"]["audio_prompt_uri"].removeprefix("file://")).parent
    assert record.is_dir() and clip_folder.is_dir()
    # A token that may read GenerationRequests but not delete them may not delete a served record either
    # (a SelfSubjectAccessReview asks the API server, as the caller).
    viewer = viewer_token(cluster, "served-viewer", ["get", "list"])
    owner = kube_studio.headers["Authorization"]
    kube_studio.headers["Authorization"] = f"Bearer {viewer}"
    refused = kube_studio.delete(f"/api/v1/generations/{done['id']}")
    assert refused.status_code == 403 and "delete generationrequests" in refused.json()["detail"]
    assert record.is_dir() and clip_folder.is_dir()
    kube_studio.headers["Authorization"] = owner
    assert kube_studio.delete(f"/api/v1/generations/{done['id']}").status_code == 200
    assert not record.exists() and not clip_folder.exists()
    assert kube_studio.get(f"/api/v1/generations/{done['id']}").status_code == 404
