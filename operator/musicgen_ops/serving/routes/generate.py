"""POST /v1/generate (audio, or a job id for long requests) and GET /v1/jobs/{id}[/audio]."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from musicgen_ops.serving.audio_inputs import UPLOAD_OPENAPI, read_upload
from musicgen_ops.serving.deps import ServiceDep
from musicgen_ops.serving.errors import JobNotFinishedError
from musicgen_ops.serving.schemas import (
    ErrorBody,
    GenerateRequest,
    GenerationResult,
    JobAccepted,
    JobState,
    JobStatus,
)

router = APIRouter(tags=["generate"])

MEDIA_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
}
_ERRORS = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (404, "Unknown trained_model_id"),
        (422, "Invalid parameters (every bad field listed)"),
        (413, "Request body (or an uploaded audio part) larger than the server's limit"),
        (429, "Queue full: retry after Retry-After seconds"),
        (
            503,
            "Model not ready, the server is shutting down (retry after Retry-After seconds), or the "
            "requested decoder is not available here",
        ),
    )
}


def result_headers(result: GenerationResult) -> dict[str, str]:
    """What the sidecar says, as response headers of an audio answer."""
    return {
        "X-Result-Id": result.id,
        "X-Model-Id": result.model_id,
        "X-Seed": str(result.seed),
        "X-Sample-Rate": str(result.sample_rate),
        "X-Duration-Seconds": f"{result.duration_seconds:.6f}",
        "X-Num-Samples": str(result.num_samples),
        "X-Wall-Seconds": f"{result.wall_seconds:.4f}",
        "X-Real-Time-Factor": f"{result.real_time_factor:.4f}",
        "X-Batch-Size": str(result.batch_size),
        "X-Windows": str(result.windows),
        "X-Decoder": result.decoder,
    }


_ANSWERS: dict[int | str, dict] = {
    200: {
        "content": {"audio/wav": {}, "audio/flac": {}},
        "description": "The audio, metadata in X-* headers",
    },
    202: {"model": JobAccepted, "description": "Long request: poll the job"},
    **_ERRORS,
}
ModeQuery = Query(
    "auto", description="auto: a job for tracks longer than the server's sync limit; sync; async."
)


@router.post("/generate", response_class=Response, status_code=status.HTTP_200_OK, responses=_ANSWERS)
async def generate(
    params: GenerateRequest,
    service: ServiceDep,
    mode: Literal["auto", "sync", "async"] = ModeQuery,
) -> Response:
    """Generate a track: the audio file itself, or 202 with a job id for long requests."""
    return await answer(params, service, mode)


@router.post(
    "/generate/upload",
    response_class=Response,
    status_code=status.HTTP_200_OK,
    responses=_ANSWERS,
    openapi_extra=UPLOAD_OPENAPI,
)
async def generate_upload(
    request: Request,
    service: ServiceDep,
    mode: Literal["auto", "sync", "async"] = ModeQuery,
) -> Response:
    """Generate a track continuing an uploaded clip and/or following an uploaded melody (multipart:
    a JSON ``parameters`` part, optional ``audio_prompt`` and ``melody`` file parts)."""
    params = await read_upload(request.headers.get("content-type", ""), request.stream(), service.settings)
    return await answer(params, service, mode)


async def answer(params: GenerateRequest, service: ServiceDep, mode: str) -> Response:
    """The audio of a short request, or 202 with a job id (``mode``, the server's sync limit)."""
    settings = service.settings
    if mode == "async" or (mode == "auto" and params.duration_seconds > settings.sync_max_seconds):
        job = service.submit_job(params)
        url = f"/v1/jobs/{job.job_id}"
        body = JobAccepted(job_id=job.job_id, state=job.state, status_url=url)
        return JSONResponse(body.model_dump(mode="json"), status_code=202, headers={"Location": url})
    scratch = settings.output_dir / "sync"
    result = await service.generate_track(params, scratch)
    files = [Path(p) for p in (result.audio_path, result.sidecar_path, result.spectrogram_path) if p]
    return FileResponse(
        result.audio_path,
        media_type=MEDIA_TYPES[result.output_format],
        filename=f"{result.id}.{result.output_format}",
        headers=result_headers(result),
        background=BackgroundTask(_remove, files),  # the answer carries everything: keep no files
    )


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def public_status(job: JobStatus) -> JobStatus:
    """What a caller sees of a job: file names instead of server paths, and the audio URL once done."""
    if job.result is None:
        return job
    result = job.result
    names = {
        key: Path(path).name if path else None
        for key, path in (
            ("audio_path", result.audio_path),
            ("sidecar_path", result.sidecar_path),
            ("spectrogram_path", result.spectrogram_path),
        )
    }
    audio_url = f"/v1/jobs/{job.job_id}/audio" if job.state == JobState.SUCCEEDED else None
    return job.model_copy(update={"result": result.model_copy(update=names), "audio_url": audio_url})


@router.get("/jobs/{job_id}", response_model=JobStatus, responses={404: _ERRORS[404] | {"model": ErrorBody}})
async def get_job(job_id: str, service: ServiceDep) -> JobStatus:
    """State of an asynchronous generation, with its result once it succeeded (a snapshot)."""
    return public_status(service.get_job(job_id))


@router.get(
    "/jobs/{job_id}/audio",
    response_class=FileResponse,
    responses={
        200: {"content": {"audio/wav": {}, "audio/flac": {}}},
        404: {"model": ErrorBody},
        409: {"model": ErrorBody},
    },
)
async def get_job_audio(job_id: str, service: ServiceDep) -> FileResponse:
    """The audio of a finished job."""
    job = service.get_job(job_id)
    if job.state != JobState.SUCCEEDED or job.result is None:
        raise JobNotFinishedError(
            f"job {job_id} is {job.state.value}: no audio" + (f" ({job.error})" if job.error else "")
        )
    result = job.result
    return FileResponse(
        result.audio_path,
        media_type=MEDIA_TYPES[result.output_format],
        filename=f"{result.id}.{result.output_format}",
        headers=result_headers(result),
    )
