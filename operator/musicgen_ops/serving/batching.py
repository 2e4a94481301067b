"""Request batching of the generation service: requests with the same ``batch_key`` share one forward pass.

A batch opens with its first request, collects for ``batch_window_ms`` and keeps collecting while it
waits for the device semaphore (``max_concurrency`` batches at once), up to ``max_batch_size``
requests; it then runs in a worker thread (``run_batch``: one batched ``generate()`` per window).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.pipeline.errors import InvalidParametersError
from musicgen_ops.pipeline.generation.batch import PreparedRequest, batch_key, run_batch
from musicgen_ops.serving.errors import InferenceError, ServingError
from musicgen_ops.serving.metrics import ServingMetrics

logger = logging.getLogger(__name__)


@dataclass
class Batch:
    """Requests collected for one batched forward pass."""

    engine: Any
    items: list[tuple[PreparedRequest, asyncio.Future]] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class BatchOutcome:
    """One request's audio and how it was made."""

    audio: np.ndarray
    windows: int
    batch_size: int


class Batcher:
    """Collects prepared requests into batches and runs them on the device, a few at a time.

    Args:
        settings: batch size and window, concurrency, continuation windows.
        metrics: observes each batch's size.
        spawn: starts a background task the owner cancels on close.
    """

    def __init__(
        self,
        settings: ServeEnvironment,
        metrics: ServingMetrics,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._spawn = spawn
        self._batches: dict[Hashable, Batch] = {}
        self._device = asyncio.Semaphore(settings.max_concurrency)

    async def submit(self, model_key: str, engine: Any, request: PreparedRequest) -> BatchOutcome:
        """Join (or open) the batch for this request's key and wait for its audio."""
        key = batch_key(model_key, request, engine)
        future: asyncio.Future[BatchOutcome] = asyncio.get_running_loop().create_future()
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = Batch(engine=engine)
            self._spawn(self._run(key, batch))
        batch.items.append((request, future))
        if len(batch.items) >= self.settings.max_batch_size:
            batch.full.set()
            self._batches.pop(key, None)  # later arrivals open a new batch
        return await future

    async def _run(self, key: Hashable, batch: Batch) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(batch.full.wait(), timeout=self.settings.batch_window_ms / 1000)
        async with self._device:  # more requests may join while waiting for the device
            if self._batches.get(key) is batch:
                del self._batches[key]
            items = batch.items
            self.metrics.batch_size.observe(len(items))
            try:
                audio, windows = await asyncio.to_thread(
                    run_batch,
                    batch.engine,
                    [request for request, _ in items],
                    window_seconds=self.settings.window_seconds,
                    stride_seconds=self.settings.stride_seconds,
                )
            except Exception as err:
                logger.exception("batch of %d failed", len(items))
                failure = (
                    err
                    if isinstance(err, (ServingError, InvalidParametersError))
                    else InferenceError(f"generation failed: {err}")
                )
                for _, future in items:
                    if not future.done():
                        future.set_exception(failure)
                return
        for row, (_, future) in enumerate(items):
            if not future.done():
                future.set_result(BatchOutcome(audio=audio[row], windows=windows, batch_size=len(items)))
