"""numpy logits processing: guidance, temperature, top-k/top-p, greedy and seeded sampling."""

from __future__ import annotations

import numpy as np
import pytest

from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.inference.sampling import (
    classifier_free_guidance,
    process_logits,
    select_tokens,
    top_k_filter,
    top_p_filter,
    validate_sampling,
)


def test_guidance_matches_transformers_processor():
    import torch
    from transformers.generation.logits_process import ClassifierFreeGuidanceLogitsProcessor

    logits = np.random.default_rng(0).normal(size=(8, 32)).astype(np.float32)
    want = ClassifierFreeGuidanceLogitsProcessor(3.0)(torch.zeros(4, 1), torch.from_numpy(logits)).numpy()
    np.testing.assert_array_equal(classifier_free_guidance(logits, 3.0), want)


def test_top_k_and_top_p_match_transformers_warpers():
    import torch
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    logits = np.random.default_rng(1).normal(size=(3, 50)).astype(np.float32)
    want_k = TopKLogitsWarper(5)(None, torch.from_numpy(logits)).numpy()
    np.testing.assert_array_equal(top_k_filter(logits, 5), want_k)
    assert (np.isfinite(top_k_filter(logits, 5)).sum(-1) == 5).all()
    want_p = TopPLogitsWarper(0.8)(None, torch.from_numpy(logits)).numpy()
    np.testing.assert_array_equal(np.isfinite(top_p_filter(logits, 0.8)), np.isfinite(want_p))


def test_greedy_and_guidance_only_when_scale_above_one():
    logits = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]], dtype=np.float32)
    greedy = SamplingParams(guidance_scale=1.0, do_sample=False)
    assert process_logits(logits, greedy).shape == (2, 3)
    assert select_tokens(process_logits(logits, greedy), greedy, np.random.default_rng()).tolist() == [1, 0]
    guided = SamplingParams(guidance_scale=2.0, do_sample=False)
    assert process_logits(logits, guided).shape == (1, 3)  # cond row 0, uncond row 1: 2*cond - uncond
    assert select_tokens(process_logits(logits, guided), guided, np.random.default_rng()).tolist() == [1]


def test_seeded_sampling_respects_top_k_and_is_reproducible():
    logits = np.random.default_rng(2).normal(size=(64, 100)).astype(np.float32)
    params = SamplingParams(guidance_scale=1.0, top_k=3, temperature=0.7, do_sample=True, seed=5)
    first = select_tokens(process_logits(logits, params), params, np.random.default_rng(5))
    again = select_tokens(process_logits(logits, params), params, np.random.default_rng(5))
    np.testing.assert_array_equal(first, again)
    allowed = np.argsort(logits, axis=-1)[:, -3:]
    assert all(tok in row for tok, row in zip(first, allowed, strict=True))
    assert len(set(first.tolist())) > 3  # really sampled, not argmax


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (SamplingParams(temperature=0.0), "temperature"),
        (SamplingParams(top_k=-1), "top_k"),
        (SamplingParams(top_p=1.5), "top_p"),
        (SamplingParams(guidance_scale=-1.0), "guidance_scale"),
    ],
)
def test_invalid_sampling_names_the_field(params, field):
    with pytest.raises(ValueError, match=field):
        validate_sampling(params)
