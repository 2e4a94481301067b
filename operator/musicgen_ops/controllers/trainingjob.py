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
from musicgen_ops.api.trainedmodel import DeletionPolicy
from musicgen_ops.api.trainingjob import TrainingJobSpec, TrainingJobStatus, TrainingPhase
from musicgen_ops.contracts.environment import TrainJobEnvironment
from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.controllers import artifacts, metrics, policy, workers
from musicgen_ops.controllers.builders.jobs import (
    build_training_job,
    model_uri,
    progress_uri,
    run_uri,
    training_job_name,
)
from musicgen_ops.controllers.builders.labels import QUEUE_LABEL, Owner, child_labels
from musicgen_ops.controllers.context import Context, describe_validation_error
from musicgen_ops.controllers.failures import (
    JOB_NAME_LABEL,
    failed_attempts,
    failure_reason,
    is_suspended,
    job_outcome,
)
from musicgen_ops.controllers.kube import JOBS, PODS, TRAINED_MODELS, TRAINING_JOBS
from musicgen_ops.controllers.policy import spec_digest
from musicgen_ops.controllers.status import (
    StatusUpdate,
    get_condition,
    non_finite_paths,
    now,
    post_event,
    rounded_loss,
    write_status,
)

logger = logging.getLogger(__name__)
RESOURCE = "trainingjobs"
TERMINAL = {TrainingPhase.SUCCEEDED.value, TrainingPhase.FAILED.value}


def is_active(status: Mapping[str, Any] | None) -> bool:
    """Whether the TrainingJob still needs following (not Succeeded/Failed)."""
    return (status or {}).get("phase") not in TERMINAL


async def _write(ctx: Context, owner: Owner, update: StatusUpdate) -> None:
    patch = await write_status(ctx.kube, TRAINING_JOBS, owner.namespace, owner.name, update)
    if "phase" in patch:
        metrics.record_phase(RESOURCE, owner.namespace, owner.name, patch["phase"])


def parse_spec(spec: Mapping[str, Any]) -> TrainingJobSpec:
    """Validate the spec; an invalid one raises kopf.PermanentError with every problem named."""
    try:
        return TrainingJobSpec.model_validate(dict(spec))
    except ValidationError as err:
        raise kopf.PermanentError(describe_validation_error(err)) from err


async def _fail(ctx: Context, owner: Owner, update: StatusUpdate, reason: str, message: str) -> None:
    update.set(failureReason=reason, completionTime=now())
    update.condition(ConditionType.RUNNING.value, False, "JobFinished" if reason != "InvalidSpec" else reason)
    update.condition(ConditionType.FAILED.value, True, reason, message)
    update.phase(TrainingPhase.FAILED.value, reason, message, warning=True)
    await _write(ctx, owner, update)


async def _invalid(ctx: Context, owner: Owner, update: StatusUpdate, message: str) -> None:
    update.condition(ConditionType.VALIDATED.value, False, "InvalidSpec", message)
    update.observe()
    await _fail(ctx, owner, update, "InvalidSpec", message)
    raise kopf.PermanentError(message)


def is_queued(owner: Owner) -> bool:
    """Whether Kueue manages the Job (the resource carries a queue label): then only Kueue suspends."""
    return bool(owner.labels.get(QUEUE_LABEL))


async def _refuse_edit(ctx: Context, owner: Owner, update: StatusUpdate, spec: TrainingJobSpec) -> None:
    """An edit of a run-shaping field once the Job exists: say so, change nothing, keep the generation."""
    fields = ", ".join(f"spec.{TrainingJobSpec.model_fields[f].alias or f}" for f in spec.immutable_fields)
    message = (
        f"generation {update.generation} changes what shapes the run; {fields} cannot change once the Job "
        "exists (create a new TrainingJob); the Job keeps running as created"
    )
    update.condition(ConditionType.SPEC_ACCEPTED.value, False, "ImmutableFieldChanged", message)
    post_event(update.body, "SpecChangeRejected", message, warning=True)
    await _write(ctx, owner, update)


