"""Bad input over HTTP: every case gets its status, a short readable ErrorBody and no traceback."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from musicgen_ops.serving.app import create_app

MAX_BODY = 64 * 1024
JSON = {"content-type": "application/json"}


@pytest.fixture
async def app(settings, engine_factory):
    app = create_app(settings, engine_factory=engine_factory)
    yield app
    await app.state.service.close()


@pytest.fixture
async def client(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
        yield client


async def _chunks(data: bytes, size: int = 16 * 1024):
    for start in range(0, len(data), size):
        yield data[start : start + size]


# (case, method, path, request kwargs, status, words the message must contain)
CASES = [
    (
        "malformed JSON",
        "POST",
        "/v1/generate",
        {
            "content": b'{"prompt": "x", "duration_seconds": }',
            "headers": {"content-type": "application/json"},
        },
        422,
        ["invalid JSON at character 36", "Expecting value"],
    ),
    (
        "body over the limit (Content-Length)",
        "POST",
        "/v1/generate",
        {"json": {"prompt": "x" * (MAX_BODY + 10)}},
        413,
        ["over the limit of 65536 bytes", "MUSICGEN_SERVE_MAX_BODY_BYTES"],
    ),
    (
        "body over the limit (chunked)",
        "POST",
        "/v1/generate",
        {"content": _chunks(b'{"prompt": "' + b"x" * (2 * MAX_BODY) + b'"}')},
        413,
        ["over the limit of 65536 bytes"],
    ),
    (
        "prompt too long",
        "POST",
        "/v1/generate",
        {"json": {"prompt": "y" * 20_000}},
        422,
        ["prompt: String should have at most 2000 characters", "chars)"],
    ),
    (
        "thousands of unknown keys",
        "POST",
        "/v1/generate",
        {"json": {"prompt": "x", **{f"k{i}": 1 for i in range(4000)}}},
        422,
        ["4000 invalid parameter(s)", "k0: Extra inputs are not permitted", "... and 3990 more"],
    ),
    (
        "wrong type and bounds",
        "POST",
        "/v1/generate",
        {"json": {"prompt": "x", "duration_seconds": "long", "temperature": 9}},
        422,
        ["duration_seconds: Input should be a valid number", "temperature: Input should be less than"],
    ),
    (
        "body is a list",
        "POST",
        "/v1/generate",
        {"json": ["x"]},
        422,
        ["body: Input should be a valid dictionary"],
    ),
    (
        "unknown trained model",
        "POST",
        "/v1/generate",
        {"json": {"prompt": "x", "duration_seconds": 0.05, "trained_model_id": "no-such-model"}},
        404,
        ["no-such-model"],
    ),
    ("unknown job", "GET", "/v1/jobs/feedbeef", {}, 404, ["job 'feedbeef' not found"]),
    ("unknown job, huge id", "GET", "/v1/jobs/" + "z" * 5000, {}, 404, ["not found"]),
    (
        "bad mode",
        "POST",
        "/v1/generate?mode=later",
        {"json": {"prompt": "x"}},
        422,
        ["mode: Input should be"],
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_bad_request_gets_a_short_clear_answer(app, client, method, path, kwargs, status, words):
    await app.state.service.start()
    response = await client.request(method, path, **kwargs)
    assert response.status_code == status, response.text[:500]
    body = response.json()
    text = json.dumps(body)
    for word in words:
        assert word in text, text[:1000]
    assert len(response.content) < 3000, f"answer of {len(response.content)} bytes echoes the input"
    assert "Traceback" not in text and "/tmp/" not in text


async def test_invalid_requests_are_counted_in_metrics(app, client):
    await app.state.service.start()
    for _ in range(3):
        assert (await client.post("/v1/generate", json={"prompt": ""})).status_code == 422
    metrics = (await client.get("/metrics")).text
    assert 'musicgen_serve_requests_total{outcome="invalid"} 3.0' in metrics


async def test_docs_are_served_without_internet(client):
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    script = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    assert (await client.get("/docs/assets/swagger-ui.css")).status_code == 200


async def test_job_answers_show_no_server_paths(app, client):
    service = app.state.service
    await service.start()
    accepted = await client.post("/v1/generate?mode=async", json={"prompt": "x", "duration_seconds": 0.05})
    assert accepted.status_code == 202
    status_url = accepted.json()["status_url"]
    for _ in range(400):
        job = (await client.get(status_url)).json()
        if job["state"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert job["state"] == "succeeded", job
    assert job["result"]["audio_path"] == f"{job['job_id']}.wav"
    assert str(service.settings.output_dir) not in json.dumps(job)


async def test_draining_server_is_not_ready_and_refuses_new_work(app, client):
    service = app.state.service
    await service.start()
    assert (await client.get("/readyz")).status_code == 200
    assert await service.drain(grace_seconds=5) is True
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    refused = await client.post("/v1/generate", json={"prompt": "x", "duration_seconds": 0.05})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "ShuttingDown"
    assert (await client.get("/healthz")).status_code == 200  # alive: finishing, not broken
