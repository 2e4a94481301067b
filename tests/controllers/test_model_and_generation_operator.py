"""TrainedModel and GenerationRequest end to end against the emulator."""

from __future__ import annotations

import pytest

from musicgen_ops.contracts.environment import GenerateJobEnvironment, ServeEnvironment
from musicgen_ops.contracts.generation import GenerationJobResult, Timings
from tests.controllers.conftest import unique
from tests.controllers.helpers import generation_request, job_failed, job_succeeded, publish, trained_model

pytestmark = pytest.mark.emulator


def _conditions(obj):
    return {c["type"]: c for c in obj["status"]["conditions"]}


def test_missing_artifacts_invalid_then_ready_when_uploaded(cluster, tmp_path):
    name = unique("tm")
    cluster.create("trainedmodels", trained_model(name, formats=["adapter"]))
    model = cluster.wait_status("trainedmodels", name, lambda s: s.get("phase") == "Invalid")
    ready = _conditions(model)["Ready"]
    assert ready["status"] == "False" and "manifest.json" in ready["message"]
    # The recheck daemon finds the upload once the manifest (written last) is there.
    publish(cluster.artifacts, tmp_path, name, ["adapter", "merged"], loss=0.75)
    model = cluster.wait_status("trainedmodels", name, lambda s: s.get("phase") == "Ready")
    assert model["status"]["formatsText"] == "adapter,merged"
    assert model["status"]["finalLoss"] == pytest.approx(0.75)
    assert model["status"]["missing"] == []


def test_missing_format_is_named(cluster, tmp_path):
    name = unique("tm")
    publish(cluster.artifacts, tmp_path, name, ["adapter"])
    cluster.create("trainedmodels", trained_model(name, formats=["adapter", "onnx"]))
    model = cluster.wait_status("trainedmodels", name, lambda s: s.get("phase") == "Invalid")
    assert model["status"]["missing"] == ["format onnx"]


