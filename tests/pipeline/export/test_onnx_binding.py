"""ONNX Runtime with IO binding: same codes as the numpy path, cache preallocated once per generation."""

from __future__ import annotations

import numpy as np
import pytest

from musicgen_ops.pipeline.inference.base import SamplingParams

from .conftest import PROMPTS


@pytest.fixture(scope="module")
def unbound(exported):
    from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine

    return ONNXInferenceEngine(exported.root, io_binding=False, spin_threads=False)


@pytest.mark.parametrize(
    "sampling",
    [
        SamplingParams(do_sample=False),
        SamplingParams(seed=7, top_k=50),
        SamplingParams(guidance_scale=1.0, seed=3),
    ],
    ids=["greedy", "sampled", "no-guidance"],
)
def test_bound_and_unbound_decoding_agree(onnx_engine, unbound, sampling):
    assert onnx_engine.io_binding and not unbound.io_binding
    bound = onnx_engine.generate(PROMPTS, num_frames=9, sampling=sampling)
    plain = unbound.generate(PROMPTS, num_frames=9, sampling=sampling)
    np.testing.assert_array_equal(bound.codes, plain.codes)
    np.testing.assert_allclose(bound.audio, plain.audio, rtol=0, atol=1e-6)


def test_cache_buffers_are_allocated_once_and_reused(onnx_engine):
    from musicgen_ops.pipeline.inference.onnx_binding import BoundDecoderState

    tokens = onnx_engine.processor(text=PROMPTS, padding=True, return_tensors="np")
    ids, mask = tokens["input_ids"].astype(np.int64), tokens["attention_mask"].astype(np.int64)
    hidden = onnx_engine.run_text_encoder(ids, mask)
    steps = 6
    state = onnx_engine.open_decoder(hidden, mask, steps)
    assert isinstance(state, BoundDecoderState)
    c = onnx_engine.constants
    pointers = {v.data_ptr() for layer in state.cache for pair in layer for v in pair}
    assert len(pointers) == 4 * c.num_layers
    assert all(
        v.shape() == [2 * c.num_heads * steps * c.head_dim]
        for layer in state.cache
        for pair in layer
        for v in pair
    )
    # The same logits as the numpy path, step by step.
    from musicgen_ops.pipeline.inference.onnx_engine import NumpyDecoderState

    reference = NumpyDecoderState(onnx_engine, hidden, mask)
    feed = np.full((2, c.num_codebooks, 1), c.bos_token_id, dtype=np.int64)
    for _ in range(steps):
        have, want = state.run(feed), reference.run(feed)
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5)
        feed = np.argmax(want[:, :, -1], axis=-1)[..., None].astype(np.int64)
    assert {v.data_ptr() for layer in state.cache for pair in layer for v in pair} == pointers
