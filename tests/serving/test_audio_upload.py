"""POST /v1/generate/upload: a JSON ``parameters`` part plus audio file parts, each limited as it streams."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import httpx
import numpy as np
import pytest
import soundfile as sf

from musicgen_ops.pipeline.generation.prompt_audio import decode_audio_prompt_bytes
from musicgen_ops.serving.app import create_app

BODY = {"prompt": "jazz", "duration_seconds": 0.4, "random_seed": 2}


def clip_bytes(seconds=0.1, rate=192_000) -> bytes:
    """A float WAV at a high rate: larger than the 64 KiB JSON body limit for a 0.1 s clip."""
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([tone, tone], axis=1), rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


@pytest.fixture
async def client(settings, engine_factory):
    app = create_app(settings, engine_factory=engine_factory)
    await app.state.service.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=120) as http:
        yield http
    await app.state.service.close()


def upload(http, parameters, files=None, **kwargs):
    """Always multipart (httpx sends form data without files url-encoded): parameters as a JSON part."""
    text = parameters if isinstance(parameters, str) else json.dumps(parameters)
    parts = {"parameters": (None, text, "application/json"), **(files or {})}
    return http.post("/v1/generate/upload", files=parts, **kwargs)


async def test_uploaded_clip_is_continued(client, monkeypatch):
    """The uploaded clip is what the track continues: the same audio as the inline JSON request."""
    import musicgen_ops.serving.service as service_module

    clip = clip_bytes()
    assert len(clip) > 64 * 1024  # over the JSON body limit, under the upload limit
    prompts = []
    real_prepare = service_module.prepare

    def spy(params, sample_rate, **kwargs):
        prompts.append(kwargs.get("prompt_audio"))
        return real_prepare(params, sample_rate, **kwargs)

    monkeypatch.setattr(service_module, "prepare", spy)
    response = await upload(client, BODY, {"audio_prompt": ("intro.wav", clip, "audio/wav")})
    assert response.status_code == 200, response.text
    audio, rate = sf.read(io.BytesIO(response.content), dtype="float32")
    assert (rate, len(audio)) == (32_000, 12_800)
    np.testing.assert_array_equal(prompts[0], decode_audio_prompt_bytes(clip, 32_000))

    small = clip_bytes(rate=32_000)  # the same request inline in JSON gives the same track
    inline = {**BODY, "audio_prompt_base64": base64.b64encode(small).decode()}
    by_json = await client.post("/v1/generate", json=inline)
    by_upload = await upload(client, BODY, {"audio_prompt": ("intro.wav", small, "audio/wav")})
    assert by_json.status_code == by_upload.status_code == 200
    assert by_json.content == by_upload.content
    plain = await client.post("/v1/generate", json=BODY)
    assert plain.content != by_upload.content


async def test_upload_as_an_asynchronous_job(client):
    response = await upload(client, BODY, {"audio_prompt": ("intro.wav", clip_bytes(), "audio/wav")})
    assert response.status_code == 200
    job = await upload(
        client, BODY, {"audio_prompt": ("intro.wav", clip_bytes(), "audio/wav")}, params={"mode": "async"}
    )
    assert job.status_code == 202, job.text
    for _ in range(600):
        status = (await client.get(job.json()["status_url"])).json()
        if status["state"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.05)
    assert status["state"] == "succeeded", status
    audio = await client.get(status["audio_url"])
    assert audio.content == response.content  # same seed, same clip: the same track


async def test_a_part_over_its_limit_is_413_naming_it(settings, engine_factory):
    settings.max_audio_upload_bytes = 4096
    app = create_app(settings, engine_factory=engine_factory)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await upload(http, BODY, {"audio_prompt": ("intro.wav", clip_bytes(), "audio/wav")})
        assert response.status_code == 413, response.text
        body = response.json()
        assert body["error"] == "PayloadTooLarge" and body["message"].startswith("audio_prompt: ")
        assert "MUSICGEN_SERVE_MAX_AUDIO_UPLOAD_BYTES" in body["message"]
        big = json.dumps({**BODY, "prompt": "x" * 2000, "style": "y" * 70_000})
        response = await upload(http, big)
        assert response.status_code == 413 and "parameters" in response.json()["message"]


@pytest.mark.parametrize(
    ("parameters", "files", "expected"),
    [
        (BODY, {"audio_prompt": ("a.wav", b"not audio at all", "audio/wav")}, "audio_prompt: not decodable"),
        (BODY, {"melody": ("m.wav", b"", "audio/wav")}, "melody: the file is empty"),
        (BODY, {"sample": ("s.wav", b"RIFF", "audio/wav")}, "sample: unknown part"),
        ("{not json", {}, "parameters."),
        ({**BODY, "duration_seconds": -1}, {}, "parameters.duration_seconds"),
        (
            {**BODY, "audio_prompt_base64": base64.b64encode(clip_bytes(rate=32_000)).decode()},
            {"audio_prompt": ("a.wav", clip_bytes(rate=32_000), "audio/wav")},
            "audio_prompt: also given as parameters.audio_prompt_base64",
        ),
    ],
    ids=["not-audio", "empty", "unknown-part", "bad-json", "bad-field", "twice"],
)
async def test_bad_uploads_are_422_naming_the_part(client, parameters, files, expected):
    response = await upload(client, parameters, files)
    assert response.status_code == 422, response.text
    assert expected in response.json()["message"], response.text


async def test_upload_needs_multipart_and_parameters(client):
    response = await client.post("/v1/generate/upload", json=BODY)
    assert response.status_code == 422 and "multipart/form-data" in response.text
    response = await client.post("/v1/generate/upload", files={"audio_prompt": ("a.wav", clip_bytes())})
    assert response.status_code == 422 and "parameters: missing" in response.text
    garbled = await client.post(
        "/v1/generate/upload",
        content=b"garbage",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert garbled.status_code == 422 and "not a well-formed multipart body" in garbled.text


async def test_openapi_shows_the_multipart_route(client):
    schema = (await client.get("/openapi.json")).json()
    body = schema["paths"]["/v1/generate/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert set(body["schema"]["properties"]) == {"parameters", "audio_prompt", "melody"}


async def test_uploaded_melody_on_melody_and_plain_models(settings, engine_factory):
    from musicgen_ops.pipeline.inference.loader import open_engine

    melody_engine = open_engine("tiny-random-melody", "auto", "cpu")

    def factory(reference):
        return melody_engine if reference == "tiny-random-melody" else engine_factory(reference)

    app = create_app(settings, engine_factory=factory)
    await app.state.service.start()
    transport = httpx.ASGITransport(app=app)
    body = {
        "trained_model_id": "tiny-random-melody",
        "prompt": "folk",
        "duration_seconds": 0.1,
        "random_seed": 2,
    }
    hum = clip_bytes(seconds=1.0, rate=32_000)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=120) as http:
            followed = await upload(http, body, {"melody": ("hum.wav", hum, "audio/wav")})
            plain = await upload(http, body)
            assert followed.status_code == plain.status_code == 200, followed.text
            assert followed.content != plain.content
            refused = await upload(http, {**body, "trained_model_id": None}, {"melody": ("hum.wav", hum)})
            assert refused.status_code == 422 and "melody" in refused.json()["message"], refused.text
    finally:
        await app.state.service.close()
