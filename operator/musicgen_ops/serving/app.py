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
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from musicgen_ops import __version__
from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.serving.errors import register_exception_handlers
from musicgen_ops.serving.limits import BodySizeLimit
from musicgen_ops.serving.routes import api_router, health
from musicgen_ops.serving.service import EngineFactory, GenerationService

logger = logging.getLogger(__name__)

API_PREFIX = "/v1"
DOCS_ASSETS = "/docs/assets"


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
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    register_exception_handlers(app)
    streamed = frozenset({f"{API_PREFIX}/generate/upload"})  # each part limited as it streams
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, streamed_paths=streamed)
    app.include_router(api_router, prefix=API_PREFIX)
    app.include_router(health.router)
    _add_local_docs(app)
    return app


def _add_local_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` from assets shipped in the ``swagger-ui-bundle`` package (no CDN)."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )
