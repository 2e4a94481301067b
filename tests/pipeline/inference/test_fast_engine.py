"""The fast engine: same codes and audio as Hugging Face ``generate()``, seeded sampling, buckets, errors.

Everything runs eagerly on CPU with the tiny random model; the ``gpu`` tests (skipped without CUDA)
check that the captured CUDA graphs reproduce the eager step.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from musicgen_ops.pipeline.codes import revert_delay_pattern
from musicgen_ops.pipeline.inference.base import GenerationEngine, SamplingParams
from musicgen_ops.pipeline.inference.fast_engine import (
    FastEngineConfig,
    FastEngineError,
    FastGenerationEngine,
)
from musicgen_ops.pipeline.inference.static_decoder import choose_tokens

PROMPTS = ["upbeat jazz piano", "dark ambient pad with strings and choir"]
GREEDY = SamplingParams(do_sample=False, guidance_scale=3.0)
# Length buckets of 1 s and 2 s: cache windows of 64 and 128 slots, so a 70-frame request crosses both.
SMALL = FastEngineConfig(batch_buckets=(1, 2, 4), length_buckets_s=(1.0, 2.0), text_buckets=(16, 32))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's ops are microseconds long: one intra-op thread avoids contention on busy CPUs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def engine(tiny_model) -> FastGenerationEngine:
    return FastGenerationEngine(tiny_model, device="cpu", config=SMALL)


def hf_greedy(model, processor, prompts, num_frames, guidance):
    """Hugging Face greedy codes ``[B, K, frames]`` and audio ``[B, samples]`` for the same request.

    With ``return_dict_in_generate`` the ``sequences`` field holds the decoded audio; the codes are the
    argmax of the processed scores (guidance applied), one row per (prompt, codebook), step ``s``
    giving delayed index ``s`` (the start token is not scored).
    """
    k = model.config.decoder.num_codebooks
    inputs = processor(text=prompts, padding=True, return_tensors="pt").to(model.device)
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            do_sample=False,
            guidance_scale=guidance,
            max_new_tokens=num_frames + k - 1,
            return_dict_in_generate=True,
            output_scores=True,
        )
    delayed = torch.stack(out.scores).argmax(-1)  # [steps, B * K]
    delayed = delayed.view(len(out.scores), len(prompts), k).permute(1, 2, 0)
    return revert_delay_pattern(delayed).cpu().numpy(), out.sequences[:, 0].float().cpu().numpy()


@pytest.mark.parametrize(("guidance", "num_frames"), [(3.0, 70), (1.0, 20)])
def test_greedy_matches_hf_generate_codes_and_audio(engine, tiny_model, guidance, num_frames):
    ref_codes, ref_audio = hf_greedy(tiny_model.model, tiny_model.processor, PROMPTS, num_frames, guidance)
    out = engine.generate(
        PROMPTS, num_frames=num_frames, sampling=SamplingParams(do_sample=False, guidance_scale=guidance)
    )
    assert out.codes.shape == (2, 4, num_frames)
    np.testing.assert_array_equal(out.codes, ref_codes)
    assert out.audio.shape == (2, num_frames * 640) and out.audio.dtype == np.float32
    np.testing.assert_allclose(out.audio, ref_audio[:, : out.audio.shape[1]], atol=1e-6)
    assert out.sample_rate == 32_000
    assert out.timings["steps"] == num_frames + 3


def test_engine_implements_protocol(engine):
    assert isinstance(engine, GenerationEngine)
    assert engine.frame_rate == 50 and engine.sample_rate == 32_000
    assert engine.max_frames == 100
    assert engine.windows == [64, 128]


def test_sampling_is_deterministic_for_a_seed(engine):
    params = SamplingParams(seed=7, top_k=50, temperature=1.0)
    first = engine.generate(PROMPTS, num_frames=12, sampling=params)
    again = engine.generate(PROMPTS, num_frames=12, sampling=params)
    other = engine.generate(PROMPTS, num_frames=12, sampling=SamplingParams(seed=8, top_k=50))
    np.testing.assert_array_equal(first.codes, again.codes)
    np.testing.assert_array_equal(first.audio, again.audio)
    assert not np.array_equal(first.codes, other.codes)
    # Prompt i is seeded with seed + i: prompt 1 alone with seed 8 reproduces its row.
    alone = engine.generate(PROMPTS[1:], num_frames=12, sampling=SamplingParams(seed=8, top_k=50))
    np.testing.assert_array_equal(alone.codes[0], first.codes[1])
    greedy = engine.generate(PROMPTS, num_frames=12, sampling=GREEDY)
    assert not np.array_equal(first.codes, greedy.codes)


def test_top_k_one_and_tiny_top_p_sample_the_greedy_codes(engine):
    greedy = engine.generate(PROMPTS, num_frames=10, sampling=GREEDY).codes
    for params in (
        SamplingParams(seed=3, top_k=1, temperature=5.0),
        SamplingParams(seed=3, top_k=0, top_p=1e-9),
    ):
        np.testing.assert_array_equal(engine.generate(PROMPTS, num_frames=10, sampling=params).codes, greedy)


def test_stream_chunks_add_up_to_the_generated_audio(engine):
    params = SamplingParams(seed=11, top_k=50)
    whole = engine.generate(PROMPTS, num_frames=60, sampling=params).audio
    chunks = list(
        engine.generate_stream(PROMPTS, num_frames=60, sampling=params, chunk_frames=20, lookahead_frames=8)
    )
    # Frames 20 and 40 complete: audio up to 8 frames before each, then the rest at the end.
    assert [c.shape[1] // 640 for c in chunks] == [12, 20, 28]
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), whole, atol=1e-5)
    with pytest.raises(FastEngineError, match="chunk_frames"):
        next(engine.generate_stream(PROMPTS, num_frames=10, chunk_frames=0))


def test_decode_step_has_no_host_synchronisation(tiny_model):
    """TorchDynamo traces the whole step as one graph: no ``.item()``/``.cpu()``, no data-dependent
    Python branch or shape (what CUDA-graph capture needs, checked without a GPU)."""
    from musicgen_ops.pipeline.inference.static_decoder import decode_step

    config = FastEngineConfig(batch_buckets=(2,), length_buckets_s=(1.0,), text_buckets=(16,))
    engine = FastGenerationEngine(tiny_model, device="cpu", config=config)
    engine.warmup()
    ws, traced = engine.workspace, torch.compile(decode_step, fullgraph=True, backend="eager", dynamic=False)
    buf = ws.buffers(2)
    with torch.inference_mode():
        ws.reset(buf, num_frames=5, sampling=SamplingParams(seed=0))
        for _ in range(3):
            traced(engine.weights, buf, 64, 16, "sdpa")
        assert buf.position.tolist() == [3]
        assert (buf.codes[:, 0, :3] != 2048).all() and (buf.codes[:, 3, :3] == 2048).all()


def _sampling_buffers(batch: int, vocab: int, **settings) -> SimpleNamespace:
    """The fields :func:`choose_tokens` reads, for ``batch`` rows of one codebook."""
    gen = torch.Generator().manual_seed(0)
    noise = torch.empty((batch, 1, 1, vocab)).exponential_(generator=gen)
    values = dict(guidance=3.0, use_guidance=False, do_sample=True, temperature=1.0, top_p=2.0)
    values.update(settings)
    top_k = values.pop("top_k", vocab)
    return SimpleNamespace(
        batch=batch,
        position=torch.zeros(1, dtype=torch.long),
        noise=noise,
        noise_window=1,
        top_k_index=torch.tensor([top_k - 1]),
        **{k: torch.tensor(v) for k, v in values.items()},
    )


def _frequencies(tokens: torch.Tensor, vocab: int) -> np.ndarray:
    return np.bincount(tokens.flatten().numpy(), minlength=vocab) / tokens.numel()


def test_choose_tokens_samples_the_filtered_distribution():
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1])
    logits = probs.log().expand(4000, 1, 4)
    logits = torch.cat([logits, torch.zeros_like(logits)])  # unconditional rows (unused without guidance)
    freq = _frequencies(choose_tokens(logits, _sampling_buffers(4000, 4)), 4)
    np.testing.assert_allclose(freq, probs.numpy(), atol=0.03)
    freq = _frequencies(choose_tokens(logits, _sampling_buffers(4000, 4, top_k=2)), 4)
    np.testing.assert_allclose(freq, [4 / 7, 3 / 7, 0, 0], atol=0.03)
    # Nucleus: the smallest set of most likely tokens holding at least top_p of the mass.
    freq = _frequencies(choose_tokens(logits, _sampling_buffers(4000, 4, top_p=0.65)), 4)
    np.testing.assert_allclose(freq, [4 / 7, 3 / 7, 0, 0], atol=0.03)
    freq = _frequencies(choose_tokens(logits, _sampling_buffers(4000, 4, top_p=0.75)), 4)
    np.testing.assert_allclose(freq, [4 / 9, 3 / 9, 2 / 9, 0], atol=0.03)
    freq = _frequencies(choose_tokens(logits, _sampling_buffers(4000, 4, temperature=1e-3)), 4)
    np.testing.assert_allclose(freq, [1, 0, 0, 0])


def test_choose_tokens_applies_guidance_like_hf():
    cond = torch.tensor([[[0.0, 1.0, 0.5]]])
    uncond = torch.tensor([[[0.0, 1.2, 0.0]]])
    logits = torch.cat([cond, uncond])
    # guided = uncond + 3 * (cond - uncond) = [0, 0.6, 1.5]: argmax 2; unguided argmax 1.
    assert choose_tokens(logits, _sampling_buffers(1, 3, use_guidance=True, do_sample=False)).item() == 2
    assert choose_tokens(logits, _sampling_buffers(1, 3, do_sample=False)).item() == 1


def test_lora_adapter_is_merged(fresh_tiny_model):
    from peft import LoraConfig, get_peft_model

    from musicgen_ops.pipeline.models import LoadedModel

    base_codes = FastGenerationEngine(fresh_tiny_model, device="cpu", config=SMALL).generate(
        PROMPTS[:1], num_frames=8, sampling=GREEDY
    )
    peft_model = get_peft_model(fresh_tiny_model.model, LoraConfig(r=4, target_modules=["fc1", "fc2"]))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5, generator=torch.Generator().manual_seed(1))
    merged = copy.deepcopy(peft_model).merge_and_unload()
    ref_codes, _ = hf_greedy(merged, fresh_tiny_model.processor, PROMPTS[:1], 8, 3.0)
    loaded = LoadedModel(model=peft_model, processor=fresh_tiny_model.processor, name="lora")
    out = FastGenerationEngine(loaded, device="cpu", config=SMALL).generate(
        PROMPTS[:1], num_frames=8, sampling=GREEDY
    )
    np.testing.assert_array_equal(out.codes, ref_codes)
    assert not np.array_equal(out.codes, base_codes.codes)


def test_large_batches_are_split_into_the_largest_bucket(tiny_model):
    engine = FastGenerationEngine(tiny_model, device="cpu", config=FastEngineConfig(batch_buckets=(1, 2)))
    out = engine.generate(["a", "b", "c"], num_frames=5, sampling=GREEDY)
    assert out.codes.shape == (3, 4, 5) and out.audio.shape == (3, 5 * 640)
    assert engine.batch_sizes == [2, 1]


def test_warmup_on_cpu_allocates_and_runs_every_bucket(tiny_model):
    engine = FastGenerationEngine(tiny_model, device="cpu", config=SMALL)
    report = engine.warmup()
    assert report["graphs"] == 0 and report["seconds"] > 0
    assert engine.memory_bytes > 0
    out = engine.generate(PROMPTS, num_frames=4, sampling=GREEDY)
    assert out.codes.shape == (2, 4, 4)


def test_bad_requests_raise_clear_errors(engine):
    with pytest.raises(FastEngineError, match=r"num_frames=200 is outside 1\.\.125.*2\.0 s"):
        engine.generate(PROMPTS, num_frames=200)
    with pytest.raises(FastEngineError, match="num_frames=0"):
        engine.generate(PROMPTS, num_frames=0)
    with pytest.raises(FastEngineError, match="longest prompt bucket"):
        engine.generate(["piano " * 40], num_frames=4)
    with pytest.raises(FastEngineError, match="temperature must be > 0"):
        engine.generate(PROMPTS, num_frames=4, sampling=SamplingParams(temperature=0.0))
    with pytest.raises(FastEngineError, match="top_p"):
        engine.generate(PROMPTS, num_frames=4, sampling=SamplingParams(top_p=1.5))
    with pytest.raises(FastEngineError, match="2 prompts"):
        engine.generate(PROMPTS, num_frames=4, seeds=[1])
    with pytest.raises(ValueError, match="batch=2"):
        engine.generate(PROMPTS, num_frames=4, prefix_codes=np.zeros((1, 4, 3), np.int64))
    with pytest.raises(FastEngineError, match="60 prefix frames"):  # 60 + 70 frames exceed 2 s
        engine.generate(PROMPTS, num_frames=70, prefix_codes=np.zeros((2, 4, 60), np.int64))


def test_bad_configs_and_models_are_refused(tiny_model):
    with pytest.raises(FastEngineError, match="batch_buckets"):
        FastEngineConfig(batch_buckets=())
    with pytest.raises(FastEngineError, match="attention"):
        FastEngineConfig(attention="flash")
    with pytest.raises(FastEngineError, match="CUDA device"):
        FastGenerationEngine(tiny_model, device="cpu", config=FastEngineConfig(cuda_graphs=True))
    with pytest.raises(FastEngineError, match="unknown dtype"):
        FastGenerationEngine(tiny_model, device="cpu", dtype="int8")
    from musicgen_ops.pipeline.models import LoadedModel

    with pytest.raises(FastEngineError, match="MusicgenForConditionalGeneration"):
        FastGenerationEngine(LoadedModel(torch.nn.Linear(2, 2), tiny_model.processor, "x"), device="cpu")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_half_precision_decodes_finite_audio(tiny_model, dtype, attention):
    config = FastEngineConfig(batch_buckets=(2,), length_buckets_s=(1.0,), attention=attention)
    engine = FastGenerationEngine(tiny_model, device="cpu", dtype=dtype, config=config)
    assert engine.weights.embed.dtype == getattr(torch, dtype)
    out = engine.generate(PROMPTS, num_frames=12, sampling=SamplingParams(seed=0))
    assert out.codes.min() >= 0 and out.codes.max() < 2048
    assert np.isfinite(out.audio).all() and out.audio.dtype == np.float32


def test_math_attention_matches_sdpa(tiny_model, engine):
    math_engine = FastGenerationEngine(
        tiny_model, device="cpu", config=FastEngineConfig(length_buckets_s=(1.0,), attention="math")
    )
    expected = engine.generate(PROMPTS, num_frames=10, sampling=GREEDY).codes
    np.testing.assert_array_equal(
        math_engine.generate(PROMPTS, num_frames=10, sampling=GREEDY).codes, expected
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_replay_the_eager_step(fresh_tiny_model):
    graphs = FastGenerationEngine(fresh_tiny_model, device="cuda", dtype="float32", config=SMALL)
    report = graphs.warmup()
    assert report["graphs"] == 3 * 2 * 2 * 2  # batch buckets x text buckets x windows x samplers
    eager = FastGenerationEngine(
        fresh_tiny_model,
        device="cuda",
        dtype="float32",
        config=FastEngineConfig(batch_buckets=(1, 2, 4), length_buckets_s=(1.0, 2.0), cuda_graphs=False),
    )
    for params in (GREEDY, SamplingParams(seed=5), SamplingParams(seed=5, top_k=0, top_p=0.9)):
        a = graphs.generate(PROMPTS, num_frames=70, sampling=params)
        b = eager.generate(PROMPTS, num_frames=70, sampling=params)
        np.testing.assert_array_equal(a.codes, b.codes)
    assert graphs.late_captures == 0 and graphs.captures == report["graphs"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_continue_a_code_prefix_as_the_eager_step(fresh_tiny_model):
    graphs = FastGenerationEngine(fresh_tiny_model, device="cuda", dtype="float32", config=SMALL)
    graphs.warmup()
    eager = FastGenerationEngine(
        fresh_tiny_model,
        device="cuda",
        dtype="float32",
        config=FastEngineConfig(batch_buckets=(1, 2, 4), length_buckets_s=(1.0, 2.0), cuda_graphs=False),
    )
    whole = graphs.generate(PROMPTS, num_frames=70, sampling=GREEDY, seeds=[1, 2])
    prefix = whole.codes[..., :40]
    for params in (GREEDY, SamplingParams(seed=5)):
        a = graphs.generate(PROMPTS, num_frames=30, sampling=params, prefix_codes=prefix, seeds=[3, 4])
        b = eager.generate(PROMPTS, num_frames=30, sampling=params, prefix_codes=prefix, seeds=[3, 4])
        np.testing.assert_array_equal(a.codes, b.codes)
        if params is GREEDY:  # greedy: continuing its own first 40 frames regenerates the next 30
            np.testing.assert_array_equal(a.codes, whole.codes[..., 40:])
    assert graphs.late_captures == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_greedy_matches_hf_generate(fresh_tiny_model):
    fresh_tiny_model.model.to("cuda")
    engine = FastGenerationEngine(fresh_tiny_model, device="cuda", dtype="float32", config=SMALL)
    engine.warmup()
    ref_codes, _ = hf_greedy(fresh_tiny_model.model, fresh_tiny_model.processor, PROMPTS, 70, 3.0)
    out = engine.generate(PROMPTS, num_frames=70, sampling=GREEDY)
    np.testing.assert_array_equal(out.codes, ref_codes)


def test_eager_steps_attend_over_the_filled_slots_only(engine, monkeypatch):
    """Without graphs the attention window follows the position (rounded up to 64), not the bucket."""
    windows: list[int] = []
    step = engine.workspace.step
    monkeypatch.setattr(
        engine.workspace, "step", lambda buf, window, text: (windows.append(window), step(buf, window, text))
    )
    engine.generate(["a"], num_frames=70, sampling=SamplingParams(do_sample=False))
    assert windows == [64] * 64 + [128] * (70 + 3 - 64)
