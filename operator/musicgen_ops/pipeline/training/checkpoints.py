"""Which checkpoint to resume from: the newest one whose files are whole.

A checkpoint can be torn by a full disk or a copy cut short (the Trainer's own writes are atomic). Resuming
from it would fail deep inside torch; instead it is skipped with a warning naming the bad file, and
training resumes from the newest checkpoint that checks out.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zipfile
from pathlib import Path

__all__ = ["checkpoint_problem", "newest_valid_checkpoint", "torch_file_problem"]

logger = logging.getLogger(__name__)

_STEP = re.compile(r"^checkpoint-(\d+)$")
#: Files a Trainer checkpoint must hold (weights are checked when present in either format).
_REQUIRED = ("trainer_state.json",)


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return "shorter than a safetensors header"
        (header_len,) = struct.unpack("<Q", head)
        if 8 + header_len > size:
            return "header runs past the end of the file (truncated)"
        try:
            header = json.loads(handle.read(header_len))
        except ValueError:
            return "unreadable header"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    return None if 8 + header_len + end <= size else "tensor data runs past the end of the file (truncated)"


def torch_file_problem(path: Path) -> str | None:
    """Why a ``torch.save`` archive (``.pt``, ``.ckpt``) is unusable (truncated, corrupt), or None."""
    if not zipfile.is_zipfile(path):
        return "not a complete torch archive (truncated?)"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f"unreadable torch archive ({err})"
    return f"corrupt member {bad}" if bad else None


def checkpoint_problem(folder: Path) -> str | None:
    """Why a Trainer checkpoint folder cannot be resumed from (``file: reason``), or None when whole."""
    for name in _REQUIRED:
        if not (folder / name).is_file():
            return f"{name}: missing"
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError) as err:
        return f"trainer_state.json: unreadable ({err})"
    for path in sorted(folder.iterdir()):
        if path.suffix == ".safetensors":
            problem = _safetensors_problem(path)
        elif path.suffix in (".pt", ".pth", ".bin"):
            problem = torch_file_problem(path)
        else:
            continue
        if problem:
            return f"{path.name}: {problem}"
    return None


def newest_valid_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest ``checkpoint-<step>`` under ``checkpoint_dir`` that is whole; torn ones are skipped with a
    warning. None when there is none."""
    if not checkpoint_dir.is_dir():
        return None
    steps = sorted(
        ((int(m.group(1)), p) for p in checkpoint_dir.iterdir() if p.is_dir() and (m := _STEP.match(p.name))),
        reverse=True,
    )
    for _, folder in steps:
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        logger.warning("not resuming from %s: %s; trying the previous checkpoint", folder, problem)
    return None
