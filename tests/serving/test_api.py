"""The HTTP API through httpx against the ASGI app (no sockets)."""

from __future__ import annotations

import asyncio
import io

import httpx
import numpy as np
import pytest
import soundfile as sf

from musicgen_ops.serving.app import create_app


@pytest.fixture
async def app(settings, engine_factory):
    app = create_app(settings, engine_factory=engine_factory)
    yield app
    await app.state.service.close()


@pytest.fixture
async def client(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=120) as client:
        yield client


async def test_readiness_follows_preloading(app, client):
    service = app.state.service
    service.settings.preload = ["tiny-random"]
    assert (await client.get("/healthz")).status_code == 200
    not_ready = await client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["status"] == "loading"
    await service.start()
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True


async def test_generate_returns_audio_with_metadata(app, client):
    await app.state.service.start()
    body = {
        "prompt": "rock drums",
        "duration_seconds": 0.1,
        "random_seed": 7,
        "style": "rock",
        "target_bpm": 120,
    }
    response = await client.post("/v1/generate", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["x-seed"] == "7" and response.headers["x-model-id"] == "tiny-random"
    audio, rate = sf.read(io.BytesIO(response.content), dtype="float32")
    assert rate == 32_000 and len(audio) == 3200 == int(response.headers["x-num-samples"])
    again = await client.post("/v1/generate", json=body)
    np.testing.assert_array_equal(audio, sf.read(io.BytesIO(again.content), dtype="float32")[0])
    assert not list((app.state.service.settings.output_dir / "sync").glob("*"))  # sync results are not kept


async def test_flac_output(app, client):
    await app.state.service.start()
    response = await client.post(
        "/v1/generate", json={"prompt": "x", "duration_seconds": 0.05, "output_format": "flac"}
    )
    assert response.headers["content-type"] == "audio/flac"
    assert response.content[:4] == b"fLaC"


async def test_invalid_parameters_list_every_field(client):
    response = await client.post(
        "/v1/generate", json={"prompt": "x", "temperature": 2.5, "duration_seconds": 0, "key": "X"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "InvalidParameters"
    assert sorted(f.split(":")[0] for f in body["fields"]) == ["duration_seconds", "key", "temperature"]


async def test_unknown_model_is_404(app, client):
    await app.state.service.start()
    response = await client.post("/v1/generate", json={"prompt": "x", "trained_model_id": "nope"})
    assert response.status_code == 404
    assert response.json()["error"] == "ModelNotFound" and "nope" in response.json()["message"]


async def test_queue_overflow_is_429(app, client):
    service = app.state.service
    await service.start()
    service.settings.max_queue = 1
    first = asyncio.create_task(client.post("/v1/generate", json={"prompt": "x", "duration_seconds": 0.1}))
    for _ in range(200):
        if service.queue_depth:
            break
        await asyncio.sleep(0.01)
    busy = await client.post("/v1/generate", json={"prompt": "y", "duration_seconds": 0.1})
    assert busy.status_code == 429
    assert busy.json()["error"] == "ServiceBusy" and busy.headers["retry-after"] == "1"
    assert (await first).status_code == 200


async def test_long_request_becomes_a_job(app, client):
    service = app.state.service
    await service.start()
    service.settings.sync_max_seconds = 0.1
    accepted = await client.post(
        "/v1/generate", json={"prompt": "x", "duration_seconds": 0.25, "random_seed": 2}
    )
    assert accepted.status_code == 202
    status_url = accepted.json()["status_url"]
    assert accepted.headers["location"] == status_url
    early = await client.get(f"{status_url}/audio")
    assert early.status_code in (200, 409)
    for _ in range(600):
        job = (await client.get(status_url)).json()
        if job["state"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.05)
    assert job["state"] == "succeeded", job
    assert job["result"]["seed"] == 2 and job["result"]["windows"] == 2
    audio = await client.get(job["audio_url"])
    assert audio.status_code == 200 and len(sf.read(io.BytesIO(audio.content))[0]) == 8000
    assert (await client.get("/v1/jobs/unknown")).status_code == 404


async def test_models_metrics_and_openapi(app, client):
    await app.state.service.start()
    await client.post("/v1/generate", json={"prompt": "x", "duration_seconds": 0.05})
    models = (await client.get("/v1/models")).json()
    ids = {m["model_id"]: m["loaded"] for m in models["models"]}
    assert ids == {"tiny-random": True, "my-model": False}
    assert models["cache"]["misses"] == 1
    metrics = (await client.get("/metrics")).text
    for name in (
        'musicgen_serve_requests_total{outcome="ok"} 1.0',
        "musicgen_serve_request_latency_seconds_bucket",
        "musicgen_serve_batch_size_bucket",
        "musicgen_serve_queue_depth 0.0",
        'musicgen_serve_model_cache_events_total{event="miss"} 1.0',
    ):
        assert name in metrics
    schema = (await client.get("/openapi.json")).json()
    assert {"/v1/generate", "/v1/jobs/{job_id}", "/v1/models", "/readyz", "/metrics"} <= set(schema["paths"])
    assert schema["paths"]["/v1/generate"]["post"]["operationId"] == "generate-generate"


async def test_failed_preload_is_reported_not_ready(app, client):
    service = app.state.service
    service.settings.preload = ["missing-model"]
    with pytest.raises(Exception, match="missing-model"):
        await service.start()
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "failed" and "ModelNotFoundError" in response.json()["detail"]
