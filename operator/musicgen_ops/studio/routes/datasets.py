"""Datasets: create, list, get, delete, and upload tracks (streamed, decoded, size-checked)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from musicgen_ops.studio.deps import BackendDep, SettingsDep
from musicgen_ops.studio.schemas import DatasetCreate, DatasetPublic, DatasetsPublic, Message, TrackPublic
from musicgen_ops.studio.uploads import StagingFolder, audio_details, receive_upload

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.get("", response_model=DatasetsPublic)
def list_datasets(backend: BackendDep) -> DatasetsPublic:
    """Every dataset with its tracks."""
    data = backend.list_datasets()
    return DatasetsPublic(data=data, count=len(data))


@router.post("", response_model=DatasetPublic, status_code=201)
def create_dataset(body: DatasetCreate, backend: BackendDep) -> DatasetPublic:
    """Create an empty dataset."""
    return backend.create_dataset(body.name)


@router.get("/{name}", response_model=DatasetPublic)
def get_dataset(name: str, backend: BackendDep) -> DatasetPublic:
    """One dataset."""
    return backend.get_dataset(name)


@router.delete("/{name}", response_model=Message)
def delete_dataset(name: str, backend: BackendDep) -> Message:
    """Delete a dataset and its files."""
    backend.delete_dataset(name)
    return Message(message=f"dataset {name} deleted")


@router.post("/{name}/tracks", response_model=list[TrackPublic], status_code=201)
async def upload_tracks(
    name: str, request: Request, backend: BackendDep, settings: SettingsDep
) -> list[TrackPublic]:
    """Upload audio files (multipart: ``file`` parts, optional ``prompt``); all valid or nothing stored."""
    await asyncio.to_thread(backend.check_dataset, name)
    with StagingFolder(settings.root) as staging:
        upload = await receive_upload(
            request.headers.get("content-type", ""), request.stream(), staging, settings.max_upload_bytes
        )
        details = [await asyncio.to_thread(audio_details, staged) for staged in upload.files]
        prompt = upload.fields.get("prompt", "").strip()
        stored = []
        for staged, info in zip(upload.files, details, strict=True):
            track_prompt = prompt or staged.path.stem.replace("_", " ")
            stored.append(
                await asyncio.to_thread(
                    backend.add_track, name, staged.filename, staged.path, track_prompt, info
                )
            )
        return stored
