"""HTTP routes, one module per resource, assembled into ``api_router`` (mounted under ``/v1``)."""

from __future__ import annotations

from fastapi import APIRouter

from musicgen_ops.serving.routes import generate, health, models

api_router = APIRouter()
api_router.include_router(generate.router)
api_router.include_router(models.router)

__all__ = ["api_router", "generate", "health", "models"]
