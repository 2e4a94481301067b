"""Issue 19: the fast engine's step fused by ``torch.compile`` (``compile_step``) decodes exactly as the
unfused step and as Hugging Face ``generate()`` (greedy, float32, CPU), with fewer operators per step;
without a C compiler, or when compiling fails, it runs unfused and says so.

Compiling takes a few seconds per bucket once inductor's on-disk cache is warm (the first compile in a
fresh cache can take a minute on a busy CPU), so the fused engine is built once per module, one bucket.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from musicgen_ops.pipeline.inference import step_fusion
from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.inference.fast_engine import (
    FastEngineConfig,
    FastEngineError,
    FastGenerationEngine,
)
from tests.pipeline.inference.test_fast_engine import GREEDY, PROMPTS, hf_greedy

ONE_BUCKET = {"batch_buckets": (2,), "length_buckets_s": (1.0,), "text_buckets": (16,)}
VIEW_OPS = {"aten::alias", "aten::view", "aten::t", "aten::reshape", "aten::slice", "aten::squeeze"}
VIEW_OPS |= {"aten::unsqueeze", "aten::unbind", "aten::select", "aten::expand", "aten::as_strided"}
VIEW_OPS |= {"aten::transpose", "aten::permute", "aten::empty", "aten::empty_strided", "aten::set_"}

needs_compiler = pytest.mark.skipif(
    step_fusion.compiler_missing() is not None,
    reason=f"inductor needs a C compiler: {step_fusion.compiler_missing()}",
)


@pytest.fixture(scope="module")
def fused_and_report(tiny_model) -> tuple[FastGenerationEngine, dict[str, float]]:
    if step_fusion.compiler_missing() is not None:
        pytest.skip(f"inductor needs a C compiler: {step_fusion.compiler_missing()}")
    import torch._inductor.config as inductor_config

    engine = FastGenerationEngine(
        tiny_model, device="cpu", config=FastEngineConfig(**ONE_BUCKET, compile_step=True)
    )
    # The fused kernels record profiler events (for the operator count below); the math is unchanged.
    with inductor_config.patch({"cpp.enable_kernel_profile": True}):
        report = engine.warmup()
    return engine, report


@pytest.fixture
def fused(fused_and_report) -> FastGenerationEngine:
    return fused_and_report[0]


@needs_compiler
def test_fused_greedy_matches_hf_generate_and_the_unfused_step(fused_and_report, tiny_model):
    fused, report = fused_and_report
    assert report["compiled"] == 2 and report["compile_seconds"] > 0  # one window x (topk, sort)
    assert fused.workspace.run_step.active and fused.fixed_windows
    ref_codes, _ = hf_greedy(tiny_model.model, tiny_model.processor, PROMPTS, 40, 3.0)
    out = fused.generate(PROMPTS, num_frames=40, sampling=GREEDY, decode=False)
    np.testing.assert_array_equal(out.codes, ref_codes)
    unfused = FastGenerationEngine(tiny_model, device="cpu", config=FastEngineConfig(**ONE_BUCKET))
    for params in (SamplingParams(seed=5), SamplingParams(seed=5, top_k=0, top_p=0.9)):
        a = fused.generate(PROMPTS, num_frames=40, sampling=params, decode=False)
        b = unfused.generate(PROMPTS, num_frames=40, sampling=params, decode=False)
        np.testing.assert_array_equal(a.codes, b.codes)
    # A code prefix (one causal prefill, unfused) continues with the fused step: its own next frames.
    cont = fused.generate(
        PROMPTS, num_frames=20, sampling=GREEDY, prefix_codes=out.codes[..., :20], decode=False
    )
    np.testing.assert_array_equal(cont.codes, out.codes[..., 20:40])
    assert fused.workspace.run_step.late_compiles == 0  # warmup() compiled every bucket


def _operators_per_step(engine: FastGenerationEngine) -> int:
    """Operators that do work in one step (outermost aten ops other than views, and fused kernels)."""
    from torch.profiler import ProfilerActivity, profile

    ws = engine.workspace
    ws.ensure(2, 64)
    buf = ws.buffers(2)
    with torch.inference_mode():
        ws.reset(buf, num_frames=40, sampling=SamplingParams(seed=0))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            ws.run_step(ws.weights, buf, 64, 16, ws.attention, ws.candidates)
    count = 0
    for e in prof.events():
        if not (e.name.startswith("aten::") or "cpp_fused" in e.name) or e.name in VIEW_OPS:
            continue
        parent = e.cpu_parent  # count the outermost aten op of a call only (linear, not t + mm)
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        count += parent is None
    return count


@needs_compiler
def test_fused_step_runs_fewer_operators(fused, tiny_model):
    unfused = FastGenerationEngine(tiny_model, device="cpu", config=FastEngineConfig(**ONE_BUCKET))
    eager_ops, fused_ops = _operators_per_step(unfused), _operators_per_step(fused)
    assert 0 < fused_ops < eager_ops / 2, (fused_ops, eager_ops)


def test_without_a_c_compiler_the_step_runs_unfused(tiny_model, monkeypatch, caplog):
    monkeypatch.setattr(step_fusion, "compiler_missing", lambda: "no C compiler (cc, gcc or clang) on PATH")
    with caplog.at_level(logging.WARNING, logger=step_fusion.__name__):
        engine = FastGenerationEngine(
            tiny_model, device="cpu", config=FastEngineConfig(**ONE_BUCKET, compile_step=True)
        )
    assert not engine.workspace.run_step.active and not engine.fixed_windows
    assert "step fusion off, running the step unfused: no C compiler" in caplog.text
    assert engine.warmup()["compiled"] == 0
    assert engine.generate(PROMPTS, num_frames=5, sampling=GREEDY, decode=False).codes.shape == (2, 4, 5)


def test_a_failed_compilation_falls_back_to_the_unfused_step(tiny_model, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("inductor exploded")

    monkeypatch.setattr(step_fusion, "compiler_missing", lambda: None)
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: broken)
    engine = FastGenerationEngine(
        tiny_model, device="cpu", config=FastEngineConfig(**ONE_BUCKET, compile_step=True)
    )
    plain = FastGenerationEngine(tiny_model, device="cpu", config=FastEngineConfig(**ONE_BUCKET))
    with caplog.at_level(logging.ERROR, logger=step_fusion.__name__):
        out = engine.generate(PROMPTS, num_frames=20, sampling=GREEDY, decode=False)
    assert "compiling the step failed, running it unfused from now on: inductor exploded" in caplog.text
    assert not engine.workspace.run_step.active
    np.testing.assert_array_equal(
        out.codes, plain.generate(PROMPTS, num_frames=20, sampling=GREEDY, decode=False).codes
    )


def test_compile_mode_is_checked():
    with pytest.raises(FastEngineError, match="compile_mode must be one of default, max-autotune"):
        FastEngineConfig(compile_mode="reduce-overhead")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_replay_the_fused_step(fresh_tiny_model):
    config = {"batch_buckets": (1, 2), "length_buckets_s": (1.0, 2.0), "text_buckets": (16,)}
    fused = FastGenerationEngine(
        fresh_tiny_model, device="cuda", dtype="float32", config=FastEngineConfig(**config, compile_step=True)
    )
    report = fused.warmup()
    assert report["graphs"] == report["compiled"] == 2 * 2 * 2  # batch buckets x windows x samplers
    unfused = FastGenerationEngine(
        fresh_tiny_model, device="cuda", dtype="float32", config=FastEngineConfig(**config, cuda_graphs=False)
    )
    for params in (GREEDY, SamplingParams(seed=5)):
        a = fused.generate(PROMPTS, num_frames=70, sampling=params, decode=False)
        fused.workspace.use_graphs = False  # the same compiled step, its kernels launched one by one
        try:
            b = fused.generate(PROMPTS, num_frames=70, sampling=params, decode=False)
        finally:
            fused.workspace.use_graphs = True
        np.testing.assert_array_equal(a.codes, b.codes)
    # Triton's kernels round differently from eager CUDA ops: greedy may flip a rare near-tie.
    c = unfused.generate(PROMPTS, num_frames=70, sampling=GREEDY, decode=False).codes
    assert (fused.generate(PROMPTS, num_frames=70, sampling=GREEDY, decode=False).codes == c).mean() > 0.9
    assert fused.late_captures == 0 and fused.workspace.run_step.late_compiles == 0
