"""Models: published models with their training metrics; delete."""

from __future__ import annotations

from fastapi import APIRouter

from musicgen_ops.studio.deps import BackendDep
from musicgen_ops.studio.schemas import Message, ModelsPublic

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=ModelsPublic)
def list_models(backend: BackendDep) -> ModelsPublic:
    """Every published model, newest first."""
    data = backend.list_models()
    return ModelsPublic(data=data, count=len(data))


@router.delete("/{model_id}", response_model=Message)
def delete_model(model_id: str, backend: BackendDep) -> Message:
    """Delete a published model."""
    backend.delete_model(model_id)
    return Message(message=f"model {model_id} deleted")
