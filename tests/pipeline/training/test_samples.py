"""Checkpoint samples: both training backends render a clip per prompt at every save, beside it."""

from __future__ import annotations

import json
import shutil

import pytest
import soundfile as sf

from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.pipeline.progress import JsonLinesProgressWriter

from .test_training import dataset_for, make_trainer

PROMPTS = ["warm jazz piano", "rock drums"]
SECONDS = 0.2  # 10 codec frames: quick on the tiny model
#: Where each backend puts the clips of the checkpoint at a step (relative to output/checkpoints).
FOLDERS = {"hf": "checkpoint-{step}/samples", "lightning": "samples-{step}"}


@pytest.mark.parametrize("backend", ["hf", "lightning"])
def test_each_checkpoint_gets_a_clip_per_prompt(backend, train_data_dir, tmp_path):
    trainer = make_trainer()
    writer = JsonLinesProgressWriter(tmp_path / "progress.jsonl")
    result = trainer.train(
        dataset_for(trainer, train_data_dir),
        None,
        tmp_path,
        num_epochs=1,
        batch_size=4,
        backend=backend,
        max_steps=2,
        save_steps=1,
        val_fraction=0.0,
        sample_prompts=PROMPTS,
        sample_seconds=SECONDS,
        sample_seed=5,
        reporter=writer,
    )
    assert result.steps == 2
    checkpoints = tmp_path / "checkpoints"
    for step in (1, 2):
        folder = checkpoints / FOLDERS[backend].format(step=step)
        listing = json.loads((folder / "samples.json").read_text())
        assert [(s["step"], s["index"], s["prompt"], s["seed"]) for s in listing] == [
            (step, 0, PROMPTS[0], 5),
            (step, 1, PROMPTS[1], 6),
        ]
        for index in range(len(PROMPTS)):
            audio, rate = sf.read(folder / f"{index}.wav")
            assert rate == 32_000 and audio.shape == (int(SECONDS * 32_000),)
            assert listing[index]["path"] == f"{FOLDERS[backend].format(step=step)}/{index}.wav"
    assert not list(checkpoints.glob(".*staging"))
    assert trainer.peft_model.training is False  # eval after training, as before

    events = [TrainingProgress.model_validate_json(line) for line in writer.path.read_text().splitlines()]
    saving = [e for e in events if e.phase == "saving" and e.samples]
    assert [e.step for e in saving] == [1, 2]
    assert [(s.step, s.index) for s in saving[0].samples] == [(1, 0), (1, 1)]
    last = events[-1]
    assert last.phase == "completed"
    assert [(s.step, s.index) for s in last.samples] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert [(s.step, s.index) for s in result.samples] == [(1, 0), (1, 1), (2, 0), (2, 1)]


def test_samples_are_reproducible_and_leave_training_untouched(train_data_dir, tmp_path):
    """Same seed, same weights -> same clip; rendering neither changes the losses nor the RNG stream."""
    options = dict(num_epochs=1, batch_size=4, max_steps=2, save_steps=1, val_fraction=0.0)
    runs = {}
    for name, extra in {
        "plain": {},
        "a": {"sample_prompts": PROMPTS[:1]},
        "b": {"sample_prompts": PROMPTS[:1]},
    }.items():
        trainer = make_trainer()
        result = trainer.train(
            dataset_for(trainer, train_data_dir),
            None,
            tmp_path / name,
            sample_seconds=SECONDS,
            **options,
            **extra,
        )
        runs[name] = result
    losses = {name: [e["loss"] for e in r.history if "loss" in e] for name, r in runs.items()}
    assert losses["plain"] == losses["a"] == losses["b"]
    clip_a = (tmp_path / "a/checkpoints/checkpoint-2/samples/0.wav").read_bytes()
    assert clip_a == (tmp_path / "b/checkpoints/checkpoint-2/samples/0.wav").read_bytes()
    assert not (tmp_path / "plain/checkpoints/checkpoint-2/samples").exists()


def test_rotated_checkpoints_take_their_samples_and_a_resumed_run_keeps_the_rest(train_data_dir, tmp_path):
    options = dict(num_epochs=2, batch_size=4, save_steps=1, val_fraction=0.0)
    options |= dict(sample_prompts=PROMPTS[:1], sample_seconds=SECONDS)
    first = make_trainer()
    result = first.train(dataset_for(first, train_data_dir), None, tmp_path, max_steps=2, **options)
    assert [s.step for s in result.samples] == [1, 2]
    shutil.rmtree(tmp_path / "checkpoints/checkpoint-1")  # rotated away, with its clip

    writer = JsonLinesProgressWriter(tmp_path / "progress.jsonl")
    again = make_trainer()
    resumed = again.train(
        dataset_for(again, train_data_dir),
        None,
        tmp_path,
        max_steps=3,
        resume=True,
        reporter=writer,
        **options,
    )
    assert resumed.resumed_from.endswith("checkpoint-2")
    assert [s.step for s in resumed.samples] == [2, 3]
    events = [TrainingProgress.model_validate_json(line) for line in writer.path.read_text().splitlines()]
    assert [s.step for s in events[0].samples] == [2]  # known from the first run's samples.json
