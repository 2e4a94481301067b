"""Delivery options of a request (rate, bit depth, loudness, true peak) reach the written file and its
sidecar through the one generation path the CLI, the generate-job and the server share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from musicgen_ops.contracts.generation import GenerationParameters

pyloudnorm = pytest.importorskip("pyloudnorm")


@pytest.mark.parametrize(
    ("delivery", "rate", "subtype"),
    [
        ({}, 32_000, "PCM_16"),
        ({"sample_rate": 44100, "bit_depth": 24, "target_lufs": -14.0}, 44_100, "PCM_24"),
        ({"sample_rate": 48000, "target_lufs": -23.0, "output_format": "flac"}, 48_000, "PCM_16"),
    ],
    ids=["as-generated", "44k1-24bit-minus14", "48k-flac-minus23"],
)
def test_delivery_reaches_the_file_and_the_sidecar(tiny_engine, tmp_path, delivery, rate, subtype):
    from musicgen_ops.pipeline.generation.batch import generate_to_files

    params = GenerationParameters(prompt="calm piano", duration_seconds=1.5, random_seed=2, **delivery)
    (result,) = generate_to_files([params], tiny_engine, tmp_path, model_id="tiny")
    audio, file_rate = sf.read(result.audio_path)
    assert file_rate == rate == result.sample_rate and sf.info(result.audio_path).subtype == subtype
    assert len(audio) == result.num_samples == round(1.5 * rate)
    sidecar = json.loads(Path(result.sidecar_path).read_text())
    assert sidecar["sample_rate"] == rate and sidecar["bit_depth"] == params.bit_depth
    if params.target_lufs is not None:
        measured = pyloudnorm.Meter(rate).integrated_loudness(audio)
        assert abs(measured - params.target_lufs) <= 0.5
        assert abs(sidecar["loudness_lufs"] - params.target_lufs) <= 0.5
        assert sidecar["true_peak_dbtp"] <= params.true_peak_dbtp + 0.1
    assert sf.SoundFile(result.audio_path).title == "calm piano"


def test_out_of_range_delivery_is_refused_naming_the_field():
    from musicgen_ops.pipeline.errors import InvalidParametersError
    from musicgen_ops.pipeline.generation.batch import validate_parameters

    with pytest.raises(InvalidParametersError, match="target_lufs"):
        validate_parameters({"prompt": "x", "target_lufs": -60})
    with pytest.raises(InvalidParametersError, match="sample_rate"):
        validate_parameters({"prompt": "x", "sample_rate": 22050})


@pytest.mark.parametrize("output_format", ["mp3", "ogg"])
def test_lossy_formats_carry_the_tags_and_the_sidecar(tiny_engine, tmp_path, output_format):
    from musicgen_ops.pipeline.audio_output import available_formats
    from musicgen_ops.pipeline.generation.batch import generate_to_files

    if output_format not in available_formats():
        pytest.skip(f"this libsndfile cannot write {output_format}")
    params = GenerationParameters(
        prompt="calm piano",
        duration_seconds=1.0,
        random_seed=5,
        output_format=output_format,
        sample_rate=48000,
    )
    (result,) = generate_to_files([params], tiny_engine, tmp_path, model_id="tiny")
    assert Path(result.audio_path).suffix == f".{output_format}"
    with sf.SoundFile(result.audio_path) as file:
        tags = file.copy_metadata()
        assert (file.samplerate, file.channels) == (48_000, 1)
    assert tags["title"] == result.conditioning_text
    assert tags["comment"] == "seed=5 model=tiny decoder=encodec"
    sidecar = json.loads(Path(result.sidecar_path).read_text())
    assert sidecar["output_format"] == output_format and sidecar["decoder"] == "encodec"


def test_opus_is_written_at_48_khz_and_other_rates_are_refused(tiny_engine, tmp_path):
    from musicgen_ops.pipeline.audio_output import available_formats
    from musicgen_ops.pipeline.errors import InvalidParametersError
    from musicgen_ops.pipeline.generation.batch import generate_to_files, validate_parameters

    if "opus" not in available_formats():
        pytest.skip("this libsndfile cannot write opus")
    params = GenerationParameters(
        prompt="calm piano", duration_seconds=1.0, random_seed=5, output_format="opus"
    )
    (result,) = generate_to_files([params], tiny_engine, tmp_path, model_id="tiny")
    info = sf.info(result.audio_path)
    assert (
        (info.format, info.subtype, info.samplerate)
        == ("OGG", "OPUS", 48_000)
        == (
            "OGG",
            "OPUS",
            result.sample_rate,
        )
    )
    assert Path(result.audio_path).suffix == ".opus"
    with pytest.raises(InvalidParametersError, match="sample_rate: .*opus encodes 48000 Hz only"):
        validate_parameters({"prompt": "p", "output_format": "opus", "sample_rate": 44100})


def test_bit_depth_is_refused_for_lossy_formats_naming_the_field():
    from musicgen_ops.pipeline.errors import InvalidParametersError
    from musicgen_ops.pipeline.generation.batch import validate_parameters

    with pytest.raises(InvalidParametersError, match="bit_depth: .*24 does not apply to mp3"):
        validate_parameters({"prompt": "p", "output_format": "mp3", "bit_depth": 24})
    assert validate_parameters({"prompt": "p", "output_format": "ogg"}).bit_depth == 16


def test_a_format_this_libsndfile_lacks_is_refused_before_generating(monkeypatch):
    from musicgen_ops.pipeline import audio_output
    from musicgen_ops.pipeline.errors import InvalidParametersError
    from musicgen_ops.pipeline.generation.batch import validate_parameters

    monkeypatch.setattr(audio_output, "available_formats", lambda: ("wav", "flac"))
    with pytest.raises(InvalidParametersError, match="output_format: mp3 cannot be written here") as info:
        validate_parameters({"prompt": "p", "output_format": "mp3"})
    assert info.value.fields == [str(info.value).removeprefix("1 invalid parameter(s): ")]
