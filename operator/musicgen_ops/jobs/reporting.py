"""Training progress to object storage: the Job writes ``progress.json``, the operator polls it.

No pod needs Kubernetes API rights: the trainer only writes to the storage it already uses for
artifacts, throttled so a fast loop does not hammer the store.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from musicgen_ops.pipeline.progress import ProgressEvent
from musicgen_ops.storage import StorageError, open_object

logger = logging.getLogger(__name__)


class StorageProgressReporter:
    """Writes the latest ProgressEvent as JSON to ``progress_uri``, at most every ``min_interval`` s
    (phase changes and the final event are always written). Storage errors are logged, not raised."""

    def __init__(self, progress_uri: str, min_interval: float = 5.0) -> None:
        self.store, self.key = open_object(progress_uri)
        self.min_interval = min_interval
        self._last_write = 0.0
        self._last_phase: str | None = None

    def on_progress(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.phase == self._last_phase and now - self._last_write < self.min_interval:
            return
        self.write(event)
        self._last_write, self._last_phase = now, event.phase

    def write(self, event: ProgressEvent) -> None:
        """Write one event now."""
        stamped = event.model_copy(
            update={"updated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        )
        try:
            self.store.put_bytes(
                self.key, stamped.model_dump_json().encode(), content_type="application/json"
            )
        except StorageError as err:
            logger.warning("could not write progress to %s: %s", self.store.uri(self.key), err)
