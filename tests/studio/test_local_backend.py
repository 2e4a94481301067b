"""Seams of the local backend: the train-job environment it writes, progress.json it reads, restarts."""

from __future__ import annotations

import json

from musicgen_ops.contracts.environment import TrainJobEnvironment
from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.contracts.training import TrainingRecipe
from musicgen_ops.jobs.reporting import StorageProgressReporter
from musicgen_ops.studio.local.state import StudioState, utc_now
from musicgen_ops.studio.local.training import TrainingRunner, job_environment, subprocess_environ
from tests.studio.conftest import studio_settings


def training_row(training_id: str = "train-1", state: str = "queued", **extra) -> dict:
    recipe = TrainingRecipe.model_validate({"training": {"epochs": 3, "batch_size": 2}, "lora": {"r": 4}})
    return {
        "id": training_id,
        "state": state,
        "dataset": "demo",
        "base_model": "tiny-random",
        "model_id": "my-model",
        "recipe": json.dumps(recipe.model_dump(mode="json")),
        "created": utc_now(),
        "started": None,
    } | extra


def test_train_job_reads_exactly_the_environment_the_studio_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICGEN_JOB_BASE_MODEL", "stale-value-from-the-shell")
    settings = studio_settings(tmp_path)
    job = job_environment(settings, training_row(), f"{settings.artifacts_uri}/datasets/demo")
    environ = subprocess_environ(job)
    assert environ["MUSICGEN_JOB_BASE_MODEL"] == "tiny-random"  # the shell's variable never leaks in
    parsed = TrainJobEnvironment.from_environ(environ)  # what train-job does at start
    assert parsed == job
    assert parsed.training.epochs == 3 and parsed.lora.r == 4 and parsed.device == "cpu"
    assert parsed.output_uri == f"{settings.artifacts_uri}/models/my-model"
    assert parsed.progress_uri == f"{settings.artifacts_uri}/runs/train-1/progress.json"


def test_progress_written_by_the_job_becomes_the_loss_curve(tmp_path):
    settings = studio_settings(tmp_path)
    state = StudioState(settings.database_path)
    state.insert("trainings", training_row(state="running"))
    runner = TrainingRunner(settings, state, lambda name: f"{settings.artifacts_uri}/datasets/{name}")
    reporter = StorageProgressReporter(f"{settings.artifacts_uri}/runs/train-1/progress.json", min_interval=0)
    for step, loss in ((1, 7.5), (2, 7.2)):
        event = TrainingProgress(
            phase="training", epoch=step / 2, total_epochs=1, step=step, total_steps=2, loss=loss
        )
        reporter.on_progress(event)
        assert runner.read_progress("train-1").loss == loss
    reporter.on_progress(
        TrainingProgress(phase="evaluating", epoch=1, total_epochs=1, step=2, total_steps=2, val_loss=7.1)
    )
    runner.read_progress("train-1")
    assert state.points("train-1") == [
        {"step": 1, "epoch": 0.5, "loss": 7.5, "val_loss": None},
        {"step": 2, "epoch": 1.0, "loss": 7.2, "val_loss": 7.1},
    ]
    assert json.loads(state.get("trainings", "train-1")["progress"])["phase"] == "evaluating"


def test_a_restart_requeues_the_running_training(tmp_path):
    settings = studio_settings(tmp_path)
    state = StudioState(settings.database_path)
    state.insert("trainings", training_row("train-2", state="running", pid=1))  # pid 1 is no train-job
    runner = TrainingRunner(settings, state, lambda name: name)
    runner.recover()
    row = state.get("trainings", "train-2")
    assert row["state"] == "queued" and row["pid"] is None
