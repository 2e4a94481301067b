"""GenerationRequest: wait for the model, run a generator Job, report the audio and its result JSON."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from musicgen_ops.api.common import ConditionType
from musicgen_ops.api.generationrequest import (
    GenerationPhase,
    GenerationRequestSpec,
    GenerationRequestStatus,
    JobTimings,
)
from musicgen_ops.api.trainedmodel import ModelPhase, TrainedModelSpec
from musicgen_ops.contracts.generation import GenerationJobResult
from musicgen_ops.controllers import artifacts, metrics
from musicgen_ops.controllers.builders.jobs import (
    build_generation_job,
    generate_settings,
    generation_job_name,
    model_uri,
)
from musicgen_ops.controllers.builders.labels import Owner
from musicgen_ops.controllers.context import Context, describe_validation_error
from musicgen_ops.controllers.failures import JOB_NAME_LABEL, failure_reason, job_outcome
from musicgen_ops.controllers.kube import GENERATION_REQUESTS, JOBS, PODS, TRAINED_MODELS
from musicgen_ops.controllers.status import StatusUpdate, now

logger = logging.getLogger(__name__)
RESOURCE = "generationrequests"
TERMINAL = {GenerationPhase.SUCCEEDED.value, GenerationPhase.FAILED.value}


def is_running(status: Mapping[str, Any] | None) -> bool:
    """Whether a generator Job is running for this request."""
    return (status or {}).get("phase") == GenerationPhase.RUNNING.value


async def _write(ctx: Context, owner: Owner, update: StatusUpdate) -> None:
    patch = update.as_patch()
    await ctx.kube.patch_status(GENERATION_REQUESTS, owner.namespace, owner.name, patch)
    if "phase" in patch:
        metrics.record_phase(RESOURCE, owner.namespace, owner.name, patch["phase"])


async def _fail(ctx: Context, owner: Owner, update: StatusUpdate, reason: str, message: str) -> None:
    update.set(failureReason=reason, completionTime=now())
    update.condition(ConditionType.FAILED.value, True, reason, message)
    update.phase(GenerationPhase.FAILED.value, reason, message, warning=True)
    await _write(ctx, owner, update)


async def reconcile(body: Mapping[str, Any], ctx: Context) -> None:
    """Validate, resolve the model (wait while it is not Ready), then create the generator Job once."""
    owner = Owner.from_body(body)
    update = StatusUpdate(body)
    status = body.get("status") or {}
    if status.get("phase") in TERMINAL or status.get("jobName"):
        return
    try:
        spec = GenerationRequestSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as err:
        message = describe_validation_error(err)
        update.condition(ConditionType.VALIDATED.value, False, "InvalidSpec", message)
        await _fail(ctx, owner, update, "InvalidSpec", message)
        raise kopf.PermanentError(message) from err
    update.condition(ConditionType.VALIDATED.value, True, "SpecValid", "the spec is valid")
    model = await ctx.kube.get(TRAINED_MODELS, owner.namespace, spec.trained_model_id)
    if model is None:
        message = f"TrainedModel {spec.trained_model_id!r} does not exist in namespace {owner.namespace}"
        update.condition(ConditionType.MODEL_READY.value, False, "ModelNotFound", message)
        await _fail(ctx, owner, update, "ModelNotFound", message)
        raise kopf.PermanentError(message)
    model_phase = (model.get("status") or {}).get("phase")
    if model_phase != ModelPhase.READY.value:
        message = (
            f"waiting for TrainedModel {spec.trained_model_id} to be Ready (it is {model_phase or 'Pending'})"
        )
        update.condition(ConditionType.MODEL_READY.value, False, "ModelNotReady", message)
        update.phase(GenerationPhase.WAITING.value, "WaitingForModel", message)
        await _write(ctx, owner, update)
        raise kopf.TemporaryError(message, delay=ctx.config.progress_poll_seconds)
    model_spec = TrainedModelSpec.model_validate(dict(model.get("spec") or {}))
    model_id = model_spec.model_id or spec.trained_model_id
    folder = model_uri(model_spec.artifacts_uri or ctx.config.artifacts_uri, model_id)
    settings = generate_settings(owner, spec, model_id, folder, model_spec.base_model, ctx.config)
    manifest = build_generation_job(owner, spec, settings, ctx.config)
    _, created = await ctx.kube.get_or_create(JOBS, manifest)
    job_name = manifest["metadata"]["name"]
    update.condition(ConditionType.MODEL_READY.value, True, "ModelReady", f"model {model_id}")
    update.condition(ConditionType.JOB_CREATED.value, True, "JobCreated", f"Job {job_name}")
    update.set(
        jobName=job_name,
        modelUri=folder,
        outputUri=settings.output_uri,
        resultUri=settings.result_uri,
        startTime=now(),
    )
    update.phase(
        GenerationPhase.RUNNING.value, "JobCreated", f"{'created' if created else 'found'} Job {job_name}"
    )
    await _write(ctx, owner, update)


def result_fields(result: GenerationJobResult) -> dict[str, Any]:
    """Status fields (camelCase) from the result a generator Job writes next to the audio."""
    status = GenerationRequestStatus(
        output_uri=result.output_uri,
        seed=result.seed,
        audio_seconds=result.duration_seconds,
        sample_rate=result.sample_rate,
        timings=JobTimings.pick(result.timings),
    )
    return status.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True, mode="json")


async def poll(body: Mapping[str, Any], ctx: Context) -> bool:
    """Check the generator Job once; returns False when it finished."""
    owner = Owner.from_body(body)
    status = body.get("status") or {}
    job_name = status.get("jobName") or generation_job_name(owner.name)
    job = await ctx.kube.get(JOBS, owner.namespace, job_name)
    if job is None:
        return True
    outcome = job_outcome(job)
    update = StatusUpdate(body)
    if outcome == "Succeeded":
        try:
            result = (
                await asyncio.to_thread(artifacts.read_generation_result, status["resultUri"])
                if status.get("resultUri")
                else None
            )
        except ValidationError as err:  # a result this operator cannot read: say so, do not retry forever
            message = (
                f"the Job succeeded but its result {status['resultUri']} is not a generation result: {err}"
            )
            await _fail(ctx, owner, update, "InvalidResult", message[:1000])
            return False
        if result is not None:
            update.set(**result_fields(result))
        update.set(completionTime=now())
        update.condition(
            ConditionType.SUCCEEDED.value, True, "JobSucceeded", f"audio at {status.get('outputUri')}"
        )
        update.phase(
            GenerationPhase.SUCCEEDED.value, "Succeeded", f"audio written to {status.get('outputUri')}"
        )
        total = result.timings.total_seconds if result is not None else None
        metrics.GENERATION_SECONDS.labels("succeeded").observe(float(total or 0))
        await _write(ctx, owner, update)
        return False
    if outcome == "Failed":
        pods = await ctx.kube.list(PODS, owner.namespace, {JOB_NAME_LABEL: job_name})
        reason, message = failure_reason(job, pods)
        metrics.GENERATION_SECONDS.labels("failed").observe(0)
        await _fail(ctx, owner, update, reason, message)
        return False
    return True


async def follow(body: Mapping[str, Any], ctx: Context, stopped: Any) -> None:
    """The daemon's loop while the generator Job runs."""
    while not stopped:
        try:
            if not await poll(body, ctx):
                return
        except Exception as err:
            logger.warning("following GenerationRequest %s failed: %s", body["metadata"]["name"], err)
        await stopped.wait(ctx.config.progress_poll_seconds)


async def delete(body: Mapping[str, Any], ctx: Context) -> None:
    """Remove the generator Job (the audio stays in storage)."""
    owner = Owner.from_body(body)
    await ctx.kube.delete(JOBS, owner.namespace, generation_job_name(owner.name))
    metrics.record_phase(RESOURCE, owner.namespace, owner.name, None)
