"""Issue 19: the fast engine ranks only ``top_k_candidates`` scores (``torch.topk``, fixed shape) when a
request's top_k fits, instead of sorting the whole vocabulary, and still picks exactly the tokens of
transformers' top-k / top-p warpers for the same random stream."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import TopKLogitsWarper, TopPLogitsWarper

from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.inference.fast_engine import (
    FastEngineConfig,
    FastEngineError,
    FastGenerationEngine,
)
from musicgen_ops.pipeline.inference.static_decoder import choose_tokens

VOCAB = 2048
PROMPTS = ["upbeat jazz piano", "dark ambient pad with strings and choir"]
SMALL = dict(batch_buckets=(1, 2), length_buckets_s=(1.0,), text_buckets=(16, 32))


def _buffers(batch: int, top_k: int, top_p: float, seed: int) -> SimpleNamespace:
    """What :func:`choose_tokens` reads: ``batch`` rows of 4 codebooks, Exp(1) noise from ``seed``."""
    noise = torch.empty((batch, 1, 4, VOCAB)).exponential_(generator=torch.Generator().manual_seed(seed))
    return SimpleNamespace(
        batch=batch,
        position=torch.zeros(1, dtype=torch.long),
        noise=noise,
        noise_window=1,
        top_k_index=torch.tensor([(top_k or VOCAB) - 1]),
        guidance=torch.tensor(3.0),
        use_guidance=torch.tensor(True),
        do_sample=torch.tensor(True),
        temperature=torch.tensor(0.9),
        top_p=torch.tensor(top_p if 0 < top_p < 1 else 2.0),
    )


def _hf_tokens(logits: torch.Tensor, buf: SimpleNamespace, top_k: int, top_p: float) -> torch.Tensor:
    """transformers' guidance, temperature, top-k and top-p warpers, then the same exponential race."""
    cond, uncond = logits[: buf.batch], logits[buf.batch :]
    scores = (uncond + (cond - uncond) * 3.0).reshape(-1, VOCAB) / 0.9
    if top_k:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if 0 < top_p < 1:
        scores = TopPLogitsWarper(top_p)(None, scores)
    probs = scores.softmax(-1).view(buf.batch, 4, VOCAB)
    return (probs / buf.noise[:, 0]).argmax(-1)


@pytest.mark.parametrize(("top_k", "top_p"), [(250, 0.0), (1, 0.0), (50, 0.9), (256, 0.5), (0, 0.0)])
def test_topk_ranking_picks_the_same_tokens_as_sorting_and_as_hf(top_k, top_p):
    for seed in range(3):
        logits = torch.randn(2 * 8, 4, VOCAB, generator=torch.Generator().manual_seed(100 + seed)) * 3
        buf = _buffers(8, top_k, top_p, seed)
        sorted_tokens = choose_tokens(logits, buf)  # the whole vocabulary sorted (before issue 19)
        ranked = choose_tokens(logits, buf, 256) if 0 < top_k <= 256 else sorted_tokens
        torch.testing.assert_close(ranked, sorted_tokens, rtol=0, atol=0)
        torch.testing.assert_close(sorted_tokens, _hf_tokens(logits, buf, top_k, top_p), rtol=0, atol=0)


@pytest.fixture(scope="module")
def engines(tiny_model):
    topk = FastGenerationEngine(tiny_model, device="cpu", config=FastEngineConfig(**SMALL))
    sort = FastGenerationEngine(
        tiny_model, device="cpu", config=FastEngineConfig(**SMALL, top_k_candidates=0)
    )
    return topk, sort


@pytest.mark.parametrize(
    "sampling",
    [SamplingParams(seed=7), SamplingParams(seed=8, top_k=50, top_p=0.8), SamplingParams(seed=9, top_k=0)],
    ids=["top_k=250", "top_k=50+top_p", "top_k-off"],
)
def test_engine_codes_for_a_seed_do_not_change(engines, sampling):
    topk, sort = engines
    a = topk.generate(PROMPTS, num_frames=12, sampling=sampling)
    b = sort.generate(PROMPTS, num_frames=12, sampling=sampling)
    np.testing.assert_array_equal(a.codes, b.codes)


def test_the_sampler_follows_the_request(engines):
    ws = engines[0].workspace
    assert ws.samplers == (256, None) and engines[1].workspace.samplers == (None,)
    assert ws.sampler_for(SamplingParams(top_k=250)) == 256
    assert ws.sampler_for(SamplingParams(top_k=256, top_p=0.9)) == 256
    assert ws.sampler_for(SamplingParams(top_k=257)) is None
    assert ws.sampler_for(SamplingParams(top_k=0)) is None


def test_top_k_candidates_must_not_be_negative():
    with pytest.raises(FastEngineError, match="top_k_candidates must be >= 0"):
        FastEngineConfig(top_k_candidates=-1)
