"""The studio REST API on the local backend: real train-job subprocesses, generation on the tiny model."""

from __future__ import annotations

import io

import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.contracts.training import TrainingRecipe
from musicgen_ops.studio.app import create_app
from tests.studio.conftest import TINY_TRAINING, TOKEN, studio_settings, upload, wait_for


def test_every_api_call_needs_the_token(studio, tmp_path):
    anonymous = TestClient(studio.app)
    answer = anonymous.post("/api/v1/datasets", json={"name": "sneaky"})
    assert answer.status_code == 401 and answer.json()["detail"].startswith("error: missing or wrong token")
    assert anonymous.get("/api/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert studio.get("/api/v1/datasets").json()["count"] == 0  # nothing was written


def test_the_cookie_opens_the_page_but_never_the_api(studio):
    browser = TestClient(studio.app)
    assert browser.get("/", follow_redirects=False).status_code == 401
    opened = browser.get(f"/?token={TOKEN}", follow_redirects=False)
    assert opened.status_code == 303 and "samesite=strict" in opened.headers["set-cookie"].lower()
    page = browser.get("/")
    assert (
        page.status_code == 200
        and TOKEN in page.text
        and "script-src 'self'" in page.headers["content-security-policy"]
    )
    assert browser.get("/api/v1/datasets").status_code == 403  # the cookie serves the page only
    forged = browser.post("/api/v1/datasets", json={"name": "csrf"})  # a cross-site form would send this
    assert forged.status_code == 403 and "Authorization header" in forged.json()["detail"]
    other_origin = studio.post("/api/v1/datasets", json={"name": "x"}, headers={"Origin": "http://evil.test"})
    assert other_origin.status_code == 403
    assert studio.get("/api/v1/datasets").json()["count"] == 0


def test_openapi_is_published(studio):
    schema = TestClient(studio.app).get("/api/v1/openapi.json").json()
    assert {"/api/v1/datasets", "/api/v1/trainings/{training_id}/events", "/api/v1/generations"} <= set(
        schema["paths"]
    )
    assert "trainings-create_training" in str(schema)


def test_upload_validates_every_file_and_writes_nothing_on_error(tmp_path, demo_tracks):
    settings = studio_settings(tmp_path / "studio", max_upload_bytes=150_000)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        assert client.post("/api/v1/datasets", json={"name": "bad"}).status_code == 201
        assert client.post("/api/v1/datasets", json={"name": "Bad Name"}).status_code == 422

        fake = tmp_path / "notes.wav"
        fake.write_text("this is not audio\n" * 10)
        answer = upload(client, "bad", demo_tracks[0], fake)  # one bad file: nothing is stored
        assert answer.status_code == 400
        assert answer.json()["detail"].startswith("error: file 'notes.wav' is not usable audio")

        answer = upload(client, "bad", demo_tracks[0], name="../../escape.wav")
        assert answer.status_code == 400 and "not allowed" in answer.json()["detail"]

        answer = upload(client, "bad", demo_tracks[0], name="song.exe")
        assert answer.status_code == 400 and "unsupported type" in answer.json()["detail"]

        big = tmp_path / "big.wav"
        sf.write(big, [0.0] * 200_000, 22_050)
        answer = upload(client, "bad", big)
        assert answer.status_code == 413 and "larger than the limit" in answer.json()["detail"]

        assert client.post("/api/v1/datasets/nope/tracks", files={"file": ("a.wav", b"x")}).status_code == 404
        assert client.get("/api/v1/datasets/bad").json()["tracks"] == []
        written = {p.relative_to(settings.root).as_posix() for p in settings.root.rglob("*") if p.is_file()}
        assert written & {p for p in written if p.startswith("datasets/bad/")} == {"datasets/bad/.dataset"}
        assert not any("escape" in path for path in written)
        assert not (tmp_path / "escape.wav").exists() and not (settings.root / "escape.wav").exists()
        assert not any((settings.root / ".staging").iterdir())


@pytest.mark.slow
def test_train_watch_list_generate_and_ab(studio, demo_tracks):
    assert studio.post("/api/v1/datasets", json={"name": "demo"}).status_code == 201
    answer = upload(studio, "demo", *demo_tracks, prompt="warm synth pop")
    assert answer.status_code == 201, answer.text
    tracks = answer.json()
    assert [t["file"] for t in tracks] == [p.name for p in demo_tracks]
    assert all(abs(t["duration_seconds"] - 2.0) < 0.01 and t["prompt"] == "warm synth pop" for t in tracks)
    assert studio.get("/api/v1/datasets").json()["data"][0]["name"] == "demo"

    defaults = studio.get("/api/v1/trainings/defaults").json()
    assert TrainingRecipe.model_validate(defaults["recipe"]) == TrainingRecipe()  # the contract's defaults

    created = studio.post("/api/v1/trainings", json={"dataset": "demo", **TINY_TRAINING})
    assert created.status_code == 201, created.text
    training_id = created.json()["id"]
    assert created.json()["state"] in ("queued", "running")

    def finished():
        training = studio.get(f"/api/v1/trainings/{training_id}").json()
        return training if training["state"] in ("completed", "failed", "cancelled") else None

    training = wait_for(finished, 240, "the tiny training")
    assert training["state"] == "completed", training["error"]
    progress = TrainingProgress.model_validate(training["progress"])
    assert progress.phase == "completed" and progress.percent == 100
    assert training["points"] and all(p["loss"] is None or p["loss"] > 0 for p in training["points"])

    events = studio.get(f"/api/v1/trainings/{training_id}/events")
    assert events.headers["content-type"].startswith("text/event-stream")
    assert "event: training" in events.text and '"state":"completed"' in events.text

    models = studio.get("/api/v1/models").json()["data"]
    assert [m["model_id"] for m in models] == [training_id]
    assert models[0]["base_model"] == "tiny-random" and models[0]["training"]["final_loss"] > 0
    assert models[0]["training"]["dataset_uri"].endswith("/datasets/demo")

    request = {
        "model_id": training_id,
        "parameters": {"prompt": "warm synth pop", "duration_seconds": 1.0, "key": "C", "scale": "major"},
        "compare_with_base": True,
    }
    generation = studio.post("/api/v1/generations", json=request)
    assert generation.status_code == 202, generation.text
    first = generation.json()
    assert first["compare_id"] and first["parameters"]["random_seed"] is not None

    def done(generation_id):
        body = studio.get(f"/api/v1/generations/{generation_id}").json()
        return body if body["state"] in ("completed", "failed") else None

    tuned = wait_for(lambda: done(first["id"]), 120, "the fine-tuned generation")
    base = wait_for(lambda: done(first["compare_id"]), 120, "the base-model generation")
    assert tuned["state"] == base["state"] == "completed", (tuned["error"], base["error"])
    assert base["is_base"] and base["model"] == "tiny-random" and tuned["model"] == training_id
    assert tuned["result"]["seed"] == base["result"]["seed"] == first["parameters"]["random_seed"]

    audio = studio.get(tuned["audio_url"])
    assert audio.headers["content-type"] == "audio/wav"
    samples, rate = sf.read(io.BytesIO(audio.content))
    assert abs(len(samples) / rate - 1.0) < 0.05
    assert studio.get(tuned["spectrogram_url"]).content[:4] == b"\x89PNG"

    # A restart on the same root loses nothing.
    with TestClient(create_app(studio_settings(studio.app.state.settings.root))) as again:
        again.headers["Authorization"] = f"Bearer {TOKEN}"
        assert again.get(f"/api/v1/trainings/{training_id}").json()["state"] == "completed"
        restored = again.get(f"/api/v1/generations/{first['id']}").json()
        assert restored["result"]["seed"] == tuned["result"]["seed"]
        assert again.get("/api/v1/datasets/demo").json()["tracks"] == tracks

    assert studio.delete(f"/api/v1/models/{training_id}").status_code == 200
    assert studio.get("/api/v1/models").json()["count"] == 0
    assert studio.post("/api/v1/generations", json=request).status_code == 404


def test_training_rejects_bad_recipes_and_cancels(studio, demo_tracks):
    studio.post("/api/v1/datasets", json={"name": "empty"})
    answer = studio.post("/api/v1/trainings", json={"dataset": "empty", **TINY_TRAINING})
    assert answer.status_code == 400 and "no tracks" in answer.json()["detail"]
    bad = studio.post("/api/v1/trainings", json={"dataset": "empty", "training": {"epochs": 0}})
    assert bad.status_code == 422 and "training.epochs" in bad.json()["detail"]

    upload(studio, "empty", demo_tracks[0])
    long_run = TINY_TRAINING | {"training": TINY_TRAINING["training"] | {"epochs": 500}}
    training_id = studio.post("/api/v1/trainings", json={"dataset": "empty", **long_run}).json()["id"]
    wait_for(lambda: studio.get(f"/api/v1/trainings/{training_id}").json()["state"] == "running", 30, "start")
    cancelled = studio.post(f"/api/v1/trainings/{training_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    runner = studio.app.state.backend.runner
    wait_for(lambda: runner.process is None, 30, "the train-job process to stop")
    assert studio.post(f"/api/v1/trainings/{training_id}/cancel").status_code == 409
    assert studio.get("/api/v1/trainings/nope").status_code == 404
