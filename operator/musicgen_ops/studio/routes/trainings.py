"""Trainings: form defaults, create, list, get, cancel, live progress (SSE) and checkpoint samples."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import FileResponse, StreamingResponse

from musicgen_ops.studio.deps import BackendDep
from musicgen_ops.studio.schemas import TrainingCreate, TrainingDefaults, TrainingPublic, TrainingsPublic

router = APIRouter(prefix="/trainings", tags=["trainings"])


@router.get("/defaults", response_model=TrainingDefaults)
def training_defaults(backend: BackendDep) -> TrainingDefaults:
    """What the new-training form starts with: the training recipe contract's defaults."""
    base_model, recipe = backend.training_defaults()
    return TrainingDefaults(base_model=base_model, recipe=recipe)


@router.post("", response_model=TrainingPublic, status_code=201)
def create_training(body: TrainingCreate, backend: BackendDep) -> TrainingPublic:
    """Queue a training run (one runs at a time)."""
    return backend.create_training(body)


@router.get("", response_model=TrainingsPublic)
def list_trainings(backend: BackendDep) -> TrainingsPublic:
    """Every training run, newest first (without loss curves)."""
    data = backend.list_trainings()
    return TrainingsPublic(data=data, count=len(data))


@router.get("/{training_id}", response_model=TrainingPublic)
def get_training(training_id: str, backend: BackendDep) -> TrainingPublic:
    """One training run with its progress and loss curve."""
    return backend.get_training(training_id)


@router.post("/{training_id}/cancel", response_model=TrainingPublic)
def cancel_training(training_id: str, backend: BackendDep) -> TrainingPublic:
    """Cancel a queued or running training."""
    return backend.cancel_training(training_id)


@router.get("/{training_id}/events", response_class=StreamingResponse)
async def training_events(training_id: str, backend: BackendDep) -> StreamingResponse:
    """Server-Sent Events: a ``training`` event (the whole TrainingPublic) at every change, until it ends."""
    backend.get_training(training_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        async for training in backend.training_events(training_id):
            yield f"event: training\ndata: {training.model_dump_json()}\n\n"
        yield "event: end\ndata: {}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{training_id}/samples/{step}/{index}", response_class=FileResponse)
def training_sample(training_id: str, step: int, index: int, backend: BackendDep) -> FileResponse:
    """The clip of sample prompt ``index`` rendered at checkpoint ``step`` (listed in the progress)."""
    return FileResponse(
        backend.training_sample(training_id, step, index),
        media_type="audio/wav",
        filename=f"{training_id}-step{step}-{index}.wav",
        content_disposition_type="inline",
    )
