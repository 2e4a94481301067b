"""ONNX Runtime generation against transformers' generate() on the tiny model with a merged LoRA adapter."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from musicgen_ops.pipeline.inference.base import GenerationEngine, SamplingParams

from .conftest import PROMPTS, hf_generate

MAX_NEW_TOKENS = 16  # -> 16 - 4 + 1 = 13 frames


@pytest.mark.parametrize("guidance_scale", [3.0, 1.0], ids=["guidance", "no-guidance"])
def test_greedy_codes_and_audio_match_transformers(onnx_engine, merged_model, lora_model, guidance_scale):
    codes, audio = hf_generate(merged_model, lora_model.processor, PROMPTS, MAX_NEW_TOKENS, guidance_scale)
    out = onnx_engine.generate(
        PROMPTS,
        num_frames=codes.shape[-1],
        sampling=SamplingParams(guidance_scale=guidance_scale, do_sample=False),
    )
    assert out.codes.shape == codes.shape == (2, 4, MAX_NEW_TOKENS - 3)
    np.testing.assert_array_equal(out.codes, codes)
    assert out.audio.shape == audio.shape == (2, codes.shape[-1] * 640)
    np.testing.assert_allclose(out.audio, audio, atol=1e-4)
    assert out.sample_rate == 32000 and set(out.timings) == {"encode", "decode", "codec"}


def test_lora_adapter_changes_the_codes(onnx_engine, lora_model):
    """The exported model is the adapted one: the base model (adapter disabled) generates other codes."""
    with lora_model.peft.disable_adapter():
        base_codes, _ = hf_generate(lora_model.peft.base_model.model, lora_model.processor, PROMPTS, 12, 3.0)
    out = onnx_engine.generate(PROMPTS, num_frames=9, sampling=SamplingParams(do_sample=False))
    assert not np.array_equal(out.codes, base_codes)


def test_int8_variant_has_right_length_and_bounded_difference(exported, onnx_engine):
    from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine

    int8 = ONNXInferenceEngine(exported.root, precision="int8")
    assert int8.precision == "int8" and onnx_engine.precision == "fp32"
    params = SamplingParams(do_sample=False)
    out8 = int8.generate(PROMPTS, num_frames=10, sampling=params)
    out32 = onnx_engine.generate(PROMPTS, num_frames=10, sampling=params)
    assert out8.audio.shape == out32.audio.shape == (2, 6400)
    assert np.isfinite(out8.audio).all()
    # First-step logits: INT8 weights perturb them only slightly.
    tokens = onnx_engine.processor(text=PROMPTS, padding=True, return_tensors="np")
    ids, mask = tokens["input_ids"].astype(np.int64), tokens["attention_mask"].astype(np.int64)
    start = np.full((2, 4, 1), 2048, dtype=np.int64)
    logits32 = onnx_engine.run_decoder_init(start, onnx_engine.run_text_encoder(ids, mask), mask)[0]
    logits8 = int8.run_decoder_init(start, int8.run_text_encoder(ids, mask), mask)[0]
    relative = np.abs(logits8 - logits32).max() / np.abs(logits32).max()
    assert relative < 0.1
    # Same codes through both codec graphs: the waveform differs by a bounded amount.
    wave8 = int8.run_audio_decoder(out32.codes)
    assert np.abs(wave8 - out32.audio).max() <= 0.1 * max(np.abs(out32.audio).max(), 1e-3)


def test_seeded_sampling_is_reproducible(onnx_engine):
    params = SamplingParams(guidance_scale=3.0, temperature=1.0, top_k=50, do_sample=True, seed=7)
    first = onnx_engine.generate(PROMPTS[:1], num_frames=8, sampling=params)
    second = onnx_engine.generate(PROMPTS[:1], num_frames=8, sampling=params)
    other = onnx_engine.generate(
        PROMPTS[:1], num_frames=8, sampling=SamplingParams(top_k=50, do_sample=True, seed=8)
    )
    np.testing.assert_array_equal(first.codes, second.codes)
    np.testing.assert_array_equal(first.audio, second.audio)
    assert not np.array_equal(first.codes, other.codes)


def test_convenience_generate_audio(onnx_engine):
    audio = onnx_engine.generate_audio(
        "slow jazz", duration_seconds=0.2, guidance_scale=3.0, seed=1, top_k=20
    )
    assert audio.shape == (10 * 640,) and audio.dtype == np.float32
    greedy = onnx_engine.generate_audio("slow jazz", max_length=12, do_sample=False)
    assert greedy.shape == (9 * 640,)
    with pytest.raises(ValueError, match="exactly one"):
        onnx_engine.generate_audio("x")


def test_engine_protocol_and_bad_input(onnx_engine):
    assert isinstance(onnx_engine, GenerationEngine)
    with pytest.raises(ValueError, match="batch=1"):
        onnx_engine.generate(["x"], num_frames=4, prefix_codes=np.zeros((2, 4, 3), np.int64))
    with pytest.raises(ValueError, match="num_frames"):
        onnx_engine.generate(["x"], num_frames=0)
    with pytest.raises(ValueError, match="num_frames"):
        onnx_engine.generate(["x"], num_frames=5000)
    with pytest.raises(ValueError, match="temperature"):
        onnx_engine.generate(["x"], num_frames=4, sampling=SamplingParams(temperature=0.0))
    with pytest.raises(ValueError, match="prompts"):
        onnx_engine.generate([], num_frames=4)


def test_engine_accepts_onnx_folder_and_falls_back_to_cpu(exported, caplog):
    from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine

    with caplog.at_level(logging.INFO, logger="musicgen_ops.pipeline.inference.onnx_engine"):
        engine = ONNXInferenceEngine(exported.root / "onnx", use_gpu=True)
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert engine.providers == ["CPUExecutionProvider"]
        assert "running on CPU" in caplog.text


def test_engine_reports_missing_export(tmp_path):
    from musicgen_ops.pipeline.errors import ModelNotAvailableError
    from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine

    with pytest.raises(ModelNotAvailableError, match="descriptor.json"):
        ONNXInferenceEngine(tmp_path)
