"""Checkpoint samples in the studio: a real tiny training renders them, the API lists and serves them."""

from __future__ import annotations

import io
import json

import pytest
import soundfile as sf
from pydantic import ValidationError

from musicgen_ops.contracts.progress import CheckpointSample, TrainingProgress
from tests.studio.conftest import TINY_TRAINING, upload

SAMPLED = TINY_TRAINING | {
    "training": TINY_TRAINING["training"]
    | {
        "epochs": 1,
        "save_steps": 1,
        "sample_prompts": ["warm synth pop", "slow piano"],
        "sample_seconds": 0.5,
    },
}


def test_samples_appear_while_training_and_are_served(studio, demo_tracks):
    assert studio.post("/api/v1/datasets", json={"name": "samples"}).status_code == 201
    assert upload(studio, "samples", *demo_tracks, prompt="synth pop").status_code == 201
    created = studio.post("/api/v1/trainings", json={"dataset": "samples", **SAMPLED})
    assert created.status_code == 201, created.text
    training_id = created.json()["id"]
    assert created.json()["recipe"]["training"]["sample_prompts"] == ["warm synth pop", "slow piano"]

    # The SSE stream carries the samples as they are rendered (before the run is over).
    seen: list[tuple[str, list]] = []
    with studio.stream("GET", f"/api/v1/trainings/{training_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: {") and '"state"' in line:
                body = json.loads(line[6:])
                progress = body.get("progress") or {}
                seen.append((body["state"], progress.get("samples", [])))
    assert seen[-1][0] == "completed", seen[-1]
    assert any(state == "running" and samples for state, samples in seen), "no sample before the end"

    final = TrainingProgress.model_validate(studio.get(f"/api/v1/trainings/{training_id}").json()["progress"])
    steps = sorted({s.step for s in final.samples})
    assert steps and steps[-1] == final.step
    assert {(s.index, s.prompt) for s in final.samples} == {(0, "warm synth pop"), (1, "slow piano")}
    sample = final.samples[-1]
    answer = studio.get(f"/api/v1/trainings/{training_id}/samples/{sample.step}/{sample.index}")
    assert answer.status_code == 200 and answer.headers["content-type"] == "audio/wav"
    audio, rate = sf.read(io.BytesIO(answer.content))
    assert rate == 32_000 and abs(len(audio) / rate - 0.5) < 0.03

    missing = studio.get(f"/api/v1/trainings/{training_id}/samples/{sample.step + 100}/0")
    assert missing.status_code == 404 and "no checkpoint sample 0 at step" in missing.json()["detail"]
    assert studio.get("/api/v1/trainings/nope/samples/1/0").status_code == 404
    assert studio.get(f"/api/v1/trainings/{training_id}/samples/..%2F..%2Fx/0").status_code in (404, 422)


@pytest.mark.parametrize("path", ["../progress.json", "/etc/passwd", "a/../../b.wav", "a//b.wav", "a\\b.wav"])
def test_a_sample_path_cannot_leave_the_checkpoints_folder(path):
    with pytest.raises(ValidationError, match="relative path inside the checkpoints folder"):
        CheckpointSample(step=1, index=0, prompt="x", path=path, seconds=1.0, sample_rate=32000, seed=0)
