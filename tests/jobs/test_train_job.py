"""train-job end to end on local storage: raw tracks in, a published model and progress.json out."""

from __future__ import annotations

import json

import pytest

from musicgen_ops.contracts.environment import TrainJobEnvironment
from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.contracts.training import LoraParameters, TrainingParameters
from musicgen_ops.jobs import train_job
from musicgen_ops.pipeline.audio import AudioDataPreprocessor
from musicgen_ops.pipeline.demo_data import render_demo_dataset
from musicgen_ops.storage import read_manifest


def job_env(monkeypatch, root, precision: str = "fp32", **overrides) -> None:
    """Set the container env exactly as the operator writes it (``TrainJobEnvironment.to_env``)."""
    values = dict(
        dataset_uri=f"file://{root}/datasets/demo",
        base_model="tiny-random",
        model_id="demo-model",
        artifacts_uri=f"file://{root}/artifacts",
        output_uri=f"file://{root}/artifacts/models/demo-model",
        run_uri=f"file://{root}/artifacts/runs/default/demo",
        progress_uri=f"file://{root}/artifacts/runs/default/demo/progress.json",
        lora=LoraParameters(r=8),
        training=TrainingParameters(
            epochs=2, batch_size=4, learning_rate=0.003, precision=precision, save_steps=2
        ),
        namespace="default",
        resource_name="demo",
        termination_log=root / "termination-log",
    )
    settings = TrainJobEnvironment(**(values | overrides))
    for item in settings.to_env():
        monkeypatch.setenv(item["name"], item["value"])


@pytest.fixture(scope="module")
def raw_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    raw = render_demo_dataset(tmp_path_factory.mktemp("raw"), num_tracks=3, seconds=3.0)
    AudioDataPreprocessor(target_duration=1.0).preprocess_directory(raw, root / "datasets" / "demo")
    return root


def test_train_job_publishes_model_and_progress(raw_dataset, tmp_path, monkeypatch):
    job_env(monkeypatch, raw_dataset)
    monkeypatch.setenv("MUSICGEN_JOB_WORK_DIR", str(tmp_path / "scratch"))
    train_job.train(TrainJobEnvironment.from_environ())

    manifest = read_manifest(f"file://{raw_dataset}/artifacts", "demo-model")
    assert manifest is not None and manifest.formats == ["adapter"]
    assert {"adapter_model.safetensors", "training_metadata.json"} <= {f.path for f in manifest.files}
    assert manifest.base_model == "tiny-random" and manifest.metadata["final_loss"] > 0
    progress = json.loads((raw_dataset / "artifacts/runs/default/demo/progress.json").read_text())
    parsed = TrainingProgress.model_validate(progress)  # what the operator reads
    assert parsed.phase == "completed" and parsed.percent == 100 and parsed.updated_at
    checkpoints = raw_dataset / "artifacts/runs/default/demo/checkpoints"
    assert any((c / ".complete").is_file() for c in checkpoints.glob("checkpoint-*"))

    # A new pod (empty scratch) resumes from the mirrored checkpoints instead of starting over.
    monkeypatch.setenv("MUSICGEN_JOB_WORK_DIR", str(tmp_path / "scratch2"))
    train_job.train(TrainJobEnvironment.from_environ())
    again = read_manifest(f"file://{raw_dataset}/artifacts", "demo-model")
    assert again.metadata["resumed_from"].endswith(f"checkpoint-{manifest.metadata['steps']}")


def test_bad_dataset_exits_3_with_termination_message(raw_dataset, tmp_path, monkeypatch):
    job_env(monkeypatch, raw_dataset, dataset_uri=f"file://{tmp_path}/missing", model_id="other")
    with pytest.raises(SystemExit) as exit_info:
        train_job.main()
    assert exit_info.value.code == 3
    assert "NotFoundError" in (raw_dataset / "termination-log").read_text()


def test_cpu_bf16_is_a_permanent_error(raw_dataset, tmp_path, monkeypatch):
    job_env(monkeypatch, raw_dataset, precision="bf16", model_id="bf16")
    monkeypatch.setenv("MUSICGEN_JOB_WORK_DIR", str(tmp_path / "scratch"))
    with pytest.raises(SystemExit) as exit_info:
        train_job.main()
    assert exit_info.value.code == 3
    assert "needs a CUDA GPU" in (raw_dataset / "termination-log").read_text()


@pytest.mark.parametrize("backend", ["hf", "lightning"])
def test_checkpoint_samples_are_published_beside_the_checkpoints(backend, raw_dataset, tmp_path, monkeypatch):
    """progress.json names every sample; each named file is in storage under the run's checkpoints."""
    run = tmp_path / "run"
    training = TrainingParameters(
        epochs=1,
        max_steps=2,
        batch_size=4,
        save_steps=1,
        backend=backend,
        sample_prompts=["soft piano"],
        sample_seconds=0.1,
    )
    job_env(
        monkeypatch,
        raw_dataset,
        model_id=f"samples-{backend}",
        run_uri=f"file://{run}",
        progress_uri=f"file://{run}/progress.json",
        training=training,
    )
    monkeypatch.setenv("MUSICGEN_JOB_WORK_DIR", str(tmp_path / "scratch"))
    train_job.train(TrainJobEnvironment.from_environ())

    progress = TrainingProgress.model_validate_json((run / "progress.json").read_text())
    assert progress.phase == "completed"
    assert [(s.step, s.index, s.prompt) for s in progress.samples] == [
        (1, 0, "soft piano"),
        (2, 0, "soft piano"),
    ]
    for sample in progress.samples:
        published = run / "checkpoints" / sample.path
        assert published.is_file() and published.stat().st_size > 44  # a WAV header and audio
        folder = sample.path.split("/", 1)[0]
        assert (run / "checkpoints" / folder / ".complete").is_file()  # mirrored whole, like a checkpoint