def test_serving_creates_deployment_and_service_with_probes(cluster, tmp_path):
    name = unique("tm")
    publish(cluster.artifacts, tmp_path, name, ["merged"])
    cluster.create("trainedmodels", trained_model(name, serving={"enabled": True, "replicas": 2}))
    model = cluster.wait_status("trainedmodels", name, lambda s: s.get("phase") == "Ready")
    assert model["status"]["servingUrl"] == f"http://{name}-generator.default.svc.cluster.local:8000"
    deployment = cluster.get("deployments", f"{name}-generator")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["musicgen-ops", "serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # What the server really reads from that env: preload and serve this model, CPU pods on CPU.
    settings = ServeEnvironment.from_environ({e["name"]: e["value"] for e in container["env"]})
    assert settings.default_model == name and settings.preload == [name]
    assert settings.models_uri == f"file://{cluster.artifacts}" and settings.device == "cuda"
    service = cluster.get("services", f"{name}-generator")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # Scaling patches the Deployment in place.
    cluster.patch("trainedmodels", name, {"spec": {"serving": {"replicas": 3}}})
    cluster.wait_for(
        "scaled", lambda: cluster.get("deployments", f"{name}-generator")["spec"]["replicas"] == 3
    )
    # Turning serving off removes both.
    cluster.patch("trainedmodels", name, {"spec": {"serving": {"enabled": False}}})
    cluster.wait_for("deployment removed", lambda: cluster.get("deployments", f"{name}-generator") is None)
    assert cluster.get("services", f"{name}-generator") is None


def test_deletion_policy_delete_removes_artifacts(cluster, tmp_path):
    keep, drop = unique("tm"), unique("tm")
    for name, policy in ((keep, "Retain"), (drop, "Delete")):
        publish(cluster.artifacts, tmp_path, name, ["adapter"])
        cluster.create("trainedmodels", trained_model(name, deletionPolicy=policy))
        cluster.wait_status("trainedmodels", name, lambda s: s.get("phase") == "Ready")
        cluster.delete("trainedmodels", name)
    for name in (keep, drop):
        cluster.wait_for(f"{name} gone", lambda n=name: cluster.get("trainedmodels", n) is None)
    assert (cluster.artifacts / "models" / keep / "manifest.json").exists()
    assert not (cluster.artifacts / "models" / drop / "manifest.json").exists()


def test_generation_waits_for_model_then_runs(cluster, tmp_path):
    model, request = unique("tm"), unique("gr")
    cluster.create("trainedmodels", trained_model(model))
    cluster.wait_status("trainedmodels", model, lambda s: s.get("phase") == "Invalid")
    cluster.create("generationrequests", generation_request(request, model, seed=7, outputFormat="flac"))
    waiting = cluster.wait_status(
        "generationrequests", request, lambda s: s.get("phase") == "WaitingForModel"
    )
    assert _conditions(waiting)["ModelReady"]["reason"] == "ModelNotReady"
    assert cluster.get("jobs", f"{request}-generate") is None

    publish(cluster.artifacts, tmp_path, model, ["adapter"])
    running = cluster.wait_status(
        "generationrequests", request, lambda s: s.get("phase") == "Running", timeout=20
    )
    job = cluster.get("jobs", f"{request}-generate")
    container = job["spec"]["template"]["spec"]["containers"][0]
    settings = GenerateJobEnvironment.from_environ({e["name"]: e["value"] for e in container["env"]})
    assert container["command"] == ["generate-job"]
    assert settings.parameters.prompt == "calm piano" and settings.parameters.random_seed == 7
    assert settings.model_uri == f"file://{cluster.artifacts}/models/{model}"
    output = running["status"]["outputUri"]
    assert output.endswith(f"generations/default/{request}/output.flac")

    result_path = cluster.artifacts / "generations" / "default" / request / "output.flac.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result = GenerationJobResult(
        output_uri=output,
        model_id=model,
        seed=7,
        duration_seconds=5.0,
        sample_rate=32000,
        num_samples=160_000,
        conditioning_text="calm piano",
        audio_sha256="0" * 64,
        real_time_factor=0.6,
        timings=Timings(load_seconds=1.5, generate_seconds=3.0, total_seconds=4.5),
    )
    result_path.write_text(result.model_dump_json())  # as generate-job writes it
    cluster.patch("jobs", f"{request}-generate", job_succeeded(), sub="status")
    done = cluster.wait_status("generationrequests", request, lambda s: s.get("phase") == "Succeeded")
    assert done["status"]["seed"] == 7
    assert done["status"]["audioSeconds"] == 5.0
    assert done["status"]["timings"] == {"loadSeconds": 1.5, "generateSeconds": 3.0, "totalSeconds": 4.5}


def test_generation_with_unknown_model_fails(cluster):
    request = unique("gr")
    cluster.create("generationrequests", generation_request(request, "no-such-model"))
    failed = cluster.wait_status("generationrequests", request, lambda s: s.get("phase") == "Failed")
    assert failed["status"]["failureReason"] == "ModelNotFound"
    assert "no-such-model" in _conditions(failed)["Failed"]["message"]
    assert cluster.get("jobs", f"{request}-generate") is None


def test_generation_job_failure(cluster, tmp_path):
    model, request = unique("tm"), unique("gr")
    publish(cluster.artifacts, tmp_path, model, ["adapter"])
    cluster.create("trainedmodels", trained_model(model))
    cluster.wait_status("trainedmodels", model, lambda s: s.get("phase") == "Ready")
    # Out of the CRD's bounds: the API server refuses it before the operator sees it.
    response = cluster.http.post(
        cluster.path("generationrequests"), json=generation_request(request, model, durationSeconds=500)
    )
    assert response.status_code == 422, response.text
    assert "spec.durationSeconds" in response.json()["message"]

    request = unique("gr")
    cluster.create("generationrequests", generation_request(request, model))
    cluster.wait_status("generationrequests", request, lambda s: s.get("phase") == "Running")
    cluster.patch("jobs", f"{request}-generate", job_failed("DeadlineExceeded", "too slow"), sub="status")
    failed = cluster.wait_status("generationrequests", request, lambda s: s.get("phase") == "Failed")
    assert failed["status"]["failureReason"] == "DeadlineExceeded"
