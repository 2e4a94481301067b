"""Datasets: create, list, get, delete, and upload tracks (streamed, decoded, size-checked)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from musicgen_ops.studio.deps import BackendDep, SettingsDep
from musicgen_ops.studio.direct_uploads import DirectUploads
from musicgen_ops.studio.schemas import (
    DatasetCreate,
    DatasetPublic,
    DatasetsPublic,
    DirectUploadComplete,
    DirectUploadCreate,
    DirectUploadPublic,
    Message,
    TrackPublic,
)
from musicgen_ops.studio.settings import StudioSettings
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


def direct_uploads(settings: StudioSettings) -> DirectUploads:
    """Presigned uploads into the studio's artifact store, with its size limit and URL lifetime."""
    return DirectUploads(
        settings.artifacts_uri, settings.max_upload_bytes, settings.direct_upload_expiry_seconds
    )


@router.post(
    "/{name}/uploads",
    response_model=DirectUploadPublic,
    status_code=201,
    responses={501: {"model": Message, "description": "The artifact store offers no presigned uploads"}},
)
def create_direct_upload(
    name: str, body: DirectUploadCreate, backend: BackendDep, settings: SettingsDep
) -> DirectUploadPublic:
    """A presigned URL to PUT one (large) audio file straight into S3/Azure; 501 on a file:// store."""
    backend.check_dataset(name)
    return direct_uploads(settings).create(name, body.filename, body.size)


@router.post("/{name}/uploads/{upload_id}/complete", response_model=TrackPublic, status_code=201)
async def complete_direct_upload(
    name: str, upload_id: str, body: DirectUploadComplete, backend: BackendDep, settings: SettingsDep
) -> TrackPublic:
    """Check a presigned upload (size, real decoding) and store it as a track; it is deleted either way."""
    await asyncio.to_thread(backend.check_dataset, name)
    uploads = direct_uploads(settings)
    with StagingFolder(settings.root) as staging:
        staged = await asyncio.to_thread(uploads.fetch, name, upload_id, staging)
        try:
            info = await asyncio.to_thread(audio_details, staged)
            prompt = body.prompt.strip() or staged.path.stem.replace("_", " ")
            return await asyncio.to_thread(
                backend.add_track, name, staged.filename, staged.path, prompt, info
            )
        finally:
            await asyncio.to_thread(uploads.discard, upload_id)
