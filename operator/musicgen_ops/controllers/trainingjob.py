"""TrainingJob: validate, run one training Job, follow its progress, create the TrainedModel."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from musicgen_ops.api.common import API_VERSION, ConditionType
from musicgen_ops.api.trainingjob import TrainingJobSpec, TrainingJobStatus, TrainingPhase
from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.controllers import artifacts, metrics
from musicgen_ops.controllers.builders.jobs import (
    build_training_job,
    model_uri,
    progress_uri,
    training_job_name,
)
from musicgen_ops.controllers.builders.labels import Owner, child_labels
from musicgen_ops.controllers.context import Context, describe_validation_error
from musicgen_ops.controllers.failures import JOB_NAME_LABEL, failure_reason, is_suspended, job_outcome
from musicgen_ops.controllers.kube import JOBS, PODS, TRAINED_MODELS, TRAINING_JOBS
from musicgen_ops.controllers.status import StatusUpdate, now, post_event

logger = logging.getLogger(__name__)
RESOURCE = "trainingjobs"
TERMINAL = {TrainingPhase.SUCCEEDED.value, TrainingPhase.FAILED.value}


def is_active(status: Mapping[str, Any] | None) -> bool:
    """Whether the TrainingJob still needs following (not Succeeded/Failed)."""
    return (status or {}).get("phase") not in TERMINAL


async def _write(ctx: Context, owner: Owner, update: StatusUpdate) -> None:
    patch = update.as_patch()
    await ctx.kube.patch_status(TRAINING_JOBS, owner.namespace, owner.name, patch)
    if "phase" in patch:
        metrics.record_phase(RESOURCE, owner.namespace, owner.name, patch["phase"])


def parse_spec(spec: Mapping[str, Any]) -> TrainingJobSpec:
    """Validate the spec; an invalid one raises kopf.PermanentError with every problem named."""
    try:
        return TrainingJobSpec.model_validate(dict(spec))
    except ValidationError as err:
        raise kopf.PermanentError(describe_validation_error(err)) from err


async def reconcile(body: Mapping[str, Any], ctx: Context) -> None:
    """Create (or find) the training Job for this spec and reflect it in the status; idempotent."""
    owner = Owner.from_body(body)
    update = StatusUpdate(body)
    status = body.get("status") or {}
    if status.get("phase") in TERMINAL:
        if update.generation != status.get("observedGeneration"):
            post_event(
                body,
                "SpecChangeIgnored",
                f"the run is {status['phase']}; create a new TrainingJob",
                warning=True,
            )
        return
    try:
        spec = parse_spec(body.get("spec") or {})
    except kopf.PermanentError as err:
        update.condition(ConditionType.VALIDATED.value, False, "InvalidSpec", str(err))
        update.phase(TrainingPhase.FAILED.value, "InvalidSpec", str(err), warning=True)
        update.set(failureReason="InvalidSpec")
        await _write(ctx, owner, update)
        raise
    update.condition(ConditionType.VALIDATED.value, True, "SpecValid", "the spec is valid")
    manifest = build_training_job(owner, spec, ctx.config)
    job, created = await ctx.kube.get_or_create(JOBS, manifest)
    job_name = manifest["metadata"]["name"]
    if created:
        post_event(body, "JobCreated", f"created Job {job_name}")
    elif bool((job.get("spec") or {}).get("suspend")) != spec.suspend:
        await ctx.kube.patch(JOBS, owner.namespace, job_name, {"spec": {"suspend": spec.suspend}})
        post_event(body, "Suspended" if spec.suspend else "Resumed", f"Job {job_name} suspend={spec.suspend}")
    update.condition(ConditionType.JOB_CREATED.value, True, "JobCreated", f"Job {job_name}")
    update.condition(
        ConditionType.SUSPENDED.value, spec.suspend, "SuspendSet" if spec.suspend else "NotSuspended"
    )
    update.set(
        jobName=job_name,
        totalEpochs=spec.training.epochs,
        progressUri=progress_uri(ctx.config.artifacts_uri, owner.namespace, owner.name),
    )
    if not status.get("epochs"):
        update.set(epochs=f"0/{spec.training.epochs}", progressPercent=0)
    if spec.suspend:
        update.phase(TrainingPhase.SUSPENDED.value, "Suspended", f"Job {job_name} is suspended")
    elif status.get("phase") in (None, TrainingPhase.SUSPENDED.value, TrainingPhase.PENDING.value):
        update.phase(TrainingPhase.PENDING.value, "JobCreated", f"Job {job_name} is waiting for its pod")
    await _write(ctx, owner, update)


def progress_fields(progress: TrainingProgress) -> dict[str, Any]:
    """Status fields (camelCase) from a training Job's ``progress.json``."""
    status = TrainingJobStatus(
        current_epoch=round(progress.epoch, 2),
        total_epochs=progress.total_epochs or None,
        epochs=f"{int(progress.epoch)}/{progress.total_epochs}" if progress.total_epochs else None,
        current_step=progress.step,
        total_steps=progress.total_steps or None,
        progress_percent=progress.percent if progress.total_steps else None,
        current_loss=_rounded(progress.loss),
        validation_loss=_rounded(progress.val_loss),
        base_validation_loss=_rounded(progress.base_val_loss),
        eta_seconds=int(progress.eta_seconds) if progress.eta_seconds is not None else None,
        training_phase=progress.phase,
        last_progress_time=progress.updated_at,
    )
    return status.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True, mode="json")


