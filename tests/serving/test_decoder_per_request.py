"""A ``decoder`` per request: one model load shared by its decoders, never one batch across decoders, MBD
seeded from the request's seed, and a clear 503 when the MBD weights are not there."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
import soundfile as sf

from musicgen_ops.serving.app import create_app
from musicgen_ops.serving.errors import DecoderNotAvailableError
from musicgen_ops.serving.service import GenerationService

BODY = {"prompt": "calm piano", "duration_seconds": 0.1, "random_seed": 11}


@pytest.fixture
def mbd_settings(settings):
    """Tiny random MBD bands (built in code), two diffusion steps: seconds on CPU."""
    settings.mbd_weights, settings.mbd_sampling_steps = "tiny-random", 2
    settings.batch_window_ms = 200  # long enough for both requests to meet in one window
    return settings


async def test_requests_with_different_decoders_share_the_model_not_the_batch(mbd_settings):
    service = GenerationService(mbd_settings)  # the real engine factory: open_engine per decoder
    await service.start()
    try:
        plain, diffused = await asyncio.gather(
            service.generate_track(BODY), service.generate_track({**BODY, "decoder": "mbd"})
        )
        again = await service.generate_track({**BODY, "decoder": "mbd"})
        (entry,) = service.cache.entries()  # one model loaded, once
        encodec, mbd = entry.variants["encodec"], entry.variants["mbd"]
        listed = [(m.model_id, m.decoders, m.memory_bytes) for m in service.list_models().models if m.loaded]
        total = service.cache.stats().bytes
    finally:
        await service.close()
    assert (plain.decoder, diffused.decoder) == ("encodec", "mbd")
    assert plain.batch_size == diffused.batch_size == 1  # same settings, but never one batch
    assert diffused.num_samples == plain.num_samples == 3200  # exact requested length
    assert diffused.audio_sha256 != plain.audio_sha256
    assert again.audio_sha256 == diffused.audio_sha256  # MBD noise comes from the request's seed
    assert mbd.model is encodec.model and mbd.decoder.audio_encoder is encodec.model.audio_encoder
    assert entry.memory_bytes == encodec.memory_bytes + mbd.decoder.memory_bytes  # weights counted once
    assert listed == [("tiny-random", ["encodec", "mbd"], entry.memory_bytes)] and total == entry.memory_bytes


async def test_missing_mbd_weights_are_a_503_naming_the_setting(settings, engine_factory, tmp_path):
    settings.mbd_weights = str(tmp_path)  # a folder without mbd_musicgen_32khz.th
    app = create_app(settings, engine_factory=lambda ref, decoder=None: _open(ref, decoder, settings))
    await app.state.service.start()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=120) as client:
            refused = await client.post("/v1/generate", json={**BODY, "decoder": "mbd"})
            served = await client.post("/v1/generate", json=BODY)  # the server itself is fine
    finally:
        await app.state.service.close()
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "DecoderNotAvailable"
    assert "MUSICGEN_SERVE_MBD_WEIGHTS" in refused.json()["message"]
    assert served.status_code == 200 and served.headers["x-decoder"] == "encodec"
    assert sf.info(io.BytesIO(served.content)).samplerate == 32_000


def _open(reference: str, decoder: str | None, settings):
    from musicgen_ops.pipeline.inference.loader import open_engine

    options = {"weights": settings.mbd_weights} if decoder == "mbd" else None
    return open_engine(reference, decoder=decoder or "encodec", decoder_options=options)


def test_decoder_not_available_is_503():
    assert DecoderNotAvailableError("x").status_code == 503


async def test_missing_weights_are_found_before_any_model_is_loaded(settings, tmp_path, monkeypatch):
    from musicgen_ops.pipeline.inference import loader

    loads: list[str] = []
    monkeypatch.setattr(loader, "load_model", lambda ref: loads.append(ref))
    settings.mbd_weights = str(tmp_path)  # no checkpoint in it
    service = GenerationService(settings)
    await service.start()
    try:
        with pytest.raises(DecoderNotAvailableError, match="MUSICGEN_SERVE_MBD_WEIGHTS=.*holds no"):
            await service.generate_track({**BODY, "decoder": "mbd"})
    finally:
        await service.close()
    assert loads == []
