"""Logits processing shared by the exported-model engines, in numpy (framework-neutral).

Mirrors what ``transformers`` applies in ``MusicgenForConditionalGeneration.generate``, in the same order:
classifier-free guidance (``uncond + (cond - uncond) * scale``, only when ``scale > 1``), then temperature,
top-k and top-p, then greedy argmax or seeded multinomial sampling. With greedy decoding the codes equal
transformers' exactly (given equal logits); sampled codes are reproducible for a seed but use numpy's
generator, so they differ from torch's sampling for the same seed.
"""

from __future__ import annotations

import numpy as np

from musicgen_ops.pipeline.inference.base import SamplingParams


def validate_sampling(params: SamplingParams) -> None:
    """Raise ``ValueError`` naming the field when a sampling setting is out of range."""
    if params.guidance_scale < 0:
        raise ValueError(
            f"guidance_scale must be >= 0 (1 or less disables guidance), got {params.guidance_scale}"
        )
    if params.do_sample and not params.temperature > 0:
        raise ValueError(f"temperature must be > 0 when sampling, got {params.temperature}")
    if params.top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 disables it), got {params.top_k}")
    if not 0.0 <= params.top_p <= 1.0:
        raise ValueError(f"top_p must be within [0, 1] (0 or 1 disables it), got {params.top_p}")


def uses_guidance(params: SamplingParams) -> bool:
    """Whether the batch is doubled with an unconditional half (transformers does so for scale > 1)."""
    return params.guidance_scale is not None and params.guidance_scale > 1


def classifier_free_guidance(logits: np.ndarray, scale: float) -> np.ndarray:
    """Combine ``[2 * n, ...]`` logits (conditional half first) into ``[n, ...]`` guided scores."""
    half = logits.shape[0] // 2
    cond, uncond = logits[:half], logits[half:]
    return uncond + (cond - uncond) * np.float32(scale)


def top_k_filter(scores: np.ndarray, top_k: int) -> np.ndarray:
    """Set every score below the k-th largest (per row) to ``-inf``; ties with the k-th are kept."""
    top_k = min(top_k, scores.shape[-1])
    kth = np.partition(scores, -top_k, axis=-1)[..., -top_k, None]
    return np.where(scores < kth, -np.inf, scores)


def top_p_filter(scores: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the smallest set of tokens whose probability reaches ``top_p`` (at least one)."""
    order = np.argsort(scores, axis=-1)  # ascending, as transformers' TopPLogitsWarper
    sorted_scores = np.take_along_axis(scores, order, axis=-1)
    cumulative = np.cumsum(softmax(sorted_scores), axis=-1)
    remove_sorted = cumulative <= 1 - top_p
    remove_sorted[..., -1] = False
    remove = np.zeros_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)
    return np.where(remove, -np.inf, scores)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis (``-inf`` entries get probability 0)."""
    shifted = scores - np.max(scores, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=-1, keepdims=True)


def process_logits(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """Guidance (when on), then temperature, top-k and top-p (when sampling), on float32 logits."""
    scores = logits.astype(np.float32, copy=False)
    if uses_guidance(params):
        scores = classifier_free_guidance(scores, params.guidance_scale)
    if not params.do_sample:
        return scores
    if params.temperature != 1.0:
        scores = scores / np.float32(params.temperature)
    if params.top_k > 0:
        scores = top_k_filter(scores, params.top_k)
    if 0.0 < params.top_p < 1.0:
        scores = top_p_filter(scores, params.top_p)
    return scores


def select_tokens(scores: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> np.ndarray:
    """Greedy argmax, or one multinomial draw per row from ``softmax(scores)`` with ``rng``."""
    if not params.do_sample:
        return np.argmax(scores, axis=-1).astype(np.int64)
    probs = softmax(scores.astype(np.float64))
    cumulative = np.cumsum(probs, axis=-1)
    draws = rng.random(cumulative.shape[:-1])[..., None] * cumulative[..., -1:]
    picked = np.sum(cumulative <= draws, axis=-1)
    return np.minimum(picked, scores.shape[-1] - 1).astype(np.int64)


def make_rng(seed: int | None) -> np.random.Generator:
    """numpy generator for sampling; ``None`` seeds from the OS."""
    return np.random.default_rng(seed)
