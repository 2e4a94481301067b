"""Uploaded generation inputs (a clip to continue, a melody to follow) on the studio's local backend."""

from __future__ import annotations

import io
import json

import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient

from musicgen_ops.studio.app import create_app
from tests.studio.conftest import TOKEN, studio_settings, wait_for


def clip_bytes(seconds: float = 0.3, rate: int = 44_100) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def post(client, request: dict, **files):
    parts = {"request": (None, json.dumps(request), "application/json")}
    parts |= {name: (f"{name}.wav", data, "audio/wav") for name, data in files.items()}
    return client.post("/api/v1/generations/upload", files=parts)


def finished(client, generation_id):
    body = client.get(f"/api/v1/generations/{generation_id}").json()
    return body if body["state"] in ("completed", "failed") else None


def test_uploaded_clip_is_stored_by_the_studio_and_continued(studio):
    root = studio.app.state.settings.root
    request = {"base_model": "tiny-random", "parameters": {"prompt": "rock", "duration_seconds": 0.6}}
    request["parameters"]["random_seed"] = 3
    answer = post(studio, request, audio_prompt=clip_bytes())
    assert answer.status_code == 202, answer.text
    uri = answer.json()["parameters"]["audio_prompt_uri"]
    assert uri.startswith(f"file://{root.resolve()}/generation-inputs/") and uri.endswith("/audio_prompt.wav")
    plain = studio.post("/api/v1/generations", json=request)
    with_clip = wait_for(lambda: finished(studio, answer.json()["id"]), 120, "the generation with a clip")
    without = wait_for(lambda: finished(studio, plain.json()["id"]), 120, "the plain generation")
    assert with_clip["state"] == without["state"] == "completed", (with_clip["error"], without["error"])
    assert with_clip["result"]["parameters"]["audio_prompt_uri"] == uri
    audio = sf.read(io.BytesIO(studio.get(with_clip["audio_url"]).content))[0]
    other = sf.read(io.BytesIO(studio.get(without["audio_url"]).content))[0]
    assert len(audio) == len(other) == 19_200 and not np.array_equal(audio, other)  # same seed


def test_bad_inputs_are_refused_and_nothing_is_stored(studio):
    root = studio.app.state.settings.root
    request = {"base_model": "tiny-random", "parameters": {"prompt": "rock", "duration_seconds": 0.6}}
    not_audio = post(studio, request, audio_prompt=b"no audio here")
    assert not_audio.status_code == 400 and "audio_prompt" in not_audio.json()["detail"], not_audio.text
    unknown = post(studio, request, sample=clip_bytes())
    assert unknown.status_code == 400 and "'sample': unknown file part" in unknown.json()["detail"]
    caller_uri = {**request, "parameters": {**request["parameters"], "audio_prompt_uri": "file:///etc/hosts"}}
    refused = post(studio, caller_uri, audio_prompt=clip_bytes())
    assert refused.status_code == 400 and "audio_prompt_uri is not accepted" in refused.text, refused.text
    assert studio.post("/api/v1/generations", json=caller_uri).status_code == 422  # the JSON edge, as before
    garbled = studio.post(
        "/api/v1/generations/upload",
        content=b"garbage",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert garbled.status_code == 400 and "not a well-formed multipart body" in garbled.text
    assert not (root / "generation-inputs").exists()


def test_an_input_over_the_limit_is_413(tmp_path):
    with TestClient(create_app(studio_settings(tmp_path / "studio", max_input_bytes=4096))) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        request = {"base_model": "tiny-random", "parameters": {"prompt": "rock"}}
        answer = post(client, request, melody=clip_bytes())
        assert answer.status_code == 413 and "'melody'" in answer.json()["detail"], answer.text


def test_uploaded_melody_on_a_melody_model(studio):
    request = {"base_model": "tiny-random-melody", "parameters": {"prompt": "folk", "duration_seconds": 0.3}}
    answer = post(studio, request, melody=clip_bytes(seconds=1.0))
    assert answer.status_code == 202, answer.text
    assert "/generation-inputs/" in answer.json()["parameters"]["melody_uri"]
    done = wait_for(lambda: finished(studio, answer.json()["id"]), 120, "the melody generation")
    assert done["state"] == "completed", done["error"]


def test_openapi_shows_the_multipart_body(studio):
    schema = TestClient(studio.app).get("/api/v1/openapi.json").json()
    body = schema["paths"]["/api/v1/generations/upload"]["post"]["requestBody"]["content"]
    assert set(body["multipart/form-data"]["schema"]["properties"]) == {"request", "audio_prompt", "melody"}
