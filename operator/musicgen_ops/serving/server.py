"""Run the app under uvicorn with a graceful drain on SIGTERM.

Kubernetes sends SIGTERM, waits ``terminationGracePeriodSeconds``, then SIGKILLs. On SIGTERM the
server keeps listening but ``/readyz`` answers 503 (the Service stops routing to the pod), new
generation requests get 503 + Retry-After, and queued and running work finishes — for at most
``drain_seconds``. Then uvicorn shuts down; jobs still unfinished stay in the job store and are
re-run by the next server on the same output folder. A second SIGTERM or SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

from musicgen_ops.serving.service import GenerationService

__all__ = ["DrainingServer", "run"]

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose first SIGTERM drains the generation service before stopping."""

    def __init__(self, config: uvicorn.Config, service: GenerationService) -> None:
        super().__init__(config)
        self.service = service
        self._drain_requested = False
        self._drain: asyncio.Task | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self._drain_requested:
            self._drain_requested = True  # acted upon in on_tick, inside the event loop
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_requested and self._drain is None:
            logger.info("SIGTERM: draining for at most %.1f s", self.service.settings.drain_seconds)
            self._drain = asyncio.create_task(self.service.drain())
        if self._drain is not None and self._drain.done():
            self.should_exit = True
        return await super().on_tick(counter)


def run(app: FastAPI, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` (made by ``create_app``) until SIGTERM has drained it, or SIGINT."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level)
    DrainingServer(config, app.state.service).run()
