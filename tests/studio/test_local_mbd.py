"""MultiBand Diffusion in the local studio: ``--mbd-weights``/``--mbd-steps`` reach the engine; missing
weights are a 503 naming the option, before any generation is queued."""

from __future__ import annotations

import io

import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from musicgen_ops.pipeline.inference import loader
from musicgen_ops.pipeline.inference.decoders.mbd_checkpoint import (
    MBD_MUSICGEN_FILENAME,
    build_random_bands,
    save_mbd_checkpoint,
)
from musicgen_ops.pipeline.presets import build_random_musicgen
from musicgen_ops.studio.app import create_app
from tests.studio.conftest import TOKEN, studio_settings, wait_for

REQUEST = {
    "base_model": "tiny-random",
    "parameters": {"prompt": "calm piano", "duration_seconds": 0.1, "random_seed": 5, "decoder": "mbd"},
}


@pytest.fixture(scope="module")
def mbd_folder(tmp_path_factory):
    """A folder holding tiny random MBD weights in the published layout (mbd_musicgen_32khz.th)."""
    codec = build_random_musicgen("tiny-random").model.audio_encoder
    rate = int(codec.config.sampling_rate)
    folder = tmp_path_factory.mktemp("mbd")
    save_mbd_checkpoint(
        folder / MBD_MUSICGEN_FILENAME, build_random_bands(codec.config.codebook_dim, rate), rate
    )
    return folder


def _client(tmp_path, **overrides) -> TestClient:
    client = TestClient(create_app(studio_settings(tmp_path / "studio", **overrides)))
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return client


def test_mbd_generations_decode_with_the_studio_weights_and_steps(tmp_path, mbd_folder, monkeypatch):
    opened: list[tuple[str, dict | None]] = []
    real_open = loader.open_engine

    def spy(*args, **kwargs):
        opened.append((kwargs.get("decoder"), kwargs.get("decoder_options")))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(loader, "open_engine", spy)
    with _client(tmp_path, mbd_weights=str(mbd_folder), mbd_sampling_steps=2) as studio:
        answer = studio.post("/api/v1/generations", json=REQUEST)
        assert answer.status_code == 202, answer.text

        def done():
            body = studio.get(f"/api/v1/generations/{answer.json()['id']}").json()
            return body if body["state"] in ("completed", "failed") else None

        generation = wait_for(done, 120, "the MBD generation")
        assert generation["state"] == "completed", generation["error"]
        assert generation["result"]["decoder"] == "mbd"
        samples, rate = sf.read(io.BytesIO(studio.get(generation["audio_url"]).content))
    assert len(samples) == 3200 and rate == 32_000
    assert opened == [("mbd", {"weights": str(mbd_folder / MBD_MUSICGEN_FILENAME), "sampling_steps": 2})]


def test_missing_mbd_weights_are_a_503_naming_the_option(tmp_path):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    with _client(tmp_path, mbd_weights=str(empty)) as studio:
        refused = studio.post("/api/v1/generations", json=REQUEST)
        assert refused.status_code == 503, refused.text
        detail = refused.json()["detail"]
        assert detail.startswith("error: decoder 'mbd'") and f"--mbd-weights {empty}" in detail
        assert MBD_MUSICGEN_FILENAME in detail and "Traceback" not in detail
        assert studio.get("/api/v1/generations").json()["count"] == 0  # nothing queued
        plain = {**REQUEST, "parameters": {**REQUEST["parameters"], "decoder": "encodec"}}
        assert studio.post("/api/v1/generations", json=plain).status_code == 202  # the studio itself is fine
