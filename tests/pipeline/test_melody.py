"""musicgen-melody: loaded with its own class, conditioned on a melody's chroma, refused where unsupported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicgen_ops.pipeline.errors import (
    ExportError,
    InvalidParametersError,
    TrainingError,
    UnsupportedModelError,
)
from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.melody import (
    ChromaExtractor,
    MelodyProcessor,
    melody_checkpoint_error,
    melody_for_window,
)
from musicgen_ops.pipeline.models import load_base_model
from musicgen_ops.pipeline.presets import build_random_musicgen

RATE = 32_000


def sine(freq: float, seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def melody_model():
    return load_base_model("tiny-random-melody")


@pytest.fixture(scope="module")
def melody_engine(melody_model):
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    return TorchEngine(melody_model)


@pytest.fixture(scope="module")
def melody_folder(melody_model, tmp_path_factory):
    """A save_pretrained copy of the tiny melody model (config, weights, tokenizer, preprocessor)."""
    folder = tmp_path_factory.mktemp("melody") / "musicgen-melody-tiny"
    melody_model.model.save_pretrained(folder)
    melody_model.processor.save_pretrained(folder)
    return folder


@pytest.fixture
def melody_wav(tmp_path) -> Path:
    path = tmp_path / "hum.wav"
    sf.write(path, sine(440.0), RATE)
    return path


def test_tiny_melody_preset_has_its_own_class(melody_model):
    from transformers import MusicgenMelodyForConditionalGeneration

    assert isinstance(melody_model.model, MusicgenMelodyForConditionalGeneration)
    assert isinstance(melody_model.processor, MelodyProcessor)
    assert melody_model.family == "musicgen-melody"
    assert build_random_musicgen("tiny-random").family == "musicgen"


def test_saved_melody_loads_completely_with_its_class(melody_model, melody_folder, melody_engine):
    """From a folder: the melody class, every weight from the checkpoint (the same audio codes)."""
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    loaded = load_base_model(str(melody_folder))
    assert loaded.family == "musicgen-melody" and type(loaded.model) is type(melody_model.model)
    assert loaded.processor.feature_extractor == ChromaExtractor()
    saved = json.loads((melody_folder / "preprocessor_config.json").read_text())
    assert saved["feature_extractor_type"] == "MusicgenMelodyFeatureExtractor"
    sampling = SamplingParams(seed=4)
    melody = [sine(330.0)]
    again = TorchEngine(loaded).generate(["calm piano"], num_frames=8, sampling=sampling, melody=melody)
    first = melody_engine.generate(["calm piano"], num_frames=8, sampling=sampling, melody=melody)
    np.testing.assert_array_equal(first.codes, again.codes)


def test_unknown_family_is_refused(melody_folder, tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    config = json.loads((melody_folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bark"}))
    with pytest.raises(
        UnsupportedModelError, match="model_type 'bark'.*supported: musicgen, musicgen_melody"
    ):
        load_base_model(str(folder))


def test_musicgen_weights_labelled_melody_are_refused_not_half_initialised(tmp_path):
    """A config saying musicgen_melody over musicgen weights: the melody projection would be random."""
    loaded = build_random_musicgen("tiny-random")
    folder = tmp_path / "mislabelled"
    loaded.model.save_pretrained(folder)
    loaded.processor.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "musicgen_melody"
    config["decoder"]["model_type"] = "musicgen_melody_decoder"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match=r"missing from the checkpoint.*audio_enc_to_dec_proj"):
        load_base_model(str(folder))


def test_medium_shaped_checkpoint_loads_with_its_projection(tmp_path):
    """musicgen-medium/-large have a text encoder narrower than the decoder (enc_to_dec_proj): it loads."""
    from transformers import MusicgenConfig, MusicgenForConditionalGeneration

    from musicgen_ops.pipeline.presets import random_configs

    base = random_configs("tiny-random")
    text = base.text_encoder.to_dict() | {"d_model": 16, "d_kv": 4}
    config = MusicgenConfig(text_encoder=text, audio_encoder=base.audio_encoder, decoder=base.decoder)
    model = MusicgenForConditionalGeneration(config)
    assert hasattr(model, "enc_to_dec_proj")
    model.save_pretrained(tmp_path / "medium-like")
    build_random_musicgen("tiny-random").processor.save_pretrained(tmp_path / "medium-like")
    loaded = load_base_model(str(tmp_path / "medium-like"))
    assert loaded.family == "musicgen" and hasattr(loaded.model, "enc_to_dec_proj")


def test_chroma_of_a_sine_is_its_pitch_class():
    chroma = ChromaExtractor()([sine(440.0), sine(261.63)])
    assert chroma.shape[0] == 2 and chroma.shape[2] == 12
    assert set(chroma[0].argmax(-1).tolist()) == {9}  # A
    assert set(chroma[1].argmax(-1).tolist()) == {0}  # C
    assert bool((chroma.sum(-1) == 1).all())


def test_chroma_matches_transformers_feature_extractor():
    pytest.importorskip("torchaudio")
    from transformers import MusicgenMelodyFeatureExtractor

    audio = np.random.default_rng(0).standard_normal(RATE * 2).astype(np.float32) * 0.1 + sine(392.0, 2)
    ours = ChromaExtractor()([audio])
    theirs = MusicgenMelodyFeatureExtractor()(audio, sampling_rate=RATE, return_tensors="pt")
    np.testing.assert_array_equal(ours.numpy(), theirs["input_features"].numpy())


def test_melody_changes_the_music_and_is_reproducible(melody_engine):
    sampling = SamplingParams(seed=11)
    plain = melody_engine.generate(["rock"], num_frames=24, sampling=sampling)
    a = melody_engine.generate(["rock"], num_frames=24, sampling=sampling, melody=[sine(440.0)])
    a_again = melody_engine.generate(["rock"], num_frames=24, sampling=sampling, melody=[sine(440.0)])
    other = melody_engine.generate(["rock"], num_frames=24, sampling=sampling, melody=[sine(311.0)])
    np.testing.assert_array_equal(a.codes, a_again.codes)
    assert (plain.codes != a.codes).any() and (a.codes != other.codes).any()
    none_row = melody_engine.generate(["rock"], num_frames=24, sampling=sampling, melody=[None])
    np.testing.assert_array_equal(none_row.codes, plain.codes)  # no melody = the model's null chroma


def test_melody_windows_follow_the_melody(melody_engine):
    melody = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(melody_for_window(melody, 8, 5), [8, 9, 0, 1, 2])
    np.testing.assert_array_equal(melody_for_window(melody, 2, 3), [2, 3, 4])


def test_generate_to_files_with_a_melody_file_over_two_windows(melody_engine, melody_wav, tmp_path):
    from musicgen_ops.pipeline.generation.batch import generate_to_files

    params = {"prompt": "folk", "duration_seconds": 0.5, "random_seed": 3, "melody_uri": str(melody_wav)}
    (result,) = generate_to_files(
        [params], melody_engine, tmp_path, window_seconds=0.3, stride_seconds=0.2, model_id="m"
    )
    assert result.windows == 2 and result.num_samples == RATE // 2
    assert result.parameters.melody_uri == str(melody_wav)
    sidecar = json.loads(Path(result.sidecar_path).read_text())
    assert sidecar["parameters"]["melody_uri"] == str(melody_wav)


def test_melody_for_a_text_only_model_is_refused_before_generating(tiny_engine, melody_wav, tmp_path):
    from musicgen_ops.pipeline.generation.batch import generate_to_files

    before = len(tiny_engine.batch_sizes)
    with pytest.raises(InvalidParametersError, match="melody_uri: model tiny-random is a musicgen model"):
        generate_to_files(
            [{"prompt": "x", "duration_seconds": 0.1, "melody_uri": str(melody_wav)}],
            tiny_engine,
            tmp_path,
            model_id="tiny-random",
        )
    assert len(tiny_engine.batch_sizes) == before


def test_unreadable_melody_names_the_field(melody_engine, tmp_path):
    from musicgen_ops.pipeline.generation.batch import generate_to_files

    bad = tmp_path / "hum.wav"
    bad.write_bytes(b"not audio")
    for uri, reason in ((str(bad), "melody_uri: .*hum.wav"), ("s3://b/hum.wav", "melody_uri: .*remote URI")):
        with pytest.raises(InvalidParametersError, match=reason):
            generate_to_files(
                [{"prompt": "x", "duration_seconds": 0.1, "melody_uri": uri}], melody_engine, tmp_path
            )


def test_engines_for_a_melody_model(melody_model):
    from musicgen_ops.pipeline.inference.loader import fast_engine_supports, open_engine

    assert fast_engine_supports(melody_model, "auto") is False  # auto: the torch engine
    with pytest.raises(UnsupportedModelError, match="engine 'fast' does not run musicgen-melody"):
        fast_engine_supports(melody_model, "fast")
    engine = open_engine("tiny-random-melody", "auto", "cpu")
    assert type(engine).__name__ == "TorchEngine" and engine.supports_melody


def test_training_and_export_refuse_melody(melody_model, melody_folder):
    from musicgen_ops.pipeline.export.exporter import export_trained_model_from_checkpoint
    from musicgen_ops.pipeline.training.trainer import MusicGenLoRATrainer

    with pytest.raises(TrainingError, match="musicgen-melody model: LoRA training supports musicgen"):
        MusicGenLoRATrainer("tiny-random-melody", loaded=melody_model)
    assert "musicgen-melody" in (melody_checkpoint_error(melody_folder) or "")
    with pytest.raises(ExportError, match="musicgen-melody model: export"):
        export_trained_model_from_checkpoint(melody_folder, melody_folder.parent / "exported")


def test_melody_in_bfloat16(melody_model):
    """The chroma projection follows the engine's dtype (bfloat16 on CUDA by default)."""
    import copy

    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    engine = TorchEngine(copy.deepcopy(melody_model), dtype="bfloat16")
    melody = [sine(440.0), None]
    out = engine.generate(["x", "y"], num_frames=6, sampling=SamplingParams(seed=1), melody=melody)
    assert out.audio.shape == (2, 6 * 640) and np.isfinite(out.audio).all()