async def reconcile(body: Mapping[str, Any], ctx: Context) -> None:
    """Create (or find) the training Job for this spec and reflect it in the status; idempotent."""
    owner = Owner.from_body(body)
    update = StatusUpdate(body)
    status = body.get("status") or {}
    if status.get("phase"):  # resume after a restart: rebuild the by-phase gauge
        metrics.record_phase(RESOURCE, owner.namespace, owner.name, status["phase"])
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
        if status.get("jobName"):  # the Job runs with the spec it was created from
            await _refuse_edit(ctx, owner, update, TrainingJobSpec.model_construct())
            return
        await _invalid(ctx, owner, update, str(err))
    digest = spec_digest(spec)
    if status.get("specDigest") and status["specDigest"] != digest:
        await _refuse_edit(ctx, owner, update, spec)
        return
    manifest = build_training_job(owner, spec, ctx.config, queued=is_queued(owner))
    job_name = manifest["metadata"]["name"]
    job = await ctx.kube.get(JOBS, owner.namespace, job_name)
    if job is None and status.get("jobName"):
        await _job_lost(ctx, owner, update, job_name)
        return
    if job is None:
        problems = await policy.training_problems(owner, spec, ctx)
        if problems:
            await _invalid(ctx, owner, update, "; ".join(problems))
        job, created = await ctx.kube.get_or_create(JOBS, manifest)
        if created:
            post_event(body, "JobCreated", f"created Job {job_name}")
    if owner.uid not in {ref.get("uid") for ref in (job.get("metadata") or {}).get("ownerReferences") or []}:
        raise kopf.TemporaryError(
            f"Job {job_name} belongs to an earlier TrainingJob {owner.name}; waiting", delay=5
        )
    await workers.ensure_service(ctx, owner, job, body)
    if not is_queued(owner) and bool((job.get("spec") or {}).get("suspend")) != spec.suspend:
        await ctx.kube.patch(JOBS, owner.namespace, job_name, {"spec": {"suspend": spec.suspend}})
        post_event(body, "Suspended" if spec.suspend else "Resumed", f"Job {job_name} suspend={spec.suspend}")
    update.observe()
    update.condition(ConditionType.VALIDATED.value, True, "SpecValid", "the spec is valid")
    update.condition(
        ConditionType.SPEC_ACCEPTED.value, True, "JobMatchesSpec", f"generation {update.generation}"
    )
    update.condition(ConditionType.JOB_CREATED.value, True, "JobCreated", f"Job {job_name}")
    run = run_uri(ctx.config.artifacts_uri, owner.namespace, owner.name, owner.uid)
    update.set(
        jobName=job_name,
        specDigest=digest,
        totalEpochs=spec.training.epochs,
        runUri=run,
        progressUri=progress_uri(ctx.config.artifacts_uri, owner.namespace, owner.name, owner.uid),
        requestedWorldSize=spec.resources.world_size,
    )
    if not status.get("epochs"):
        update.set(epochs=f"0/{spec.training.epochs}", progressPercent=0)
    if is_queued(owner):
        if is_suspended(job):
            _queued(update, owner, job_name)
    else:
        update.condition(
            ConditionType.SUSPENDED.value, spec.suspend, "SuspendSet" if spec.suspend else "NotSuspended"
        )
        if spec.suspend:
            update.phase(TrainingPhase.SUSPENDED.value, "Suspended", f"Job {job_name} is suspended")
        elif status.get("phase") in (None, TrainingPhase.SUSPENDED.value, TrainingPhase.PENDING.value):
            update.phase(TrainingPhase.PENDING.value, "JobCreated", f"Job {job_name} is waiting for its pod")
    await _write(ctx, owner, update)


def _queued(update: StatusUpdate, owner: Owner, job_name: str) -> None:
    queue = owner.labels.get(QUEUE_LABEL)
    message = f"Job {job_name} waits for Kueue to admit it to queue {queue}"
    update.condition(ConditionType.ADMITTED.value, False, "Queued", message)
    update.phase(TrainingPhase.QUEUED.value, "Queued", message)


async def _job_lost(ctx: Context, owner: Owner, update: StatusUpdate, job_name: str) -> None:
    """The Job this run was following is gone: fail instead of silently training again."""
    message = f"Job {job_name} disappeared before it finished; create a new TrainingJob to train again"
    update.condition(ConditionType.JOB_CREATED.value, False, "JobLost", message)
    await _fail(ctx, owner, update, "JobLost", message)


