"""train-job under torchrun, started as the operator's Job starts it (``python -m musicgen_ops torchrun ...
-m musicgen_ops train-job``): two gloo ranks on raw tracks, one published model; permanent errors keep
exit code 3 through the launcher."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import musicgen_ops
from musicgen_ops.contracts.environment import TrainJobEnvironment
from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.contracts.training import LoraParameters, TrainingParameters
from musicgen_ops.jobs.launcher import exit_code_of
from musicgen_ops.pipeline.demo_data import render_demo_dataset
from musicgen_ops.storage import read_manifest

OPERATOR_DIR = str(Path(musicgen_ops.__file__).resolve().parents[1])
TIMEOUT = 300


def launch(root: Path, processes: int, **overrides) -> subprocess.CompletedProcess:
    """Run train-job under the launcher with the container env the operator writes (``to_env``)."""
    values = dict(
        dataset_uri=f"file://{root}/datasets/raw",
        base_model="tiny-random",
        model_id="dist-model",
        artifacts_uri=f"file://{root}/artifacts",
        output_uri=f"file://{root}/artifacts/models/dist-model",
        run_uri=f"file://{root}/artifacts/runs/default/dist",
        progress_uri=f"file://{root}/artifacts/runs/default/dist/progress.json",
        lora=LoraParameters(r=4),
        training=TrainingParameters(epochs=2, batch_size=2, precision="fp32", save_steps=2, val_fraction=0.0),
        device="cpu",
        namespace="default",
        resource_name="dist",
        termination_log=root / "termination-log",
        work_dir=root / "scratch",
    )
    settings = TrainJobEnvironment(**(values | overrides))
    path = os.pathsep.join(p for p in (OPERATOR_DIR, os.environ.get("PYTHONPATH")) if p)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICGEN_")}
    env |= {item["name"]: item["value"] for item in settings.to_env()}
    env |= {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "musicgen_ops", "torchrun", "--standalone"]
    command += [f"--nproc-per-node={processes}", "-m", "musicgen_ops", "train-job"]
    # not in the store: `python -m` puts the working folder on sys.path, and datasets/ would shadow `datasets`
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT, cwd=root.parent)


def test_two_ranks_preprocess_once_train_and_publish_one_model(tmp_path):
    tmp_path = tmp_path / "store"
    render_demo_dataset(tmp_path / "datasets" / "raw", num_tracks=2, seconds=4.0)
    result = launch(tmp_path, 2)
    assert result.returncode == 0, result.stderr[-4000:]

    manifest = read_manifest(f"file://{tmp_path}/artifacts", "dist-model")
    assert manifest is not None and manifest.training.world_size == 2
    clips = len(json.loads((tmp_path / "scratch/preprocessed/manifest.json").read_text()))
    assert manifest.training.effective_batch_size == 4
    assert manifest.training.steps == 2 * math.ceil(clips / 4)  # 2 epochs of batches of 2 x 2 ranks
    progress = TrainingProgress.model_validate_json(
        (tmp_path / "artifacts/runs/default/dist/progress.json").read_text()
    )
    assert progress.phase == "completed" and progress.world_size == 2
    mirrored = tmp_path / "artifacts/runs/default/dist/checkpoints"
    assert (mirrored / "checkpoint-2" / ".complete").is_file()
    metadata = json.loads((tmp_path / "scratch/output/final_model/training_metadata.json").read_text())
    assert metadata["training"]["world_size"] == 2
    # the ranks shared the node's scratch folder, where the local rank 0 preprocessed the raw tracks
    assert {"dataset", "preprocessed", "output"} <= {p.name for p in (tmp_path / "scratch").iterdir()}
    shutil.rmtree(tmp_path / "scratch")


def test_a_permanent_error_keeps_exit_code_3_through_the_launcher(tmp_path):
    tmp_path = tmp_path / "store"
    tmp_path.mkdir()
    result = launch(tmp_path, 1, dataset_uri=f"file://{tmp_path}/missing")
    assert result.returncode == 3, result.stderr[-4000:]
    assert "NotFoundError" in (tmp_path / "termination-log").read_text()


@pytest.mark.parametrize(("worker", "container"), [(3, 3), (1, 1), (-9, 1), (-15, 1)])
def test_exit_codes_of_the_first_failed_worker(worker, container):
    assert exit_code_of(worker) == container
