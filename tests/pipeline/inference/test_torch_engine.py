"""TorchEngine on the tiny model: protocol, per-prompt seeds, batch invariance, audio prompts, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicgen_ops.pipeline.inference.base import GenerationEngine, SamplingParams
from musicgen_ops.pipeline.inference.torch_engine import SeededSampler, TorchEngine, item_seeds


@pytest.fixture(scope="module")
def engine(tiny_model):
    engine = TorchEngine(tiny_model)
    engine.generate(["warm up"], num_frames=2, seeds=[0])
    return engine


def test_implements_the_protocol(engine):
    assert isinstance(engine, GenerationEngine)
    assert (engine.sample_rate, engine.frame_rate, engine.hop_length) == (32_000, 50, 640)
    assert engine.max_frames == 1500
    assert engine.memory_bytes > 0


def test_seeded_output_is_reproducible_and_seed_dependent(engine):
    first = engine.generate(["rock drums"], num_frames=6, sampling=SamplingParams(seed=3))
    again = engine.generate(["rock drums"], num_frames=6, sampling=SamplingParams(seed=3))
    other = engine.generate(["rock drums"], num_frames=6, sampling=SamplingParams(seed=4))
    assert first.audio.shape == (1, 6 * 640) and first.audio.dtype == np.float32
    np.testing.assert_array_equal(first.audio, again.audio)
    assert not np.allclose(first.audio, other.audio)
    assert first.timings["steps"] == 6 + 4 - 1  # frames + delay pattern


def test_batched_prompt_matches_its_solo_run(engine):
    alone = engine.generate(["jazz piano"], num_frames=5, seeds=[21]).audio[0]
    batch = engine.generate(
        ["calm pad", "jazz piano with drums and bass", "jazz piano"], num_frames=5, seeds=[5, 9, 21]
    )
    assert engine.batch_sizes[-1] == 3
    np.testing.assert_allclose(batch.audio[2], alone, atol=1e-5)
    assert not np.allclose(batch.audio[0], batch.audio[2])


def test_sampling_seed_gives_consecutive_item_seeds():
    assert item_seeds(SamplingParams(seed=10), 3) == [10, 11, 12]
    random_seeds = item_seeds(SamplingParams(), 2)
    assert len(set(random_seeds)) == 2 and all(0 <= s < 2**63 for s in random_seeds)


def test_code_prefix_returns_only_the_continuation(engine):
    prompt = engine.generate(["funk"], num_frames=10, seeds=[1]).audio
    codes = engine.encode_audio(prompt)
    assert codes.shape == (1, 4, 10) and codes.dtype == np.int64
    assert engine.encode_audio(prompt[:, :-100]).shape == (1, 4, 9)  # cut to whole frames
    cont = engine.generate(["funk"], num_frames=4, seeds=[2], prefix_codes=codes)
    assert cont.audio.shape == (1, 4 * 640) and cont.codes.shape == (1, 4, 4)
    codes_only = engine.generate(["funk"], num_frames=4, seeds=[2], prefix_codes=codes, decode=False)
    assert codes_only.audio.shape == (1, 0) and np.array_equal(codes_only.codes, cont.codes)
    with pytest.raises(ValueError, match="shorter than one codec frame"):
        engine.encode_audio(prompt[:, :100])
    with pytest.raises(ValueError, match="batch=2"):
        engine.generate(["a", "b"], num_frames=4, prefix_codes=codes)
    with pytest.raises(ValueError, match="within 0..2047"):
        engine.generate(["funk"], num_frames=4, prefix_codes=codes + 2048)


def test_bad_arguments(engine):
    with pytest.raises(ValueError, match="prompts is empty"):
        engine.generate([], num_frames=3)
    with pytest.raises(ValueError, match="num_frames"):
        engine.generate(["x"], num_frames=0)
    with pytest.raises(ValueError, match="2 seeds for 1 prompts"):
        engine.generate(["x"], num_frames=3, seeds=[1, 2])
    with pytest.raises(ValueError, match="unknown dtype"):
        TorchEngine.__init__(object.__new__(TorchEngine), engine, dtype="int8")  # type: ignore[arg-type]


class TestSeededSampler:
    def scores(self, rows=4, vocab=50):
        return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(0))

    def test_one_hot_output_and_guidance_halves(self):
        sampler = SeededSampler([1], 4, SamplingParams(guidance_scale=3.0, top_k=5))
        out = sampler(torch.zeros(4, 1, dtype=torch.long), torch.cat([self.scores(), self.scores() * 0]))
        assert out.shape == (8, 50)
        assert torch.equal(out[:4], out[4:])
        assert ((out == 0).sum(dim=1) == 1).all()

    def test_top_k_one_and_greedy_pick_the_argmax(self):
        scores = self.scores()
        for params in (
            SamplingParams(top_k=1, guidance_scale=1),
            SamplingParams(temperature=0, guidance_scale=1),
        ):
            out = SeededSampler([7], 4, params)(torch.zeros(4, 1, dtype=torch.long), scores)
            assert torch.equal(out.argmax(dim=1), scores.argmax(dim=1))

    def test_top_p_keeps_only_the_nucleus(self):
        scores = torch.full((4, 50), -20.0)
        scores[:, 3] = 10.0  # ~all the mass
        scores[:, 8] = 9.0
        picks = set()
        for seed in range(30):
            out = SeededSampler([seed], 4, SamplingParams(top_p=0.5, top_k=0, guidance_scale=1))(None, scores)
            picks |= set(out.argmax(dim=1).tolist())
        assert picks == {3}

    def test_wrong_row_count_is_an_error(self):
        with pytest.raises(ValueError, match="expected 8 or 16 rows"):
            SeededSampler([1, 2], 4, SamplingParams())(None, self.scores(rows=4))
