"""Two training runs into one output folder: the second fails at once, naming the holder."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from musicgen_ops.cli import run
from musicgen_ops.pipeline.errors import TrainingError
from musicgen_ops.pipeline.training import TrainConfig, run_training
from musicgen_ops.pipeline.training.lock import LOCK_NAME, OWNER_NAME, output_folder_lock

HOLD = """
import sys, time
from pathlib import Path
from musicgen_ops.pipeline.training.lock import output_folder_lock
with output_folder_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_second_run_into_a_busy_folder_fails_at_once(tmp_path):
    out = tmp_path / "run"
    with output_folder_lock(out):
        assert (out / LOCK_NAME).exists() and f'"pid": {os.getpid()}' in (out / OWNER_NAME).read_text()
        started = time.monotonic()
        config = TrainConfig(data_dir=tmp_path / "data", output_dir=out, base_model="tiny-random")
        with pytest.raises(
            TrainingError, match=rf"output folder .*run is in use by another training run \(pid {os.getpid()}"
        ):
            run_training(config)
        assert time.monotonic() - started < 5
    assert not (out / OWNER_NAME).exists()
    with output_folder_lock(out):  # released: the next run gets it
        pass


def test_cli_train_into_a_folder_held_by_another_process(tmp_path, capsys):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        data = tmp_path / "data"
        data.mkdir()
        code = run(
            ["train", "--data-dir", str(data), "--output-dir", str(out), "--base-model", "tiny-random"]
        )
        err = capsys.readouterr().err
        assert code == 1, err
        assert f"is in use by another training run (pid {holder.pid} on " in err and "Traceback" not in err
    finally:
        holder.kill()
        holder.wait()
    with output_folder_lock(out):  # the OS released the dead holder's lock
        pass