def _rounded(value: float | None) -> float | None:
    return round(value, 5) if value is not None else None


async def _create_trained_model(ctx: Context, owner: Owner, spec: TrainingJobSpec, body: Mapping) -> str:
    model_id = spec.model_id or owner.name
    trained_model = {
        "apiVersion": API_VERSION,
        "kind": "TrainedModel",
        "metadata": {
            "name": model_id,
            "namespace": owner.namespace,
            # No ownerReference: the model must outlive the TrainingJob that produced it.
            "labels": child_labels(owner.kind, owner.name, "model"),
        },
        "spec": {
            "modelId": model_id,
            "artifactsUri": ctx.config.artifacts_uri,
            "baseModel": spec.base_model,
            "formats": list(spec.export_formats),
            "trainingJob": owner.name,
        },
    }
    _, created = await ctx.kube.get_or_create(TRAINED_MODELS, trained_model)
    if created:
        post_event(body, "TrainedModelCreated", f"created TrainedModel {model_id}")
    return model_id


def _duration(status: Mapping[str, Any]) -> float | None:
    start = status.get("startTime")
    if not start:
        return None
    began = datetime.datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    return (datetime.datetime.now(tz=datetime.timezone.utc) - began).total_seconds()


async def poll(body: Mapping[str, Any], ctx: Context) -> bool:
    """Follow the Job once: progress, suspension, success or failure. Returns False when finished."""
    owner = Owner.from_body(body)
    status = body.get("status") or {}
    if not is_active(status):
        return False
    job_name = status.get("jobName") or training_job_name(owner.name)
    job = await ctx.kube.get(JOBS, owner.namespace, job_name)
    if job is None:
        return True  # not created yet (the reconcile handler creates it)
    update = StatusUpdate(body)
    spec = TrainingJobSpec.model_validate(dict(body.get("spec") or {}))
    outcome = job_outcome(job)
    uri = progress_uri(ctx.config.artifacts_uri, owner.namespace, owner.name)
    try:
        progress = await asyncio.to_thread(artifacts.read_progress, uri)
    except Exception as err:  # storage hiccups and half-written files must not stop following the Job
        logger.warning("cannot read %s: %s", uri, err)
        progress = None
    if progress is not None:
        update.set(**progress_fields(progress))
    if outcome == "Succeeded":
        model_id = await _create_trained_model(ctx, owner, spec, body)
        update.set(
            trainedModel=model_id,
            artifactsUri=model_uri(ctx.config.artifacts_uri, model_id),
            completionTime=(job.get("status") or {}).get("completionTime") or now(),
            progressPercent=100,
            epochs=f"{spec.training.epochs}/{spec.training.epochs}",
            etaSeconds=0,
        )
        update.condition(ConditionType.RUNNING.value, False, "JobFinished")
        update.condition(ConditionType.SUCCEEDED.value, True, "JobSucceeded", f"model {model_id} is trained")
        update.phase(TrainingPhase.SUCCEEDED.value, "Succeeded", f"trained model {model_id}")
        metrics.TRAINING_SECONDS.labels("succeeded").observe(_duration(status) or 0)
    elif outcome == "Failed":
        pods = await ctx.kube.list(PODS, owner.namespace, {JOB_NAME_LABEL: job_name})
        reason, message = failure_reason(job, pods)
        update.set(failureReason=reason, completionTime=now())
        update.condition(ConditionType.RUNNING.value, False, "JobFinished")
        update.condition(ConditionType.FAILED.value, True, reason, message)
        update.phase(TrainingPhase.FAILED.value, reason, message, warning=True)
        metrics.TRAINING_SECONDS.labels("failed").observe(_duration(status) or 0)
    elif is_suspended(job):
        update.phase(TrainingPhase.SUSPENDED.value, "Suspended", f"Job {job_name} is suspended")
    elif (job.get("status") or {}).get("active") or (job.get("status") or {}).get("startTime"):
        if not status.get("startTime"):
            update.set(startTime=(job.get("status") or {}).get("startTime") or now())
        update.condition(ConditionType.RUNNING.value, True, "PodRunning", f"Job {job_name} is running")
        update.phase(TrainingPhase.RUNNING.value, "Running", f"Job {job_name} is running")
    await _write(ctx, owner, update)
    return outcome is None


async def follow(body: Mapping[str, Any], ctx: Context, stopped: Any) -> None:
    """The daemon's loop: poll every PROGRESS_POLL_SECONDS until the run ends or the daemon stops."""
    while not stopped:
        try:
            if not await poll(body, ctx):
                return
        except ValidationError:
            return  # an invalid spec is reported by the reconcile handler
        except Exception as err:
            logger.warning("following TrainingJob %s failed, retrying: %s", body["metadata"]["name"], err)
        await stopped.wait(ctx.config.progress_poll_seconds)


async def delete(body: Mapping[str, Any], ctx: Context) -> None:
    """Remove the Job (owner references do this on a real cluster; explicit is safe); keep the model."""
    owner = Owner.from_body(body)
    job_name = (body.get("status") or {}).get("jobName") or training_job_name(owner.name)
    if await ctx.kube.delete(JOBS, owner.namespace, job_name):
        logger.info("deleted Job %s/%s", owner.namespace, job_name)
    metrics.record_phase(RESOURCE, owner.namespace, owner.name, None)
