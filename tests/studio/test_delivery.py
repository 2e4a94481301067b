"""Studio generations with a format and a decoder of their own (local backend, tiny base model)."""

from __future__ import annotations

import io

import soundfile as sf

from tests.studio.conftest import wait_for


def test_a_base_model_generation_in_ogg(studio):
    parameters = {"prompt": "soft pads", "duration_seconds": 0.5, "random_seed": 3, "output_format": "ogg"}
    created = studio.post("/api/v1/generations", json={"base_model": "tiny-random", "parameters": parameters})
    assert created.status_code == 202, created.text

    def done():
        body = studio.get(f"/api/v1/generations/{created.json()['id']}").json()
        return body if body["state"] in ("completed", "failed") else None

    generation = wait_for(done, 120, "the ogg generation")
    assert generation["state"] == "completed", generation["error"]
    assert generation["result"]["decoder"] == "encodec"
    audio = studio.get(generation["audio_url"])
    assert audio.headers["content-type"] == "audio/ogg"
    with sf.SoundFile(io.BytesIO(audio.content)) as file:
        assert (file.format, file.samplerate) == ("OGG", 32_000)
        assert file.copy_metadata()["title"] == "soft pads"


def test_the_form_offers_the_decoders_and_formats_of_the_contract(studio):
    schema = studio.get("/api/v1/openapi.json").json()["components"]["schemas"]["GenerationParameters"]
    assert schema["properties"]["output_format"]["enum"] == ["wav", "flac", "mp3", "ogg", "opus"]
    assert schema["properties"]["decoder"]["anyOf"][0]["enum"] == ["encodec", "mbd"]
