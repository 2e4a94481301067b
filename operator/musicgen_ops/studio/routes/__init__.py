"""``/api/v1``: one router per resource, all behind the token check."""

from fastapi import APIRouter, Depends

from musicgen_ops.studio.deps import require_token
from musicgen_ops.studio.routes import datasets, generations, models, trainings

api_router = APIRouter(dependencies=[Depends(require_token)])
for _module in (datasets, trainings, models, generations):
    api_router.include_router(_module.router)

__all__ = ["api_router"]
