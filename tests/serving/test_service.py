"""GenerationService on the tiny model: determinism, exact lengths, windows, batching, cache, queue."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import soundfile as sf

from musicgen_ops.serving.cache import ModelCache
from musicgen_ops.serving.errors import InvalidParametersError, ModelNotFoundError, ServiceBusyError
from musicgen_ops.serving.service import GenerationService


def read(result) -> np.ndarray:
    audio, rate = sf.read(result.audio_path, dtype="float32")
    assert rate == 32_000
    return audio


async def test_same_seed_same_audio_and_different_seeds_differ(service, tmp_path):
    params = {"prompt": "rock drums", "duration_seconds": 0.1, "random_seed": 42}
    first = await service.generate_track(params, tmp_path / "a")
    again = await service.generate_track(params, tmp_path / "b")
    other = await service.generate_track(params | {"random_seed": 43}, tmp_path / "c")
    assert first.audio_sha256 == again.audio_sha256
    np.testing.assert_array_equal(read(first), read(again))
    assert first.audio_sha256 != other.audio_sha256
    assert not np.allclose(read(first), read(other))


@pytest.mark.parametrize("duration", [0.05, 0.1234, 0.45])  # 0.45 s spans 4 windows of 0.2 s / 0.1 s context
async def test_exact_sample_count(service, tmp_path, duration):
    result = await service.generate_track({"prompt": "calm pad", "duration_seconds": duration}, tmp_path)
    expected = round(duration * 32_000)
    assert result.num_samples == expected == len(read(result))
    assert result.windows == (4 if duration > 0.2 else 1)


async def test_long_track_is_deterministic_across_windows(service, tmp_path):
    params = {"prompt": "jazz piano", "duration_seconds": 0.35, "random_seed": 5, "output_format": "flac"}
    first = await service.generate_track(params, tmp_path / "a")
    again = await service.generate_track(params, tmp_path / "b")
    assert first.windows == 3 and first.audio_path.endswith(".flac")
    np.testing.assert_array_equal(read(first), read(again))


async def test_sidecar_records_everything(service, tmp_path):
    params = {
        "prompt": "funk bass",
        "duration_seconds": 0.1,
        "style": "funk",
        "target_bpm": 110,
        "spectrogram": True,
    }
    result = await service.generate_track(params, tmp_path, name="track")
    sidecar = json.loads((tmp_path / "track.json").read_text())
    assert sidecar["seed"] == result.seed and 0 <= result.seed < 2**32
    assert sidecar["model_id"] == "tiny-random"
    assert sidecar["sample_rate"] == 32_000
    assert sidecar["duration_seconds"] == pytest.approx(0.1)
    assert sidecar["parameters"]["target_bpm"] == 110
    assert sidecar["conditioning_text"] == "110 bpm, funk bass"
    assert sidecar["wall_seconds"] > 0
    assert sidecar["real_time_factor"] == pytest.approx(sidecar["wall_seconds"] / 0.1, rel=1e-2)
    assert (tmp_path / "track.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


async def test_concurrent_requests_are_batched_and_each_keeps_its_seed(service, tiny_engine, tmp_path):
    seeds = [11, 12, 13]
    before = len(tiny_engine.batch_sizes)
    results = await asyncio.gather(
        *[
            service.generate_track(
                {"prompt": f"song {s}", "duration_seconds": 0.1, "random_seed": s}, tmp_path / str(s)
            )
            for s in seeds
        ]
    )
    assert [r.batch_size for r in results] == [3, 3, 3]
    assert tiny_engine.batch_sizes[before:] == [3]  # one batched forward pass for all three
    assert [r.seed for r in results] == seeds
    for seed, batched in zip(seeds, results, strict=True):
        alone = await service.generate_track(
            {"prompt": f"song {seed}", "duration_seconds": 0.1, "random_seed": seed},
            tmp_path / f"alone{seed}",
        )
        assert alone.batch_size == 1
        # Same tokens; the float decode may differ in the last bit of 16-bit PCM.
        np.testing.assert_allclose(read(batched), read(alone), atol=1e-4)
    assert b"musicgen_serve_batch_size_count 4.0" in service.metrics.render()


async def test_batches_are_bounded_and_split_by_sampling_settings(service, tiny_engine, tmp_path):
    service.settings.max_batch_size = 2
    before = len(tiny_engine.batch_sizes)
    requests = [{"prompt": "x", "duration_seconds": 0.05, "random_seed": i} for i in range(3)]
    requests.append({"prompt": "x", "duration_seconds": 0.05, "random_seed": 9, "temperature": 0.5})
    results = await asyncio.gather(
        *[service.generate_track(r, tmp_path / str(i)) for i, r in enumerate(requests)]
    )
    assert sorted(tiny_engine.batch_sizes[before:]) == [1, 1, 2]
    assert results[3].batch_size == 1


async def test_queue_overflow_is_busy(service, tmp_path):
    service.settings.max_queue = 1
    running = asyncio.create_task(service.generate_track({"prompt": "x", "duration_seconds": 0.05}, tmp_path))
    await asyncio.sleep(0)  # admitted
    with pytest.raises(ServiceBusyError, match="limit 1"):
        await service.generate_track({"prompt": "y", "duration_seconds": 0.05}, tmp_path)
    await running
    assert service.queue_depth == 0
    await service.generate_track({"prompt": "z", "duration_seconds": 0.05}, tmp_path)  # free again


async def test_invalid_parameters_are_refused_before_admission(service):
    with pytest.raises(InvalidParametersError) as info:
        await service.generate_track({"prompt": "x", "temperature": 9, "top_k": 5000})
    assert len(info.value.fields) == 2
    assert service.queue_depth == 0


async def test_trained_model_by_id_cache_hit_and_eviction(service, tmp_path):
    service.cache.max_models = 1
    base = await service.generate_track({"prompt": "x", "duration_seconds": 0.05, "random_seed": 1}, tmp_path)
    assert (service.cache.misses, service.cache.hits) == (1, 0)
    await service.generate_track({"prompt": "x", "duration_seconds": 0.05}, tmp_path)
    assert service.cache.hits == 1  # second request: no load
    tuned = await service.generate_track(
        {"prompt": "x", "duration_seconds": 0.05, "random_seed": 1, "trained_model_id": "my-model"}, tmp_path
    )
    assert tuned.model_id == "my-model"
    assert tuned.audio_sha256 != base.audio_sha256  # the adapter changes the output
    assert service.cache.evictions == 1 and [e.key for e in service.cache.entries()] == ["my-model"]
    listed = {m.model_id: m for m in service.list_models().models}
    assert listed["my-model"].loaded and listed["my-model"].memory_bytes > 0
    assert b'musicgen_serve_model_cache_events_total{event="eviction"} 1.0' in service.metrics.render()


async def test_unknown_model_is_not_found(service):
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        await service.generate_track({"prompt": "x", "trained_model_id": "no-such-model"})
    with pytest.raises(InvalidParametersError, match="not a model id"):
        await service.generate_track({"prompt": "x", "trained_model_id": "../etc"})


async def test_async_job_lifecycle(service):
    job = service.submit_job({"prompt": "x", "duration_seconds": 0.05, "random_seed": 3})
    assert service.get_job(job.job_id).state.value in ("queued", "running")
    for _ in range(600):
        if service.get_job(job.job_id).finished:
            break
        await asyncio.sleep(0.05)
    done = service.get_job(job.job_id)
    assert done.state.value == "succeeded" and done.result.seed == 3
    assert service.queue_depth == 0


class TestModelCache:
    async def test_lru_by_count_and_memory(self):
        class Fake:
            def __init__(self, size):
                self.memory_bytes = size

        sizes = {"a": 10, "b": 10, "c": 25}
        events = []
        cache = ModelCache(lambda k: (Fake(sizes[k]), k), max_models=2, max_bytes=30, on_event=events.append)
        a = await cache.get("a")
        assert await cache.get("a") is a
        await cache.get("b")
        await cache.get("a")  # a is now most recently used
        await cache.get("c")  # 45 bytes > 30: evict b (LRU), then still 35 > 30: evict a
        assert [e.key for e in cache.entries()] == ["c"]
        assert (cache.hits, cache.misses, cache.evictions) == (2, 3, 2)
        assert events.count("eviction") == 2

    async def test_concurrent_misses_share_one_load(self):
        loads = []

        def loader(key):
            loads.append(key)
            return object(), key

        cache = ModelCache(loader, max_models=2, max_bytes=10)
        engines = await asyncio.gather(*[cache.get("m") for _ in range(4)])
        assert loads == ["m"] and all(e is engines[0] for e in engines)

    async def test_failed_load_is_not_cached(self):
        def loader(key):
            raise ModelNotFoundError(f"no {key}")

        cache = ModelCache(loader, max_models=2, max_bytes=10)
        for _ in range(2):
            with pytest.raises(ModelNotFoundError):
                await cache.get("x")
        assert cache.misses == 2 and not cache.entries()


async def test_preload_and_warmup_make_ready(settings, engine_factory):
    settings.preload, settings.warmup = ["tiny-random"], True
    svc = GenerationService(settings, engine_factory=engine_factory)
    assert not svc.ready
    await svc.start()
    assert svc.ready and "tiny-random" in svc.cache
    await svc.close()


def test_engine_with_one_seed_per_call_continues_codes_across_windows(tiny_engine):
    from musicgen_ops.pipeline.generation.windowing import generate_windowed
    from musicgen_ops.pipeline.inference.base import SamplingParams

    class OneSeed:
        """An engine without per-prompt seeds (as the exported ones): continued by codes all the same."""

        sample_rate, frame_rate, decoder = 32_000, 50, tiny_engine.decoder

        def generate(self, prompts, *, num_frames, sampling=SamplingParams(), prefix_codes=None, decode=True):
            return tiny_engine.generate(
                prompts, num_frames=num_frames, sampling=sampling, prefix_codes=prefix_codes, decode=decode
            )

    audio, windows = generate_windowed(
        OneSeed(), ["x"], num_samples=3200, sampling=SamplingParams(), seeds=[1], window_seconds=0.2
    )
    assert audio.shape == (1, 3200) and windows == 1
    audio, windows = generate_windowed(
        OneSeed(), ["x"], num_samples=9600, sampling=SamplingParams(), seeds=[1], window_seconds=0.2,
        stride_seconds=0.1,
    )  # fmt: skip
    assert audio.shape == (1, 9600) and windows == 2
    with pytest.raises(ValueError, match="stride_seconds"):
        generate_windowed(
            OneSeed(), ["x"], num_samples=9600, sampling=SamplingParams(), seeds=[1], window_seconds=0.2
        )
    with pytest.raises(ValueError, match="one seed per call"):
        generate_windowed(OneSeed(), ["x", "y"], num_samples=3200, sampling=SamplingParams(), seeds=[1, 2])
