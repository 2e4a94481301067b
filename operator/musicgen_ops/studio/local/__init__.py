"""The local backend: ``file://`` storage, ``train-job`` subprocesses, generation in-process, SQLite state."""

from musicgen_ops.studio.local.backend import LocalBackend

__all__ = ["LocalBackend"]
