"""Decoders of one model share its weights: a view of the loaded engine (``with_decoder``) generates what a
separately opened engine does, costs only its decoder's bytes, and leaves the cache's eviction intact."""

from __future__ import annotations

import numpy as np

from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.inference.loader import engine_for_decoder, open_engine
from musicgen_ops.serving.service import GenerationService

MBD = {"weights": "tiny-random", "sampling_steps": 2}
BODY = {"prompt": "calm piano", "duration_seconds": 0.1, "random_seed": 11}


def _audio(engine) -> np.ndarray:
    output = engine.generate(["calm piano", "drums"], num_frames=4, sampling=SamplingParams(), seeds=[3, 4])
    return output.audio


def test_a_view_shares_the_weights_and_generates_like_a_separate_engine():
    base = open_engine("tiny-random")
    view = engine_for_decoder(base, "mbd", MBD)
    separate = open_engine("tiny-random", decoder="mbd", decoder_options=MBD)
    assert view.model is base.model and view.decoder.name == "mbd" and base.decoder.name == "encodec"
    shared = {id(p) for p in base.model.decoder.parameters()}
    assert shared == {id(p) for p in view.model.decoder.parameters()}  # one set of LM weights
    assert view.memory_bytes - base.memory_bytes == view.decoder.memory_bytes > 0  # only MBD's bands
    np.testing.assert_array_equal(_audio(view), _audio(separate))  # same seeds, same audio
    np.testing.assert_array_equal(_audio(base), _audio(open_engine("tiny-random")))  # base unchanged


def test_a_fast_engine_view_shares_its_workspace_and_lock(tiny_model):
    """The fast engine's static caches (and CUDA graphs on a GPU) run before the decoder: a view shares
    them and the lock that serialises their use, and decodes the same codes with its own decoder."""
    from musicgen_ops.pipeline.inference.fast_engine import FastEngineConfig, FastGenerationEngine

    config = FastEngineConfig(batch_buckets=(1, 2), length_buckets_s=(1.0,), text_buckets=(16,))
    base = FastGenerationEngine(tiny_model, device="cpu", config=config)
    view = engine_for_decoder(base, "mbd", MBD)
    assert view.workspace is base.workspace and view._lock is base._lock and view.weights is base.weights
    assert view.memory_bytes == base.memory_bytes + view.decoder.memory_bytes
    plain, diffused = (e.generate(["calm"], num_frames=4, seeds=[5]) for e in (base, view))
    np.testing.assert_array_equal(plain.codes, diffused.codes)  # one generation, two decoders
    assert not np.allclose(plain.audio, diffused.audio)


def test_exported_engines_get_no_view():
    class Exported:  # no with_decoder: the server opens such an engine again for the other decoder
        model = None

    assert engine_for_decoder(Exported(), "mbd", MBD) is None


async def test_eviction_drops_a_model_with_all_its_decoders(settings):
    settings.mbd_weights, settings.mbd_sampling_steps = "tiny-random", 2
    settings.max_cached_models = 1
    service = GenerationService(settings)
    await service.start()
    try:
        await service.generate_track(BODY)
        await service.generate_track({**BODY, "decoder": "mbd"})
        (entry,) = service.cache.entries()
        assert sorted(entry.variants) == ["encodec", "mbd"] and service.cache.misses == 1
        await service.generate_track({**BODY, "trained_model_id": "my-model", "decoder": "mbd"})
        (kept,) = service.cache.entries()
        assert kept.key == "my-model" and sorted(kept.variants) == ["encodec", "mbd"]
        assert service.cache.evictions == 1 and service.cache.stats().bytes == kept.memory_bytes
    finally:
        await service.close()


async def test_memory_budget_counts_the_added_decoder(settings):
    settings.mbd_weights, settings.mbd_sampling_steps = "tiny-random", 2
    service = GenerationService(settings)
    await service.start()
    try:
        await service.generate_track(BODY)
        (entry,) = service.cache.entries()
        plain = entry.memory_bytes
        service.cache.max_bytes = plain + 1  # the other model fits only without MBD
        await service.generate_track({**BODY, "decoder": "mbd"})
        assert entry.memory_bytes > plain and service.cache.evictions == 0  # the newest entry stays
        await service.generate_track({**BODY, "trained_model_id": "my-model"})
        assert [e.key for e in service.cache.entries()] == ["my-model"] and service.cache.evictions == 1
    finally:
        await service.close()


async def test_cache_variants_build_once_count_once_and_close_once():
    import asyncio

    from musicgen_ops.serving.cache import ModelCache

    closed, builds = [], []

    class Engine:
        def __init__(self, name, size, model):
            self.name, self.memory_bytes, self.model = name, size, model

        def close(self):
            closed.append(self.name)

    def build(engine):
        builds.append(engine.name)
        view = Engine("view", engine.memory_bytes + 5, engine.model)  # a view: same model, 5 bytes more
        return view, 5

    cache = ModelCache(lambda k: (Engine(k, 10, object()), None), max_models=1, max_bytes=100)
    views = await asyncio.gather(*[cache.get_variant("a", "mbd", build, primary="encodec") for _ in range(3)])
    assert builds == ["a"] and all(v is views[0] for v in views)
    (entry,) = cache.entries()
    assert sorted(entry.variants) == ["encodec", "mbd"] and entry.memory_bytes == cache.total_bytes == 15
    assert await cache.get_variant("a", "encodec", build) is entry.engine and cache.misses == 1
    await cache.get("b")  # one model at most: "a" goes with its view, closed once
    assert closed == ["a"] and [e.key for e in cache.entries()] == ["b"]
