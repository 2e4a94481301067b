"""The studio's FastAPI app: ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``) and the web app at ``/``."""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import AsyncIterator
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from musicgen_ops import __version__
from musicgen_ops.storage import StorageError
from musicgen_ops.studio.auth import COOKIE_NAME, matches
from musicgen_ops.studio.backend import Backend, StudioError
from musicgen_ops.studio.direct_uploads import DirectUploads, upload_origin
from musicgen_ops.studio.local.backend import LocalBackend
from musicgen_ops.studio.retention import periodically
from musicgen_ops.studio.routes import api_router
from musicgen_ops.studio.settings import StudioSettings

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
STATIC_DIR = resources.files("musicgen_ops.studio") / "static"
TOKEN_PLACEHOLDER = "__STUDIO_TOKEN__"
BACKEND_PLACEHOLDER = "__STUDIO_BACKEND__"
DIRECT_UPLOAD_PLACEHOLDER = "__STUDIO_DIRECT_UPLOAD_BYTES__"
OPEN_THE_URL = "Open the URL printed by musicgen-ops studio."


def _operation_id(route: APIRoute) -> str:
    """Operation ids ``<tag>-<name>`` for clean generated clients."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def _validation_detail(err: RequestValidationError) -> str:
    """One ``error: <field>: <reason>`` line per problem."""
    lines = []
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"] if part != "body") or "body"
        lines.append(f"error: {where}: {item['msg']}")
    return "; ".join(lines)


def register_exception_handlers(app: FastAPI) -> None:
    """Domain errors and invalid bodies become JSON ``{"detail": "error: ..."}`` with their status."""

    @app.exception_handler(StudioError)
    async def _studio_error(request: Request, err: StudioError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(err)}, status_code=422)


def create_app(settings: StudioSettings, backend: Backend | None = None) -> FastAPI:
    """The studio app over ``backend`` (default: the local backend on ``settings.root``)."""
    if backend is None and settings.backend == "local":
        backend = LocalBackend(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if backend is None:  # kubernetes: one backend per call; only abandoned uploads are swept here
            uploads = DirectUploads(
                settings.artifacts_uri, settings.max_upload_bytes, settings.direct_upload_expiry_seconds
            )
            sweeper = periodically(uploads.sweep, settings.sweep_interval_seconds, "the uploads sweep")
            try:
                yield
            finally:
                sweeper.cancel()
            return
        await backend.start()
        try:
            yield
        finally:
            await backend.close()

    app = FastAPI(
        title="musicgen-ops studio",
        version=__version__,
        description="Upload datasets, train LoRA adapters, watch progress, pick a model and listen.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        generate_unique_id_function=_operation_id,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.backend = backend
    register_exception_handlers(app)
    app.include_router(api_router, prefix=API_PREFIX)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.get("/", include_in_schema=False)
    def index(request: Request, token: str | None = None) -> Response:
        """The web app; locally ``?token=`` sets the session cookie and redirects to a clean URL."""
        page_token = ""  # Kubernetes backend: the page asks for the user's own token
        if settings.backend == "local":
            if token is not None:
                if not matches(token, settings.token):
                    return HTMLResponse(_page("Wrong token", OPEN_THE_URL), 401)
                response = RedirectResponse("/", status_code=303)
                response.set_cookie(COOKIE_NAME, settings.token, httponly=True, samesite="strict", path="/")
                return response
            if not matches(request.cookies.get(COOKIE_NAME), settings.token):
                return HTMLResponse(_page("Token needed", OPEN_THE_URL), 401)
            page_token = settings.token
        page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        page = page.replace(TOKEN_PLACEHOLDER, html.escape(page_token))
        origin = direct_upload_origin(app)
        page = page.replace(DIRECT_UPLOAD_PLACEHOLDER, str(settings.direct_upload_min_bytes if origin else 0))
        policy = CONTENT_SECURITY_POLICY
        if origin:  # the browser PUTs large files straight to the bucket
            policy = policy.replace("connect-src 'self'", f"connect-src 'self' {origin}")
        return HTMLResponse(
            page.replace(BACKEND_PLACEHOLDER, settings.backend),
            headers={"Cache-Control": "no-store", "Content-Security-Policy": policy},
        )

    return app


def direct_upload_origin(app: FastAPI) -> str | None:
    """Where presigned uploads go (asked of the store once), or None when they are off or not offered."""
    settings: StudioSettings = app.state.settings
    if settings.direct_upload_min_bytes <= 0:
        return None
    if not hasattr(app.state, "upload_origin"):
        try:
            app.state.upload_origin = upload_origin(settings.artifacts_uri)
        except StorageError as err:  # asked again on the next page load; multipart meanwhile
            logger.warning("presigned uploads are off for now: %s", err)
            return None
    return app.state.upload_origin


#: Only our own scripts, styles, images and media; nothing from elsewhere, no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)


def _page(title: str, text: str) -> str:
    return (
        f"<!doctype html><meta charset=utf-8><title>{title}</title>"
        f"<body style='font-family:sans-serif;padding:2em'><h1>{title}</h1><p>{text}</p>"
    )
