"""Domain errors of the generation service and their HTTP status codes (registered once on the app).

The service raises these without knowing about HTTP; ``register_exception_handlers`` maps them (and
the pipeline's and storage's typed errors) to status codes and one JSON body shape (``ErrorBody``).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from musicgen_ops.pipeline.errors import InvalidParametersError, ModelNotAvailableError, PipelineError

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger(__name__)


__all__ = [
    "DecoderNotAvailableError",
    "InferenceError",
    "InvalidParametersError",
    "JobNotFinishedError",
    "JobNotFoundError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "PayloadTooLargeError",
    "ServiceBusyError",
    "ServiceDrainingError",
    "ServingError",
    "excerpt",
    "register_exception_handlers",
    "status_for",
    "without_paths",
]

#: Longest piece of the caller's input repeated in an error answer.
EXCERPT_CHARS = 60
#: Longest message in an error answer.
MAX_MESSAGE_CHARS = 600
#: Most invalid fields listed in one error answer.
MAX_LISTED_FIELDS = 10
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/])/(?:[^\s'\"/:]+/)+([^\s'\"/:]+)")


class ServingError(Exception):
    """Base of the service's errors; ``status_code`` is the HTTP answer."""

    status_code = 500
    code = "InternalError"

    def __init__(self, message: str, *, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class ModelNotFoundError(ServingError):
    """No model with that id under the models root or the artifact store."""

    status_code = 404
    code = "ModelNotFound"


class ModelNotReadyError(ServingError):
    """The model is still loading or warming up."""

    status_code = 503
    code = "ModelNotReady"


class ServiceBusyError(ServingError):
    """The request queue is full: try again later (HTTP 429 with Retry-After)."""

    status_code = 429
    code = "ServiceBusy"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceDrainingError(ServiceBusyError):
    """The server is shutting down: no new work (HTTP 503 with Retry-After)."""

    status_code = 503
    code = "ShuttingDown"


class DecoderNotAvailableError(ServingError):
    """The requested audio decoder cannot be loaded here (e.g. MultiBand Diffusion weights missing)."""

    status_code = 503
    code = "DecoderNotAvailable"


class JobNotFoundError(ServingError):
    """No job with that id (never existed, or forgotten)."""

    status_code = 404
    code = "JobNotFound"


class JobNotFinishedError(ServingError):
    """The job has no audio (yet): still queued or running, or it failed."""

    status_code = 409
    code = "JobNotFinished"


class PayloadTooLargeError(ServingError):
    """A request (or one part of an upload) over its size limit."""

    status_code = 413
    code = "PayloadTooLarge"


class InferenceError(ServingError):
    """Generation failed inside the engine."""

    status_code = 500
    code = "InferenceError"


def status_for(err: BaseException) -> tuple[int, str]:
    """HTTP status and error code for any exception the service may raise."""
    if isinstance(err, ServingError):
        return err.status_code, err.code
    if isinstance(err, InvalidParametersError):
        return 422, "InvalidParameters"
    if isinstance(err, ModelNotAvailableError):
        return 404, "ModelNotFound"
    if isinstance(err, PipelineError):
        return 500, "InferenceError"
    try:
        from musicgen_ops.storage import NotFoundError, StorageError
    except ImportError:  # pragma: no cover - storage is part of the serve extra
        return 500, "InternalError"
    if isinstance(err, NotFoundError):
        return 404, "ModelNotFound"
    if isinstance(err, StorageError):
        return 502, "StorageError"
    return 500, "InternalError"


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``repr`` of a value cut to ``limit`` characters (the caller's input is never echoed in full)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def without_paths(text: str) -> str:
    """The message with absolute server paths cut to their last part (no server layout in answers)."""
    return _ABSOLUTE_PATH.sub(lambda match: f".../{match.group(1)}", text)


def describe_request_errors(errors: list[dict[str, Any]]) -> list[str]:
    """One short line per invalid field of a request body; JSON syntax errors say where and why."""
    lines = []
    for item in errors:
        loc = [str(p) for p in item.get("loc", ()) if p != "body"]
        if item.get("type") == "json_invalid":
            position = item["loc"][-1] if item.get("loc") else "?"
            reason = (item.get("ctx") or {}).get("error", "not valid JSON")
            lines.append(f"body: invalid JSON at character {position}: {reason}")
            continue
        where = ".".join(part[:EXCERPT_CHARS] for part in loc) or "body"
        lines.append(f"{where}: {item.get('msg')} (got {excerpt(item.get('input'))})")
    return lines


def shorten_lines(lines: list[str]) -> list[str]:
    """At most ``MAX_LISTED_FIELDS`` lines (then a count of the rest), each cut to a readable length."""
    if len(lines) > MAX_LISTED_FIELDS:
        lines = [*lines[:MAX_LISTED_FIELDS], f"... and {len(lines) - MAX_LISTED_FIELDS} more"]
    limit = 4 * EXCERPT_CHARS
    return [line if len(line) <= limit else line[:limit] + "..." for line in lines]


def register_exception_handlers(app: FastAPI) -> None:
    """Answer every domain error (and request validation) with ``ErrorBody`` and its status code."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from musicgen_ops.serving.schemas import ErrorBody

    async def domain_error(request: Request, err: Exception) -> JSONResponse:
        status, code = status_for(err)
        if status >= 500:
            logger.error("%s %s failed: %s", request.method, request.url.path, err, exc_info=err)
        fields = getattr(err, "fields", None)
        message = without_paths(getattr(err, "message", str(err)))
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + "..."
        if fields:
            fields = [without_paths(line) for line in shorten_lines(fields)]
        body = ErrorBody(error=code, message=message, fields=fields)
        headers = {"Retry-After": str(err.retry_after)} if isinstance(err, ServiceBusyError) else None
        return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)

    async def invalid_request(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, RequestValidationError)
        all_fields = describe_request_errors(list(err.errors()))
        fields = shorten_lines(all_fields)
        request.app.state.service.metrics.requests.labels(outcome="invalid").inc()
        body = ErrorBody(
            error="InvalidParameters",
            message=f"{len(all_fields)} invalid parameter(s): " + "; ".join(fields),
            fields=fields,
        )
        return JSONResponse(body.model_dump(), status_code=422)

    app.add_exception_handler(RequestValidationError, invalid_request)
    for error_type in (ServingError, PipelineError):
        app.add_exception_handler(error_type, domain_error)
    try:
        from musicgen_ops.storage import StorageError
    except ImportError:  # pragma: no cover
        return
    app.add_exception_handler(StorageError, domain_error)
