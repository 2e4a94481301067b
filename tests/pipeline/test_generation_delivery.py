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
