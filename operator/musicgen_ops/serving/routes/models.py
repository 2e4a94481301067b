"""GET /v1/models: models in the cache and available to load."""

from __future__ import annotations

from fastapi import APIRouter

from musicgen_ops.serving.deps import ServiceDep
from musicgen_ops.serving.errors import without_paths
from musicgen_ops.serving.schemas import ModelList

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=ModelList)
def list_models(service: ServiceDep) -> ModelList:
    """Loaded models (with memory) and models available under the models root or artifact store
    (local sources shown without the server's folder layout)."""
    listing = service.list_models()
    for info in listing.models:
        info.source = without_paths(info.source) if info.source else info.source
    return listing
