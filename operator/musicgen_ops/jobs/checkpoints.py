"""Mirror training checkpoints to object storage, so a restarted pod resumes instead of starting over.

The trainer writes each checkpoint locally and atomically (HF ``checkpoint-N/`` folders, Lightning
``*.ckpt`` files, with Lightning's checkpoint samples in ``samples-N/`` folders; HF checkpoints hold theirs
in ``checkpoint-N/samples/``). After each progress event this mirror uploads the new ones under
``<run>/checkpoints/``; a folder gets a ``.complete`` marker after its files, so a pod killed during
an upload never restores half a checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

from musicgen_ops.pipeline.progress import ProgressEvent
from musicgen_ops.storage import ArtifactStore, StorageError

logger = logging.getLogger(__name__)
MARKER = ".complete"


class CheckpointMirror:
    """Uploads new local checkpoints to ``remote`` (an open store rooted at the run's checkpoints)."""

    def __init__(self, local_dir: Path, remote: ArtifactStore) -> None:
        self.local_dir = Path(local_dir)
        self.remote = remote
        self._uploaded: dict[str, float] = {}

    def restore(self) -> list[str]:
        """Download every complete remote checkpoint into the local folder; returns their names."""
        restored = []
        names = {info.key.split("/", 1)[0] for info in self.remote.list("")}
        for name in sorted(names):
            if name.endswith(".ckpt"):
                self.remote.get_file(name, self.local_dir / name)
            elif self.remote.exists(f"{name}/{MARKER}"):
                self.remote.get_folder(name, self.local_dir / name)
                (self.local_dir / name / MARKER).unlink(missing_ok=True)
            else:
                continue
            self._uploaded[name] = (self.local_dir / name).stat().st_mtime
            restored.append(name)
        if restored:
            logger.info("restored checkpoints %s from %s", restored, self.remote.uri())
        return restored

    def sync(self) -> None:
        """Upload checkpoints that are new or changed; delete remote ones rotated away locally."""
        if not self.local_dir.is_dir():
            return
        local = {
            p.name: p
            for p in self.local_dir.iterdir()
            if p.name.startswith(("checkpoint-", "samples-")) or p.suffix == ".ckpt"
        }
        for name, path in sorted(local.items()):
            mtime = path.stat().st_mtime
            if self._uploaded.get(name) == mtime:
                continue
            if path.is_dir():
                self.remote.put_folder(path, name)
                self.remote.put_bytes(f"{name}/{MARKER}", b"")
            else:
                self.remote.put_file(path, name)
            self._uploaded[name] = mtime
            logger.info("checkpoint %s saved to %s", name, self.remote.uri(name))
        for name in set(self._uploaded) - set(local):
            self.remote.delete_prefix(name) if not name.endswith(".ckpt") else self.remote.delete(name)
            del self._uploaded[name]

    def on_progress(self, event: ProgressEvent) -> None:
        """ProgressReporter hook: sync after training events; storage errors are logged, not raised."""
        if event.phase not in ("training", "saving", "completed"):
            return
        try:
            self.sync()
        except StorageError as err:
            logger.warning("could not mirror checkpoints to %s: %s", self.remote.uri(), err)
