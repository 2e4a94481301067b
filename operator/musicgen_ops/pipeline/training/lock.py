"""One training run per output folder: an exclusive file lock held for the whole run.

A second run into a busy folder fails at once, naming the run that holds it (host, pid, start
time), instead of racing on checkpoints. The lock is released by the OS if the holder dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from musicgen_ops.pipeline.errors import TrainingError

__all__ = ["LOCK_NAME", "OWNER_NAME", "output_folder_lock"]

LOCK_NAME = ".musicgen-train.lock"
OWNER_NAME = ".musicgen-train.owner.json"


@contextlib.contextmanager
def output_folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``<folder>/.musicgen-train.lock`` for the block.

    Raises:
        TrainingError: another run holds the folder (the message names it), or the folder cannot be made.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TrainingError(f"cannot create the output folder {folder}: {err.strerror or err}") from err
    lock = FileLock(folder / LOCK_NAME, timeout=0)
    owner_file = folder / OWNER_NAME
    try:
        lock.acquire()
    except Timeout:
        raise TrainingError(
            f"output folder {folder} is in use by another training run ({_describe_owner(owner_file)}): "
            "wait for it to finish or choose another output folder"
        ) from None
    try:
        owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        owner_file.write_text(json.dumps(owner) + "\n")
        yield
    finally:
        owner_file.unlink(missing_ok=True)
        lock.release()


def _describe_owner(owner_file: Path) -> str:
    try:
        owner = json.loads(owner_file.read_text())
        return f"pid {owner['pid']} on {owner['host']}, started {owner['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"
