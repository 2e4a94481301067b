"""--resume skips torn checkpoints (with a warning naming the bad file) for the newest whole one."""

from __future__ import annotations

import json
import logging

import torch
from safetensors.torch import save_file

from musicgen_ops.pipeline.training.checkpoints import checkpoint_problem, newest_valid_checkpoint


def _checkpoint(root, step):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    save_file({"lora_A": torch.zeros(4, 8)}, str(folder / "adapter_model.safetensors"))
    torch.save({"state": {0: {"exp_avg": torch.zeros(64, 64)}}}, folder / "optimizer.pt")
    torch.save({"step": step}, folder / "scheduler.pt")
    return folder


def _truncate(path, keep=0.5):
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def test_newest_whole_checkpoint_is_chosen(tmp_path, caplog):
    for step in (2, 4, 6, 10):
        _checkpoint(tmp_path, step)
    assert newest_valid_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # numeric, not lexical order
    _truncate(tmp_path / "checkpoint-10" / "optimizer.pt")
    _truncate(tmp_path / "checkpoint-6" / "adapter_model.safetensors", 0.9)
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text("{")
    with caplog.at_level(logging.WARNING):
        assert newest_valid_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    warnings = [r.getMessage() for r in caplog.records]
    assert any("checkpoint-10: optimizer.pt: not a complete torch archive" in w for w in warnings)
    assert any(
        "checkpoint-6: adapter_model.safetensors: tensor data runs past the end" in w for w in warnings
    )
    assert any("checkpoint-4: trainer_state.json: unreadable" in w for w in warnings)


def test_no_whole_checkpoint_means_a_fresh_start(tmp_path):
    folder = _checkpoint(tmp_path, 3)
    (folder / "trainer_state.json").unlink()
    assert checkpoint_problem(folder) == "trainer_state.json: missing"
    assert newest_valid_checkpoint(tmp_path) is None
    assert newest_valid_checkpoint(tmp_path / "absent") is None


def test_torn_lightning_checkpoint_is_detected(tmp_path):
    from musicgen_ops.pipeline.training.checkpoints import torch_file_problem

    last = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(128, 128)}, "global_step": 3}, last)
    assert torch_file_problem(last) is None
    _truncate(last)
    assert torch_file_problem(last) == "not a complete torch archive (truncated?)"