def progress_fields(progress: TrainingProgress) -> dict[str, Any]:
    """Status fields (camelCase) from a training Job's ``progress.json``."""
    status = TrainingJobStatus(
        current_epoch=round(progress.epoch, 2),
        total_epochs=progress.total_epochs or None,
        epochs=f"{int(progress.epoch)}/{progress.total_epochs}" if progress.total_epochs else None,
        current_step=progress.step,
        total_steps=progress.total_steps or None,
        progress_percent=progress.percent if progress.total_steps else None,
        current_loss=rounded_loss(progress.loss),
        validation_loss=rounded_loss(progress.val_loss),
        base_validation_loss=rounded_loss(progress.base_val_loss),
        eta_seconds=int(progress.eta_seconds) if progress.eta_seconds is not None else None,
        training_phase=progress.phase,
        last_progress_time=progress.updated_at,
        world_size=progress.world_size,
    )
    return status.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True, mode="json")


#: progress.json fields that may hold NaN/Infinity and the status fields they feed.
PROGRESS_STATUS_FIELDS = {"loss": "currentLoss", "val_loss": "validationLoss", "eta_seconds": "etaSeconds"}


def job_environment(job: Mapping[str, Any]) -> TrainJobEnvironment:
    """What the Job really runs: the train-job environment of its container (not today's spec)."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", "") for e in container.get("env") or [] if "value" in e}
    return TrainJobEnvironment.from_environ(env)


async def _create_trained_model(
    ctx: Context, owner: Owner, run: TrainJobEnvironment, body: Mapping
) -> tuple[str, str | None]:
    """The TrainedModel of a finished run: (model id, problem when another owner holds that name)."""
    model_id = run.model_id
    trained_model = {
        "apiVersion": API_VERSION,
        "kind": "TrainedModel",
        "metadata": {
            "name": model_id,
            "namespace": owner.namespace,
            # No ownerReference: the model must outlive the TrainingJob that produced it.
            "labels": {**child_labels(owner.kind, owner.name, "model"), policy.OWNER_UID_LABEL: owner.uid},
        },
        "spec": {
            "modelId": model_id,
            "artifactsUri": ctx.config.artifacts_uri,
            "baseModel": run.base_model,
            "formats": list(run.export_formats),
            "trainingJob": owner.name,
        },
    }
    model, created = await ctx.kube.get_or_create(TRAINED_MODELS, trained_model)
    if created:
        post_event(body, "TrainedModelCreated", f"created TrainedModel {model_id}")
    elif ((model.get("metadata") or {}).get("labels") or {}).get(policy.OWNER_UID_LABEL) != owner.uid:
        return model_id, f"TrainedModel {model_id} belongs to another TrainingJob; it was left unchanged"
    return model_id, None


def _duration(status: Mapping[str, Any]) -> float | None:
    start = status.get("startTime")
    if not start:
        return None
    began = datetime.datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    return (datetime.datetime.now(tz=datetime.timezone.utc) - began).total_seconds()


async def _read_progress(uri: str, update: StatusUpdate) -> None:
    try:
        progress, non_finite = await asyncio.to_thread(artifacts.read_progress, uri)
    except Exception as err:  # storage hiccups and half-written files must not stop following the Job
        logger.warning("cannot read %s: %s", uri, err)
        return
    if progress is None:
        return
    fields = progress_fields(progress)
    bad = non_finite + non_finite_paths(fields)
    update.set(**fields)
    update.set(**{PROGRESS_STATUS_FIELDS[k]: None for k in non_finite if k in PROGRESS_STATUS_FIELDS})
    if bad:
        message = f"progress.json held non-finite numbers in {', '.join(bad)}; shown as empty"
        update.condition(ConditionType.PROGRESS_VALID.value, False, "NonFiniteNumber", message)
    elif get_condition(update.old, ConditionType.PROGRESS_VALID.value):
        update.condition(ConditionType.PROGRESS_VALID.value, True, "FiniteNumbers")


async def _attempts(ctx: Context, owner: Owner, job: Mapping[str, Any], update: StatusUpdate) -> list[dict]:
    """Count the pods started and keep every failed one (each with its own reason)."""
    job_status = job.get("status") or {}
    failed = int(job_status.get("failed") or 0)
    started = failed + int(job_status.get("active") or 0) + int(job_status.get("succeeded") or 0)
    update.set(attempts=started or None)
    known = list(update.old.get("failedAttempts") or [])
    if failed > len(known) or (failed and job_outcome(job) == "Failed"):
        pods = await ctx.kube.list(PODS, owner.namespace, {JOB_NAME_LABEL: job["metadata"]["name"]})
        seen = {a.get("pod") for a in known}
        known += [a for a in failed_attempts(pods) if a["pod"] not in seen]
        update.set(failedAttempts=known)
        return pods
    return []


async def poll(body: Mapping[str, Any], ctx: Context) -> bool:
    """Follow the Job once: progress, admission, success or failure. Returns False when finished."""
    owner = Owner.from_body(body)
    status = body.get("status") or {}
    if not is_active(status):
        return False
    if not status.get("jobName"):
        return True  # not created yet (the reconcile handler creates it)
    job_name = status["jobName"]
    update = StatusUpdate(body)
    job = await ctx.kube.get(JOBS, owner.namespace, job_name)
    if job is None:
        await _job_lost(ctx, owner, update, job_name)
        return False
    run = job_environment(job)
    outcome = job_outcome(job)
    await _read_progress(run.progress_uri, update)
    pods = await _attempts(ctx, owner, job, update)
    update.set(**workers.worker_fields(job))
    epochs = run.training.epochs
    if outcome == "Succeeded":
        model_id, problem = await _create_trained_model(ctx, owner, run, body)
        if problem:
            await _fail(ctx, owner, update, "ModelOwnedByAnother", problem)
            return False
        update.set(
            trainedModel=model_id,
            artifactsUri=model_uri(ctx.config.artifacts_uri, model_id),
            completionTime=(job.get("status") or {}).get("completionTime") or now(),
            progressPercent=100,
            epochs=f"{epochs}/{epochs}",
            etaSeconds=0,
        )
        update.condition(ConditionType.RUNNING.value, False, "JobFinished")
        update.condition(ConditionType.SUCCEEDED.value, True, "JobSucceeded", f"model {model_id} is trained")
        update.phase(TrainingPhase.SUCCEEDED.value, "Succeeded", f"trained model {model_id}")
        metrics.TRAINING_SECONDS.labels("succeeded").observe(_duration(status) or 0)
    elif outcome == "Failed":
        reason, message = failure_reason(job, pods)
        metrics.TRAINING_SECONDS.labels("failed").observe(_duration(status) or 0)
        await _fail(ctx, owner, update, reason, message)
        return False
    elif is_suspended(job):
        if is_queued(owner):
            _queued(update, owner, job_name)
        else:
            update.phase(TrainingPhase.SUSPENDED.value, "Suspended", f"Job {job_name} is suspended")
    else:
        if is_queued(owner):
            queue = owner.labels.get(QUEUE_LABEL)
            update.condition(
                ConditionType.ADMITTED.value, True, "Admitted", f"admitted by Kueue queue {queue}"
            )
        job_status = job.get("status") or {}
        if job_status.get("active") or job_status.get("startTime"):
            if not status.get("startTime"):
                update.set(startTime=job_status.get("startTime") or now())
            running = f"Job {job_name} is running{workers.waiting_note(job)}"
            update.condition(ConditionType.RUNNING.value, True, "PodRunning", running)
            update.phase(TrainingPhase.RUNNING.value, "Running", running)
        elif is_queued(owner) and status.get("phase") == TrainingPhase.QUEUED.value:
            update.phase(TrainingPhase.PENDING.value, "Admitted", f"Job {job_name} is waiting for its pod")
    await _write(ctx, owner, update)
    return outcome is None


async def follow(body: Mapping[str, Any], ctx: Context, stopped: Any) -> None:
    """The daemon's loop: poll every PROGRESS_POLL_SECONDS until the run ends or the daemon stops."""
    while not stopped:
        try:
            if not await poll(body, ctx):
                return
        except Exception as err:
            logger.warning("following TrainingJob %s failed, retrying: %s", body["metadata"]["name"], err)
        await stopped.wait(ctx.config.progress_poll_seconds)


async def delete(body: Mapping[str, Any], ctx: Context) -> None:
    """Remove the Job; with deletionPolicy Delete the run folder too; the TrainedModel stays."""
    owner = Owner.from_body(body)
    status = body.get("status") or {}
    job_name = status.get("jobName") or training_job_name(owner.name)
    if await ctx.kube.delete(JOBS, owner.namespace, job_name):
        logger.info("deleted Job %s/%s", owner.namespace, job_name)
    if (body.get("spec") or {}).get("deletionPolicy") == DeletionPolicy.DELETE.value:
        run = status.get("runUri") or run_uri(
            ctx.config.artifacts_uri, owner.namespace, owner.name, owner.uid
        )
        count = await asyncio.to_thread(artifacts.remove_run, run)
        post_event(body, "RunDeleted", f"deleted {count} objects of run folder {run}")
    metrics.record_phase(RESOURCE, owner.namespace, owner.name, None)
