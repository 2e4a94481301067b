"""Probes and metrics: GET /healthz, /readyz and /metrics (outside the versioned API)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from musicgen_ops.serving.deps import MetricsDep, ServiceDep
from musicgen_ops.serving.errors import without_paths
from musicgen_ops.serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok", ready=True)


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(service: ServiceDep) -> JSONResponse:
    """Readiness: 503 until the preloaded models are loaded and warmed up, and again while draining."""
    if service.draining:
        body = Health(status="draining", ready=False, detail="shutting down: finishing accepted work")
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    if service.ready:
        body = Health(status="ok", ready=True)
    elif service.startup_error:
        body = Health(status="failed", ready=False, detail=without_paths(service.startup_error))
    else:
        body = Health(status="loading", ready=False, detail=f"loading {', '.join(service.settings.preload)}")
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if service.ready else 503)


@router.get("/metrics", response_class=Response)
def metrics(metrics: MetricsDep, service: ServiceDep) -> Response:
    """Prometheus text exposition: requests, latency, batch sizes, queue depth, cache events."""
    metrics.queue_depth.set(service.queue_depth)
    metrics.models_loaded.set(len(service.cache.entries()))
    return Response(metrics.render(), media_type=metrics.content_type)
