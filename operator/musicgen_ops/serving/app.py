"""The generator's FastAPI app: ``create_app(settings)`` assembles service, routes and error handlers.

Started by ``musicgen-ops serve`` (uvicorn). Preloading runs in the background after start-up, so
``/healthz`` answers at once and ``/readyz`` turns 200 only once the models are loaded and warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.routing import APIRoute

from musicgen_ops import __version__
from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.serving.errors import register_exception_handlers
from musicgen_ops.serving.routes import api_router, health
from musicgen_ops.serving.service import EngineFactory, GenerationService

logger = logging.getLogger(__name__)

API_PREFIX = "/v1"


def _operation_id(route: APIRoute) -> str:
    """Operation ids ``<tag>-<name>`` for clean generated clients."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(
    settings: ServeEnvironment | None = None,
    *,
    engine_factory: EngineFactory | None = None,
) -> FastAPI:
    """The HTTP app for ``settings`` (read from ``MUSICGEN_SERVE_*`` when omitted).

    Args:
        settings: server settings.
        engine_factory: ``model reference -> engine`` override (tests share one engine).
    """
    settings = settings or ServeEnvironment.from_environ()
    service = GenerationService(settings, engine_factory=engine_factory)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        preload = asyncio.create_task(service.start())
        preload.add_done_callback(lambda t: t.cancelled() or t.exception())  # logged by start()
        try:
            yield
        finally:
            preload.cancel()
            await asyncio.gather(preload, return_exceptions=True)
            await service.close()

    app = FastAPI(
        title="musicgen-ops generator",
        version=__version__,
        description="Generate music with MusicGen and LoRA fine-tuned models.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.service = service
    register_exception_handlers(app)
    app.include_router(api_router, prefix=API_PREFIX)
    app.include_router(health.router)
    return app
