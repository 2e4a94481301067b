"""Modes of published files and folders: what ``open()``/``mkdir()`` would give under the umask.

Atomic writes go through ``tempfile.mkstemp``/``mkdtemp`` (0600/0700, private); before a temporary
file or folder is renamed into place it gets the ordinary mode (0644/0755 under umask 022), so
another user on a shared volume can read the results.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["current_umask", "make_public"]


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_public(path: Path) -> Path:
    """Give ``path`` (and, for a folder, everything below it) the umask's ordinary modes."""
    mask = current_umask()
    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask
    if path.is_dir():
        for root, _, files in os.walk(path):
            os.chmod(root, dir_mode)
            for name in files:
                os.chmod(os.path.join(root, name), file_mode)
    else:
        os.chmod(path, file_mode)
    return path
