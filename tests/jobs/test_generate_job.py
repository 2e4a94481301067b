"""generate-job with ``use_base_model``: the TrainedModel's base model alone, the adapter never fetched."""

from __future__ import annotations

import json

from musicgen_ops.contracts.environment import GenerateJobEnvironment
from musicgen_ops.contracts.generation import GenerationParameters
from musicgen_ops.jobs import generate_job


def test_the_base_model_generates_without_touching_the_adapter(tmp_path):
    output = tmp_path / "base.wav"
    settings = GenerateJobEnvironment(
        model_id="piano-v1",
        model_uri=f"file://{tmp_path}/nowhere/models/piano-v1",  # absent: must not be read
        base_model="tiny-random",
        use_base_model=True,
        parameters=GenerationParameters(prompt="calm piano", duration_seconds=0.2, random_seed=5),
        output_uri=output.as_uri(),
        result_uri=(tmp_path / "base.json").as_uri(),
        device="cpu",
    )
    result = generate_job.generate(settings)
    assert output.stat().st_size > 0 and result.seed == 5 and result.model_id == "tiny-random"
    assert json.loads((tmp_path / "base.json").read_text())["model_id"] == "tiny-random"
