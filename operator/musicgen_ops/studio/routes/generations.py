"""Generations: create (optionally A/B against the base model), list, get, audio and spectrogram."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from musicgen_ops.studio.deps import BackendDep, SettingsDep
from musicgen_ops.studio.generation_inputs import UPLOAD_OPENAPI, receive_inputs
from musicgen_ops.studio.schemas import GenerationCreate, GenerationPublic, GenerationsPublic, Message
from musicgen_ops.studio.uploads import StagingFolder, audio_details

router = APIRouter(prefix="/generations", tags=["generations"])

MEDIA_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".png": "image/png",
}


@router.post("", response_model=GenerationPublic, status_code=202)
def create_generation(body: GenerationCreate, backend: BackendDep) -> GenerationPublic:
    """Queue a generation; with ``compare_with_base`` the base model renders the same prompt and seed."""
    return backend.create_generation(body)


@router.post("/upload", response_model=GenerationPublic, status_code=202, openapi_extra=UPLOAD_OPENAPI)
async def create_generation_with_audio(
    request: Request, backend: BackendDep, settings: SettingsDep
) -> GenerationPublic:
    """Queue a generation that continues an uploaded clip (``audio_prompt``) and/or follows an uploaded
    melody (``melody``); multipart with the GenerationCreate as a JSON ``request`` part."""
    with StagingFolder(settings.root) as staging:
        body, files = await receive_inputs(
            request.headers.get("content-type", ""), request.stream(), staging, settings.max_input_bytes
        )
        for staged in files:
            await asyncio.to_thread(audio_details, staged)  # decodes: refused before anything is stored
        return await asyncio.to_thread(backend.create_generation, body, files)


@router.get("", response_model=GenerationsPublic)
def list_generations(backend: BackendDep) -> GenerationsPublic:
    """The latest generations, newest first."""
    data = backend.list_generations()
    return GenerationsPublic(data=data, count=len(data))


@router.get("/{generation_id}", response_model=GenerationPublic)
def get_generation(generation_id: str, backend: BackendDep) -> GenerationPublic:
    """One generation and its result."""
    return backend.get_generation(generation_id)


@router.delete("/{generation_id}", response_model=Message)
def delete_generation(generation_id: str, backend: BackendDep) -> Message:
    """Delete a generation, its audio and its uploaded inputs; with it its A/B twin (``compare_id``)."""
    backend.delete_generation(generation_id)
    return Message(message=f"generation {generation_id} deleted")


@router.get("/{generation_id}/audio", response_class=FileResponse)
def generation_audio(generation_id: str, backend: BackendDep) -> FileResponse:
    """The generated audio file."""
    path = backend.generation_file(generation_id, "audio")
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix),
        filename=f"{generation_id}{path.suffix}",
        content_disposition_type="inline",
    )


@router.get("/{generation_id}/spectrogram", response_class=FileResponse)
def generation_spectrogram(generation_id: str, backend: BackendDep) -> FileResponse:
    """The spectrogram PNG of the generated audio."""
    return FileResponse(backend.generation_file(generation_id, "spectrogram"), media_type="image/png")
