"""The lifecycle of the files the studio writes: a generation's uploaded inputs, orphans, and the sweep.

Each generation's uploaded inputs live in one folder ``generation-inputs/[<namespace>/]<folder>/``
(see :mod:`musicgen_ops.studio.generation_inputs`). Deleting a generation deletes that folder unless
another generation (its A/B twin) still names it; a generation that could not be created has its
folder deleted at once. Whatever is left behind anyway (a crash between two steps, a GenerationRequest
deleted with kubectl) is an *orphan*: the sweep deletes input folders that no generation names and
whose newest object is older than the retention, and presigned uploads whose ticket expired.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

from musicgen_ops.contracts.generation import GenerationParameters
from musicgen_ops.storage import ArtifactStore, StorageError
from musicgen_ops.storage import NotFoundError as StorageNotFoundError
from musicgen_ops.studio.generation_inputs import INPUT_PARTS

logger = logging.getLogger(__name__)

#: Name of an input folder (``store_inputs``): nothing else below ``generation-inputs/`` is swept.
INPUT_FOLDER = re.compile(r"^[0-9a-f]{12}$")
DAY = timedelta(days=1)


def utc_now() -> datetime:
    """The current time (a function, so tests can move the clock)."""
    return datetime.now(timezone.utc)


def input_folders(store: ArtifactStore, params: Iterable[GenerationParameters]) -> set[str]:
    """The input folders of ``store`` that these generations' parameters name."""
    root = store.uri("").rstrip("/") + "/"
    folders = set()
    for one in params:
        for field in INPUT_PARTS.values():
            uri = getattr(one, field, None)
            if uri and uri.startswith(root):
                folder = uri.removeprefix(root).split("/", 1)[0]
                if INPUT_FOLDER.match(folder):
                    folders.add(folder)
    return folders


def delete_input_folders(store: ArtifactStore, folders: Iterable[str]) -> None:
    """Delete input folders (a storage error is logged: the sweep retries later)."""
    for folder in folders:
        if not INPUT_FOLDER.match(folder):
            continue
        try:
            store.delete_prefix(folder)
        except StorageError as err:
            logger.warning("could not delete generation inputs %s: %s", store.uri(folder), err)


def sweep_input_folders(
    store: ArtifactStore, referenced: set[str], retention: timedelta, now: datetime | None = None
) -> list[str]:
    """Delete input folders no generation names whose newest object is older than ``retention``.

    Returns:
        The folders deleted.
    """
    cutoff = (now or utc_now()) - retention
    newest: dict[str, datetime] = {}
    try:
        listing = list(store.list(""))
    except StorageNotFoundError:  # no bucket yet: nothing stored
        return []
    for info in listing:
        folder = info.key.split("/", 1)[0]
        if not INPUT_FOLDER.match(folder) or info.last_modified is None:
            continue
        newest[folder] = max(info.last_modified, newest.get(folder, info.last_modified))
    orphans = sorted(f for f, stamp in newest.items() if stamp < cutoff and f not in referenced)
    delete_input_folders(store, orphans)
    if orphans:
        logger.info("deleted %d orphaned generation input folder(s) from %s", len(orphans), store.uri(""))
    return orphans


class Throttle:
    """At most one run per key and interval, process-wide (for sweeps piggy-backed on API calls)."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, key: str, interval_seconds: float) -> bool:
        """Whether ``key`` may run now (and, if so, its next run is ``interval_seconds`` away)."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < interval_seconds:
                return False
            self._last[key] = now
            return True


def periodically(sweep: Callable[[], object], interval_seconds: float, what: str) -> asyncio.Task[None]:
    """Run ``sweep`` in a thread now and every ``interval_seconds`` (errors are logged, never raised)."""

    async def loop() -> None:
        while True:
            try:
                await asyncio.to_thread(sweep)
            except Exception:
                logger.exception("%s failed (it runs again in %g s)", what, interval_seconds)
            await asyncio.sleep(interval_seconds)

    return asyncio.create_task(loop())
