"""Data-parallel training under torchrun: two gloo processes on the CPU with the tiny model.

* both ranks end with identical adapter weights (HF Trainer and Lightning);
* the HF run matches a single-process run with the same global batch (2 processes x batch 2 against
  1 process x batch 4, condition dropout on, LoRA dropout off): adapter weights within 1e-5 (measured
  ~2e-7, float summation order);
* only rank 0 reports progress and writes the final model;
* a rank killed mid-run stops the run with one error line, and ``--resume`` continues from the last
  checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

import musicgen_ops
from musicgen_ops.contracts.training import LoraParameters
from musicgen_ops.pipeline.training import TrainConfig

from . import distributed_worker

WORKER = Path(distributed_worker.__file__)
OPERATOR_DIR = str(Path(musicgen_ops.__file__).resolve().parents[1])
TIMEOUT = 300  # seconds per launch: two processes importing torch and transformers on a busy 2-core machine


def environment() -> dict[str, str]:
    """This process's environment, with these sources first on the path and one thread per process."""
    path = os.pathsep.join(p for p in (OPERATOR_DIR, os.environ.get("PYTHONPATH")) if p)
    return os.environ | {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    result = subprocess.run(
        command, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def write_config(folder: Path, data_dir: Path, **options) -> Path:
    folder.mkdir(parents=True)
    config = TrainConfig(
        data_dir=data_dir,
        output_dir=folder / "out",
        base_model="tiny-random",
        lora=options.pop("lora", LoraParameters(r=8, alpha=16, dropout=0.0)),
        epochs=2,
        learning_rate=1e-2,
        val_fraction=0.0,
        device="cpu",
        precision="fp32",
        save_steps=2,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        seed=0,
        **options,
    )
    path = folder / "config.json"
    path.write_text(config.model_dump_json())
    return path


def weights(folder: Path, rank: int) -> dict[str, torch.Tensor]:
    return torch.load(folder / f"weights-rank{rank}.pt", weights_only=True)


def events(folder: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (folder / f"progress-rank{rank}.jsonl").read_text().splitlines()]


def test_hf_ranks_agree_and_match_one_process_with_the_same_global_batch(train_data_dir, tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    torchrun(str(WORKER), str(write_config(two, train_data_dir, batch_size=2)), str(two), cwd=tmp_path)
    distributed_worker.main(str(write_config(one, train_data_dir, batch_size=4)), str(one))

    rank0, rank1, single = weights(two, 0), weights(two, 1), weights(one, 0)
    assert rank0.keys() == rank1.keys() == single.keys() and rank0
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), "the ranks' adapters differ"
    difference = max(float((rank0[k] - single[k]).abs().max()) for k in rank0)
    assert difference < 1e-5, difference
    assert max(float(v.abs().max()) for v in rank0.values()) > 1e-2  # training moved the weights

    # Rank 0 alone reports and writes; progress says how many processes and how the batch is made up.
    assert not (two / "progress-rank1.jsonl").exists()
    reported = events(two, 0)
    assert {e["world_size"] for e in reported} == {2}
    assert any("effective batch 4 = 2 per device x 2 process(es) x 1" in e["message"] for e in reported)
    assert reported[-1]["phase"] == "completed" and reported[-1]["step"] == 4  # 8 clips / 4 per step x 2
    metadata = json.loads((two / "out" / "final_model" / "training_metadata.json").read_text())
    assert metadata["training"]["world_size"] == 2 and metadata["training"]["effective_batch_size"] == 4
    checkpoints = two / "out" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert {p.name for p in (checkpoints / "checkpoint-4").glob("rng_state_*")} == {
        "rng_state_0.pth",
        "rng_state_1.pth",
    }


def test_lightning_ranks_agree(train_data_dir, tmp_path):
    """LoRA dropout on: the ranks draw different masks, DDP's all-reduce still keeps them in step."""
    run = tmp_path / "run"
    config = write_config(
        run,
        train_data_dir,
        batch_size=2,
        backend="lightning",
        lora=LoraParameters(r=8, alpha=16, dropout=0.1),
    )
    torchrun(str(WORKER), str(config), str(run), cwd=tmp_path)
    rank0, rank1 = weights(run, 0), weights(run, 1)
    assert rank0 and all(torch.equal(rank0[k], rank1[k]) for k in rank0), "the ranks' adapters differ"
    assert not (run / "progress-rank1.jsonl").exists()
    assert events(run, 0)[-1]["world_size"] == 2
    assert (run / "out" / "checkpoints" / "last.ckpt").is_file()
    assert (run / "out" / "final_model" / "adapter_model.safetensors").is_file()


def _rank_process(launcher: subprocess.Popen, rank: int) -> psutil.Process | None:
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "TORCHELASTIC_RUN_ID" in child.environ():
                return child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def test_killed_rank_fails_the_run_cleanly_and_resume_continues(train_data_dir, tmp_path):
    out = tmp_path / "out"
    train = [sys.executable, "-m", "musicgen_ops", "train", "--devices", "2", "--device", "cpu"]
    train += ["-d", str(train_data_dir), "-o", str(out), "--base-model", "tiny-random", "--lora-r", "4"]
    train += ["--batch-size", "2", "--val-fraction", "0", "--save-steps", "2", "--precision", "fp32"]
    launcher = subprocess.Popen(
        [*train, "--max-steps", "500"],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file():
            assert launcher.poll() is None, launcher.communicate()[1][-4000:]
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.2)
        victim = _rank_process(launcher, 1)
        assert victim is not None
        victim.send_signal(signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode == 1
    assert "error: training failed: process rank 1 ended with signal SIGKILL" in stderr
    assert "Traceback" not in stderr.split("error: training failed")[-1]
    assert not (out / "final_model").exists()

    last = max(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    resumed = subprocess.run(
        [*train, "--max-steps", str(last + 2), "--resume"],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["resumed_from"].endswith(f"checkpoint-{last}")
    assert summary["steps"] == last + 2 and summary["world_size"] == 2
    assert (out / "final_model" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--device", "cuda", "--precision", "fp32", "--devices", "2"], "--devices 2 asks for 2 GPUs but"),
        (["--device", "cuda:1", "--precision", "fp32", "--devices", "2"], "--device cuda:1 names one GPU"),
    ],
)
def test_devices_beyond_the_machine_are_refused(options, message, train_data_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from musicgen_ops.cli import app

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    args = ["train", "-d", str(train_data_dir), "-o", str(tmp_path), "--base-model", "tiny-random", *options]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and message in result.output, result.output


def test_hf_checkpoints_rotate_to_save_total_limit(train_data_dir, tmp_path):
    """The Trainer rotates inside its staging folder; the real folder keeps the newest --save-total-limit."""
    from musicgen_ops.pipeline.dataset import MusicGenDataset
    from musicgen_ops.pipeline.presets import build_random_musicgen
    from musicgen_ops.pipeline.training import MusicGenLoRATrainer

    trainer = MusicGenLoRATrainer("tiny-random", lora_r=4, lora_dropout=0.0, loaded=build_random_musicgen())
    dataset = MusicGenDataset.from_directory(train_data_dir, trainer.processor, model=trainer.loaded.model)
    trainer.train(
        dataset,
        None,
        tmp_path,
        num_epochs=1,
        batch_size=2,
        save_steps=1,
        save_total_limit=2,
        val_fraction=0.0,
    )
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["checkpoint-3", "checkpoint-4"]


def test_condition_dropout_slices_the_global_draw():
    from musicgen_ops.pipeline.training.steps import ConditionDropout

    whole = ConditionDropout(0.5, seed=3).rows(8, step=1)
    parts = [ConditionDropout(0.5, seed=3, rank=r, world_size=2).rows(4, step=1) for r in (0, 1)]
    assert torch.equal(torch.cat(parts), whole)


def test_only_rank_0_reports_with_the_world_size():
    from musicgen_ops.pipeline.progress import ProgressEvent
    from musicgen_ops.pipeline.training.distributed import DistributedContext, RankZeroReporter

    seen: list = []

    class Collect:
        def on_progress(self, event):
            seen.append(event)

    event = ProgressEvent(phase="starting", epoch=0, total_epochs=1, step=0, total_steps=4)
    for rank in (0, 1):
        context = DistributedContext(rank=rank, local_rank=rank, world_size=2, local_world_size=2)
        RankZeroReporter(Collect(), context, "effective batch 8").on_progress(event)
    assert len(seen) == 1 and seen[0].world_size == 2 and seen[0].message == "effective batch 8"


@pytest.mark.parametrize(
    "environ",
    [
        {"RANK": "2", "WORLD_SIZE": "2"},
        {"RANK": "x", "WORLD_SIZE": "2"},
        {"LOCAL_RANK": "1", "WORLD_SIZE": "1"},
    ],
)
def test_a_bad_torchrun_environment_is_refused(environ):
    from musicgen_ops.pipeline.errors import TrainingError
    from musicgen_ops.pipeline.training.distributed import DistributedContext

    with pytest.raises(TrainingError, match="torchrun environment"):
        DistributedContext.from_environ(environ)


def test_torchrun_environment_is_read():
    from musicgen_ops.pipeline.training.distributed import DistributedContext

    environ = {"RANK": "9", "LOCAL_RANK": "1", "WORLD_SIZE": "16", "LOCAL_WORLD_SIZE": "8"}
    context = DistributedContext.from_environ(environ)
    assert (context.num_nodes, context.is_main, context.is_local_main, context.is_distributed) == (
        2,
        False,
        False,
        True,
    )


def test_devices_relaunches_the_typed_options_under_torch_elastic(train_data_dir, tmp_path, monkeypatch):
    from torch.distributed.launcher import api

    from musicgen_ops.cli import run

    launched: dict = {}

    def fake_launch(config, entrypoint):
        launched.update(config=config, entrypoint=entrypoint)
        return lambda *args: launched.update(args=list(args))

    monkeypatch.setattr(api, "elastic_launch", fake_launch)
    args = ["train", "--devices", "3", "--device", "cpu", "-d", str(train_data_dir), "-o", str(tmp_path)]
    assert run(["--log-level", "WARNING", *args, "--lora-r", "4", "--lr", "0.01", "--resume"]) == 0
    assert launched["config"].nproc_per_node == 3 and launched["config"].max_restarts == 0
    assert launched["entrypoint"] == sys.executable
    assert launched["args"][:5] == ["-m", "musicgen_ops", "--log-level", "WARNING", "train"]
    forwarded = launched["args"][5:]
    for pair in (["--lora-r", "4"], ["--learning-rate", "0.01"], ["--data-dir", str(train_data_dir)]):
        assert forwarded[forwarded.index(pair[0]) + 1] == pair[1]
    assert "--resume" in forwarded and "--epochs" not in forwarded  # defaults stay the worker's defaults
