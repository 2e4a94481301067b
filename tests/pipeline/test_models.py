"""The model factory builds a MusicGen that behaves like musicgen-small, and loading fails clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicgen_ops.pipeline.errors import ModelNotAvailableError
from musicgen_ops.pipeline.models import load_base_model
from musicgen_ops.pipeline.presets import build_random_musicgen


def test_tiny_model_has_musicgen_small_layout(tiny_model):
    config = tiny_model.model.config
    assert tiny_model.sample_rate == 32_000
    assert tiny_model.frame_rate == 50
    assert tiny_model.num_codebooks == 4
    assert config.audio_encoder.codebook_size == 2048
    assert config.decoder.pad_token_id == 2048
    assert tiny_model.model.num_parameters() < 2_000_000


def test_same_seed_same_weights():
    a = build_random_musicgen(seed=3).model.state_dict()
    b = build_random_musicgen(seed=3).model.state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_codec_codes_depend_on_audio(tiny_model):
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(32_000) * 0.2).astype(np.float32)
    inputs = tiny_model.processor(audio=audio, sampling_rate=32_000, return_tensors="pt")
    codes = tiny_model.model.audio_encoder.encode(inputs["input_values"], inputs["padding_mask"]).audio_codes
    assert codes.shape == (1, 1, 4, 50)
    assert len(torch.unique(codes)) > 10


def test_processor_round_trip_through_save_pretrained(tiny_model, tmp_path):
    tiny_model.model.save_pretrained(tmp_path)
    tiny_model.processor.save_pretrained(tmp_path)
    loaded = load_base_model(str(tmp_path))
    text = ["rock song with drums, 120 bpm"]
    ids = tiny_model.processor(text=text, return_tensors="pt")["input_ids"]
    assert torch.equal(loaded.processor(text=text, return_tensors="pt")["input_ids"], ids)
    assert ids.shape[1] < 15  # words are tokens, not characters


def test_generate_produces_audio(tiny_model):
    inputs = tiny_model.processor(text=["jazz piano", "rock"], padding=True, return_tensors="pt")
    with torch.no_grad():
        audio = tiny_model.model.generate(**inputs, max_new_tokens=10, do_sample=False)
    assert audio.shape[:2] == (2, 1)
    assert audio.shape[-1] > 0


def test_missing_model_gives_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="tiny-random"):
        load_base_model("facebook/musicgen-nonexistent", local_files_only=True)
    with pytest.raises(ModelNotAvailableError, match="config.json"):
        load_base_model(str(tmp_path))
