"""The pydantic CRD models: camelCase, defaults, clear validation errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from musicgen_ops.api.generationrequest import GenerationRequestSpec
from musicgen_ops.api.trainedmodel import TrainedModelSpec
from musicgen_ops.api.trainingjob import TrainingJobSpec


def test_trainingjob_defaults_and_aliases():
    spec = TrainingJobSpec.model_validate({"datasetUri": "s3://b/d", "training": {"batchSize": 8}})
    assert spec.training.batch_size == 8 and spec.training.epochs == 10
    assert spec.export_formats == ["adapter", "merged"]
    assert spec.to_k8s()["training"]["batchSize"] == 8


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"datasetUri": "http://x"}, "datasetUri"),
        ({"datasetUri": "s3://b", "lora": {"r": 0}}, "r"),
        ({"datasetUri": "s3://b", "exportFormats": ["onnx", "onnx"]}, "exportFormats"),
        ({"datasetUri": "s3://b", "exportFormats": ["mp3"]}, "exportFormats"),
        ({"datasetUri": "s3://b", "resources": {"memory": "lots"}}, "memory"),
        ({"datasetUri": "s3://b", "unknown": 1}, "unknown"),
    ],
)
def test_trainingjob_rejects(spec, field):
    with pytest.raises(ValidationError, match=field):
        TrainingJobSpec.model_validate(spec)


def test_generation_bounds():
    GenerationRequestSpec.model_validate(
        {"model": "m", "prompt": "p", "durationSeconds": 300, "temperature": 2}
    )
    GenerationRequestSpec.model_validate(
        {"model": "m", "prompt": "p", "audioPromptUri": "s3://music/prompts/intro.wav"}
    )
    for bad in (
        {"durationSeconds": 0},
        {"durationSeconds": 300.5},
        {"temperature": 2.5},
        {"key": "H"},
        {"outputFormat": "aiff"},
        {"outputFormat": "mp3", "bitDepth": 24},
        {"decoder": "hifigan"},
        {"audioPromptUri": "/etc/passwd"},  # the Job reads object storage only
        {"melodyUri": "../melody.wav"},
    ):
        with pytest.raises(ValidationError):
            GenerationRequestSpec.model_validate({"model": "m", "prompt": "p", **bad})


def test_trainedmodel_defaults():
    spec = TrainedModelSpec.model_validate({})
    assert spec.deletion_policy == "Retain" and spec.serving.enabled is False and spec.serving.port == 8000
