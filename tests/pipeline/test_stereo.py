"""Stereo MusicGen (8 interleaved codebooks) on the tiny stereo preset: delay pattern, stereo clips,
encoding, one training step, two-channel generation on the torch and fast engines, files and sidecar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from musicgen_ops.contracts.generation import GenerationParameters, GenerationResult
from musicgen_ops.pipeline.audio import AudioDataPreprocessor
from musicgen_ops.pipeline.codes import apply_delay_pattern, delay_span, revert_delay_pattern
from musicgen_ops.pipeline.dataset import MusicGenCollator, MusicGenDataset, encode_audio_files
from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.models import base_model_audio_channels
from musicgen_ops.pipeline.presets import build_random_musicgen

from .audio_fixtures import write

GREEDY = SamplingParams(do_sample=False)
PROMPTS = ["calm piano", "fast rock drums"]


@pytest.fixture(scope="module")
def stereo():
    return build_random_musicgen("tiny-stereo-random")


@pytest.fixture(scope="module")
def stereo_data(tmp_path_factory):
    """Four 1 s stereo clips (right channel half as loud) preprocessed with ``channels=2``."""
    raw = tmp_path_factory.mktemp("stereo-raw")
    for index in range(4):
        write(raw / f"tone{index}.wav", 1.0, 44_100, channels=2, freq=220.0 * (index + 1))
        (raw / f"tone{index}.txt").write_text(["rock drums", "jazz piano"][index % 2])
    out = tmp_path_factory.mktemp("stereo-data")
    AudioDataPreprocessor(target_duration=1.0, channels=2).preprocess_directory(raw, out)
    return out


def test_preset_is_shaped_like_the_stereo_checkpoints(stereo):
    config = stereo.model.config
    assert config.decoder.audio_channels == 2 and config.decoder.num_codebooks == 8
    assert config.audio_encoder.audio_channels == 1  # the mono codec, one pass per channel
    assert stereo.audio_channels == 2 and stereo.num_codebooks == 8
    assert base_model_audio_channels("tiny-stereo-random") == 2
    assert base_model_audio_channels("tiny-random") == 1


def test_stereo_delay_pattern_delays_codebook_pairs_together():
    codes = torch.arange(2 * 8 * 5).view(2, 8, 5)
    delayed = apply_delay_pattern(codes, pad_token_id=-1, channels=2)
    assert delayed.shape == (2, 8, 5 + 3) and delay_span(8, 2) == 3 and delay_span(4) == 3
    for k in range(8):  # left (even) and right (odd) codebook of pair k // 2 share the delay
        assert torch.equal(delayed[:, k, k // 2 : k // 2 + 5], codes[:, k])
        assert (delayed[:, k, : k // 2] == -1).all() and (delayed[:, k, k // 2 + 5 :] == -1).all()
    assert torch.equal(revert_delay_pattern(delayed, channels=2), codes)


def test_preprocessing_keeps_two_channels(stereo_data):
    clips = sorted((stereo_data / "clips").glob("*.wav"))
    audio, rate = sf.read(clips[0], always_2d=True)
    assert rate == 32_000 and audio.shape == (32_000, 2)
    ratio = np.abs(audio[:, 1]).max() / np.abs(audio[:, 0]).max()
    assert ratio == pytest.approx(0.5, rel=0.02)  # the channels stay apart (not averaged)


def test_stereo_clips_encode_into_interleaved_codebooks(stereo, stereo_data):
    clip = sorted((stereo_data / "clips").glob("*.wav"))[0]
    (codes,) = encode_audio_files([clip], stereo.processor, stereo.model)
    assert codes.shape == (8, 50)
    audio, _ = sf.read(clip, dtype="float32", always_2d=True)
    codec = stereo.model.audio_encoder
    with torch.no_grad():
        for channel in (0, 1):  # as transformers encodes a stereo audio prompt: left even, right odd
            values = torch.from_numpy(np.ascontiguousarray(audio[:, channel]))[None, None]
            expected = codec.encode(values, torch.ones(1, values.shape[-1], dtype=torch.long)).audio_codes
            assert torch.equal(codes[channel::2], expected[0, 0])
    assert not torch.equal(codes[0::2], codes[1::2])  # the quieter right channel codes differently


def test_one_training_step_on_stereo_codes(stereo_data, tmp_path):
    from musicgen_ops.pipeline.training import MusicGenLoRATrainer

    trainer = MusicGenLoRATrainer(
        "tiny-stereo-random", loaded=build_random_musicgen("tiny-stereo-random"), lora_dropout=0.0, seed=0
    )
    dataset = MusicGenDataset.from_directory(stereo_data, trainer.processor, model=trainer.loaded.model)
    assert dataset.cache_dir.name.endswith("-stereo")  # never shares a cache with mono codes
    batch = trainer.collator()([dataset[0], dataset[1]])
    assert batch["labels"].shape == (2, 50 + 3, 8)
    before = {k: v.clone() for k, v in trainer.peft_model.state_dict().items() if "lora_B" in k}
    result = trainer.train(
        dataset, None, tmp_path, num_epochs=1, batch_size=4, learning_rate=1e-2, warmup_ratio=0.0,
        lr_scheduler="constant", save_steps=100, val_fraction=0.0,
    )  # fmt: skip
    assert result.steps == 1 and np.isfinite(result.train_loss_per_epoch[0])
    after = trainer.peft_model.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())


def test_collator_masks_padded_frames_per_codebook_pair():
    item = {"input_ids": torch.tensor([5, 6]), "attention_mask": torch.ones(2), "length": 3}
    item["codes"] = torch.arange(8 * 5).view(8, 5)
    labels = MusicGenCollator(0, audio_pad_token_id=2048, audio_channels=2)([item])["labels"][0]
    for k in range(8):  # frames 0..2 are real: steps delay .. delay+2 carry codes, later ones ignored
        delay = k // 2
        assert labels[delay : delay + 3, k].tolist() == item["codes"][k, :3].tolist()
        assert (labels[delay + 3 :, k] == -100).all()


@pytest.fixture(scope="module")
def torch_engine(stereo):
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    return TorchEngine(stereo)


def test_torch_engine_generates_two_channels_as_transformers(stereo, torch_engine):
    out = torch_engine.generate(PROMPTS, num_frames=6, sampling=GREEDY)
    assert out.audio.shape == (2, 2, 6 * 640) and out.codes.shape == (2, 8, 6)
    inputs = stereo.processor(text=PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = stereo.model.generate(**inputs, do_sample=False, guidance_scale=3.0, max_new_tokens=9)
    np.testing.assert_allclose(out.audio, reference.numpy(), atol=1e-5)


def test_fast_engine_matches_torch_engine_greedy(torch_engine):
    from musicgen_ops.pipeline.inference.fast_engine import FastGenerationEngine

    fast = FastGenerationEngine(build_random_musicgen("tiny-stereo-random"), device="cpu")
    want = torch_engine.generate(PROMPTS, num_frames=12, sampling=GREEDY)
    got = fast.generate(PROMPTS, num_frames=12, sampling=GREEDY)
    assert got.audio.shape == (2, 2, 12 * 640)
    np.testing.assert_array_equal(got.codes, want.codes)
    np.testing.assert_allclose(got.audio, want.audio, atol=1e-4)
    chunks = list(fast.generate_stream(PROMPTS[:1], num_frames=12, sampling=GREEDY, chunk_frames=5))
    assert all(c.shape[:2] == (1, 2) for c in chunks)
    assert sum(c.shape[-1] for c in chunks) == 12 * 640


def test_stereo_file_and_sidecar(torch_engine, tmp_path):
    from musicgen_ops.pipeline.generation.batch import generate_to_files

    params = GenerationParameters(
        prompt="calm piano", duration_seconds=0.2, random_seed=3, output_format="flac"
    )
    (result,) = generate_to_files([params], torch_engine, tmp_path, model_id="tiny-stereo", spectrogram=True)
    info = sf.info(result.audio_path)
    assert info.channels == 2 and info.frames == round(0.2 * 32_000) == result.num_samples
    sidecar = GenerationResult.model_validate_json(Path(result.sidecar_path).read_text())
    assert result.channels == 2 and sidecar.channels == 2


def test_stereo_tracks_continue_codes_across_windows(torch_engine):
    """Token-level continuation keeps the interleaved codes: fast and torch agree across windows."""
    from musicgen_ops.pipeline.generation.windowing import generate_windowed
    from musicgen_ops.pipeline.inference.fast_engine import FastGenerationEngine

    fast = FastGenerationEngine(build_random_musicgen("tiny-stereo-random"), device="cpu")
    samples = 20 * 640 - 100
    kwargs = {"num_samples": samples, "sampling": GREEDY, "seeds": [0, 1]}
    kwargs |= {"window_seconds": 0.2, "stride_seconds": 0.12}
    want, windows = generate_windowed(torch_engine, PROMPTS, **kwargs)
    got, fast_windows = generate_windowed(fast, PROMPTS, **kwargs)
    assert want.shape == got.shape == (2, 2, samples) and windows == fast_windows == 3
    np.testing.assert_allclose(got, want, atol=1e-4)
    prompt = torch_engine.encode_audio(np.zeros((2, 5 * 640), np.float32))
    assert prompt.shape == (2, 8, 5)  # a mono clip on both channels' codebooks
    cont = torch_engine.generate(PROMPTS, num_frames=3, sampling=GREEDY, prefix_codes=prompt)
    assert cont.codes.shape == (2, 8, 3) and cont.audio.shape == (2, 2, 3 * 640)


def test_cli_preprocess_channels(tmp_path):
    from typer.testing import CliRunner

    from musicgen_ops.cli import app

    raw = tmp_path / "raw"
    write(raw / "mono.flac", 1.2, 22_050, channels=1)  # a mono track in a stereo dataset: both channels
    write(raw / "wide.wav", 1.2, 48_000, channels=2)
    result = CliRunner().invoke(
        app, ["preprocess", "-i", str(raw), "-o", str(tmp_path / "out"), "--duration", "1", "--channels", "2"]
    )
    assert result.exit_code == 0, result.output
    for clip in (tmp_path / "out" / "clips").glob("*.wav"):
        audio, _ = sf.read(clip, always_2d=True)
        assert audio.shape[1] == 2
        if clip.name.startswith("mono"):
            np.testing.assert_array_equal(audio[:, 0], audio[:, 1])
    bad_args = ["preprocess", "-i", str(raw), "-o", str(tmp_path / "o"), "--channels", "3"]
    bad = CliRunner().invoke(app, bad_args)
    assert bad.exit_code != 0 and "--channels" in " ".join(bad.output.split())
