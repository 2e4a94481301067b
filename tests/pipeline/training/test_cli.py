"""`musicgen-ops train`: trains, resumes a killed Lightning run, and refuses bad input with one line."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from musicgen_ops.cli import app

TINY = ["--base-model", "tiny-random", "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0"]


def train(*args: str):
    return CliRunner().invoke(app, ["train", *TINY, *args])


def test_cli_trains_then_resumes_with_lightning(train_data_dir, tmp_path):
    out, progress = tmp_path / "ckpt", tmp_path / "progress.jsonl"
    common = ["-d", str(train_data_dir), "-o", str(out), "--batch-size", "4", "--lr", "1e-3"]
    common += ["--backend", "lightning", "--val-fraction", "0", "--save-steps", "2"]
    first = train(*common, "--epochs", "1", "--progress-file", str(progress))
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout.splitlines()[-1])["steps"] == 2
    assert (out / "checkpoints" / "last.ckpt").is_file() and (
        out / "final_model" / "adapter_config.json"
    ).is_file()
    events = [json.loads(line) for line in progress.read_text().splitlines()]
    assert events[-1]["phase"] == "completed" and events[-1]["step"] == 2

    second = train(*common, "--epochs", "2", "--resume")  # the job restarted with more epochs
    assert second.exit_code == 0, second.output
    summary = json.loads(second.stdout.splitlines()[-1])
    assert summary["steps"] == 4 and summary["resumed_from"].endswith("last.ckpt")
    assert len(summary["train_loss_per_epoch"]) == 1  # only epoch 2 was trained again
    metadata = json.loads((out / "final_model" / "training_metadata.json").read_text())
    assert metadata["train_config"]["backend"] == "lightning" and metadata["train_config"]["resume"] is True


def test_cli_bad_input_is_one_clear_line(train_data_dir, tmp_path):
    fp16 = train("-d", str(train_data_dir), "-o", str(tmp_path / "a"), "--precision", "fp16")
    assert fp16.exit_code == 1 and "needs a CUDA GPU" in fp16.output and "Traceback" not in fp16.output

    rank = train("-d", str(train_data_dir), "-o", str(tmp_path / "b"), "--lora-r", "0")
    assert rank.exit_code == 1 and "--lora-r" in rank.output

    dropout = train("-d", str(train_data_dir), "-o", str(tmp_path / "b"), "--condition-dropout", "1.5")
    assert dropout.exit_code == 1 and "--condition-dropout" in dropout.output

    target = train("-d", str(train_data_dir), "-o", str(tmp_path / "c"), "--target-modules", "q_proj,mlp")
    assert target.exit_code == 1 and "unknown LoRA target module 'mlp'" in target.output

    broken = tmp_path / "broken"
    shutil.copytree(train_data_dir, broken)
    first_clip = json.loads((broken / "manifest.json").read_text())[0]["audio"]
    (broken / first_clip).unlink()
    missing = train("-d", str(broken), "-o", str(tmp_path / "d"))
    assert missing.exit_code == 1 and "missing file" in missing.output, missing.output
    assert not (tmp_path / "d" / "final_model").exists()
