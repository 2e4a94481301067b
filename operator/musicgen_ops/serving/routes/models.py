"""GET /v1/models: models in the cache and available to load."""

from __future__ import annotations

from fastapi import APIRouter

from musicgen_ops.serving.deps import ServiceDep
from musicgen_ops.serving.schemas import ModelList

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=ModelList)
def list_models(service: ServiceDep) -> ModelList:
    """Loaded models (with memory) and models available under the models root or artifact store."""
    return service.list_models()
