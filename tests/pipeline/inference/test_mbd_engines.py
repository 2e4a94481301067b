"""MBD behind the engines: its diffusion noise comes from the request seeds the engine already has, so a
seed gives the same audio again, alone or in a batch, on the torch and the fast engine."""

from __future__ import annotations

import numpy as np
import pytest

from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.inference.decoders import build_decoder, decode_codes

SAMPLING = SamplingParams(seed=0, top_k=50)


@pytest.fixture(scope="module")
def mbd(tiny_model):
    return build_decoder("mbd", model=tiny_model.model, weights="tiny-random", sampling_steps=2, eq_bands=8)


@pytest.fixture(scope="module", params=["torch", "fast"])
def engine(request, tiny_model, mbd):
    if request.param == "torch":
        from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

        return TorchEngine(tiny_model, decoder=mbd)
    from musicgen_ops.pipeline.inference.fast_engine import FastEngineConfig, FastGenerationEngine

    config = FastEngineConfig(batch_buckets=(1, 2), length_buckets_s=(1.0,), text_buckets=(16,))
    return FastGenerationEngine(tiny_model, device="cpu", config=config, decoder=mbd)


def test_a_seed_gives_the_same_mbd_audio_again_and_in_a_batch(engine):
    pair = engine.generate(["calm", "calm"], num_frames=6, sampling=SAMPLING, seeds=[3, 4])
    alone = engine.generate(["calm"], num_frames=6, sampling=SAMPLING, seeds=[4])
    again = engine.generate(["calm"], num_frames=6, sampling=SAMPLING, seeds=[4])
    assert alone.audio.shape == (1, 6 * 640)  # exactly the frames asked for
    np.testing.assert_array_equal(alone.codes[0], pair.codes[1])
    np.testing.assert_allclose(alone.audio[0], pair.audio[1], atol=1e-5)
    np.testing.assert_array_equal(alone.audio, again.audio)
    assert not np.allclose(pair.audio[0], pair.audio[1])


def test_decode_codes_passes_seeds_only_to_seeded_decoders(mbd, tiny_model):
    import torch

    codes = torch.randint(0, 2048, (1, 4, 5), generator=torch.Generator().manual_seed(0))
    same = [decode_codes(mbd, codes, [7]) for _ in range(2)]
    torch.testing.assert_close(same[0], same[1], rtol=0, atol=0)
    encodec = build_decoder("encodec", model=tiny_model.model)
    torch.testing.assert_close(decode_codes(encodec, codes, [7]), encodec.decode(codes))


def test_the_engine_budgets_the_diffusion_bands_too(engine, tiny_model, mbd):
    assert mbd.memory_bytes > 1_000_000  # ~3.6M parameters of tiny bands, float32
    plain = type(engine).__name__ == "TorchEngine" and sum(
        t.numel() * t.element_size() for t in [*tiny_model.model.parameters(), *tiny_model.model.buffers()]
    )
    assert engine.memory_bytes >= mbd.memory_bytes + (plain or 0)


def test_a_long_track_decoded_by_mbd_follows_each_requests_seed(engine):
    """Token-level continuation decodes the whole track once, row by row, with the row's own seed."""
    from musicgen_ops.pipeline.generation.windowing import generate_windowed

    kwargs = {"num_samples": 16 * 640, "sampling": SAMPLING, "window_seconds": 0.2, "stride_seconds": 0.12}
    pair, windows = generate_windowed(engine, ["calm", "calm"], seeds=[3, 4], **kwargs)
    alone, _ = generate_windowed(engine, ["calm"], seeds=[4], **kwargs)
    assert windows == 2 and pair.shape == (2, 16 * 640)
    np.testing.assert_allclose(alone[0], pair[1], atol=1e-5)
