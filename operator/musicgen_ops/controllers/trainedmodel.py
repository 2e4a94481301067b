"""TrainedModel: check the artifacts in storage, serve the model if asked, honour the deletion policy."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from musicgen_ops.api.common import DNS_1035_PATTERN, ConditionType
from musicgen_ops.api.trainedmodel import DeletionPolicy, ModelPhase, TrainedModelSpec
from musicgen_ops.controllers import artifacts, metrics
from musicgen_ops.controllers.builders.deployments import (
    build_generator_deployment,
    build_generator_service,
    server_name,
    serving_url,
)
from musicgen_ops.controllers.builders.jobs import model_uri
from musicgen_ops.controllers.builders.labels import Owner
from musicgen_ops.controllers.context import Context, describe_validation_error
from musicgen_ops.controllers.kube import DEPLOYMENTS, SERVICES, TRAINED_MODELS
from musicgen_ops.controllers.policy import image_problem
from musicgen_ops.controllers.status import StatusUpdate, now, post_event, rounded_loss, write_status

#: Annotation holding the digest of the spec the operator last applied to a child object: a child is
#: patched only when what the operator wants changed, never because the API server defaulted fields.
APPLIED_ANNOTATION = "musicgen.io/applied-spec"

logger = logging.getLogger(__name__)
RESOURCE = "trainedmodels"


def parse_spec(spec: Mapping[str, Any]) -> TrainedModelSpec:
    """Validate the spec; an invalid one raises kopf.PermanentError."""
    try:
        return TrainedModelSpec.model_validate(dict(spec))
    except ValidationError as err:
        raise kopf.PermanentError(describe_validation_error(err)) from err


def locate(owner: Owner, spec: TrainedModelSpec, ctx: Context) -> tuple[str, str]:
    """(artifacts root URI, model id) of a TrainedModel."""
    return spec.artifacts_uri or ctx.config.artifacts_uri, spec.model_id or owner.name


async def _write(ctx: Context, owner: Owner, update: StatusUpdate) -> None:
    patch = await write_status(ctx.kube, TRAINED_MODELS, owner.namespace, owner.name, update)
    if "phase" in patch:
        metrics.record_phase(RESOURCE, owner.namespace, owner.name, patch["phase"])


async def _serve(
    ctx: Context, owner: Owner, spec: TrainedModelSpec, root: str, model_id: str, update: StatusUpdate
) -> None:
    name = server_name(owner.name)
    if not spec.serving.enabled:
        removed = await ctx.kube.delete(DEPLOYMENTS, owner.namespace, name)
        await ctx.kube.delete(SERVICES, owner.namespace, name)
        if removed:
            update.condition(ConditionType.SERVING.value, False, "ServingDisabled", f"deleted {name}")
        update.set(servingUrl=None, deploymentName=None, readyReplicas=None)
        return
    deployment = await _apply(
        ctx, DEPLOYMENTS, build_generator_deployment(owner, spec, model_id, root, ctx.config)
    )
    await _apply(ctx, SERVICES, build_generator_service(owner, spec))
    url = serving_url(owner, spec)
    update.set(servingUrl=url, deploymentName=name)
    serving_status(update, deployment, spec.serving.replicas, url)


def applied_digest(obj: Mapping[str, Any]) -> str:
    """Digest of what the operator asks of a child object (its spec and labels)."""
    wanted = {"spec": obj.get("spec"), "labels": (obj.get("metadata") or {}).get("labels")}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]


async def _apply(ctx: Context, resource: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """Create the child, or patch it when the operator's wish changed (a normalised comparison: the
    digest of the last applied spec, not the server-defaulted spec)."""
    digest = applied_digest(wanted)
    wanted["metadata"].setdefault("annotations", {})[APPLIED_ANNOTATION] = digest
    existing, created = await ctx.kube.get_or_create(resource, wanted)
    applied = ((existing.get("metadata") or {}).get("annotations") or {}).get(APPLIED_ANNOTATION)
    if created or applied == digest:
        return existing
    meta = wanted["metadata"]
    patch = {"metadata": {"annotations": {APPLIED_ANNOTATION: digest}}, "spec": wanted["spec"]}
    return await ctx.kube.patch(resource, meta["namespace"], meta["name"], patch)


def serving_status(update: StatusUpdate, deployment: Mapping[str, Any], wanted: int, url: str) -> None:
    """Serving from the Deployment's readyReplicas, with readyReplicas and the URL in status."""
    ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
    update.set(readyReplicas=ready)
    if ready > 0:
        update.condition(
            ConditionType.SERVING.value, True, "ReplicasReady", f"{ready}/{wanted} ready at {url}"
        )
    else:
        update.condition(
            ConditionType.SERVING.value, False, "NoReadyReplicas", f"0/{wanted} generator pods ready yet"
        )


def name_problem(name: str) -> str | None:
    """A name that cannot name the generator Service (DNS-1035)."""
    if re.match(DNS_1035_PATTERN, name):
        return None
    return (
        f"metadata.name: {name!r} cannot name a Service: use a DNS-1035 label (lower-case letters, digits "
        "and '-', starting with a letter)"
    )


async def reconcile(body: Mapping[str, Any], ctx: Context) -> str:
    """Check the artifacts, then create/remove the server; returns the phase reached."""
    owner = Owner.from_body(body)
    update = StatusUpdate(body)
    status = body.get("status") or {}
    if status.get("phase"):  # resume after a restart: rebuild the by-phase gauge
        metrics.record_phase(RESOURCE, owner.namespace, owner.name, status["phase"])
    update.observe()
    try:
        spec = parse_spec(body.get("spec") or {})
        problem = image_problem(spec.serving.image, ctx, "spec.serving.image")
        if spec.serving.enabled:
            problem = name_problem(owner.name) or problem
        if problem:
            raise kopf.PermanentError(problem)
    except kopf.PermanentError as err:
        update.condition(ConditionType.READY.value, False, "InvalidSpec", str(err))
        update.phase(ModelPhase.INVALID.value, "InvalidSpec", str(err), warning=True)
        await _write(ctx, owner, update)
        raise
    root, model_id = locate(owner, spec, ctx)
    check = await asyncio.to_thread(artifacts.check_model, root, model_id, list(spec.formats))
    update.set(artifactsUri=model_uri(root, model_id), checkedTime=now(), missing=check.missing)
    if not check.complete:
        message = "artifacts incomplete, missing: " + ", ".join(check.missing)
        update.condition(ConditionType.ARTIFACTS_READY.value, False, "ArtifactsIncomplete", message)
        update.condition(ConditionType.READY.value, False, "ArtifactsIncomplete", message)
        update.phase(ModelPhase.INVALID.value, "ArtifactsIncomplete", message, warning=True)
        await _write(ctx, owner, update)
        return ModelPhase.INVALID.value
    update.set(
        formats=check.formats,
        formatsText=",".join(check.formats),
        finalLoss=rounded_loss(check.final_loss),
        validationLoss=rounded_loss(check.validation_loss),
        baseValidationLoss=rounded_loss(check.base_validation_loss),
        sizeBytes=check.size_bytes,
    )
    update.condition(
        ConditionType.ARTIFACTS_READY.value,
        True,
        "ManifestFound",
        f"{len(check.formats)} format(s): {', '.join(check.formats)}",
    )
    await _serve(ctx, owner, spec, root, model_id, update)
    update.condition(ConditionType.READY.value, True, "ArtifactsComplete", "the model can be used")
    update.phase(ModelPhase.READY.value, "Ready", f"model {model_id} is ready")
    await _write(ctx, owner, update)
    return ModelPhase.READY.value


async def recheck(body: Mapping[str, Any], ctx: Context, stopped: Any) -> None:
    """While Invalid, look for the artifacts again every poll interval (uploads may finish later)."""
    while not stopped:
        await stopped.wait(ctx.config.progress_poll_seconds)
        if stopped:
            return
        try:
            if await reconcile(body, ctx) == ModelPhase.READY.value:
                return
        except kopf.PermanentError:
            return
        except Exception as err:
            logger.warning("re-checking TrainedModel %s failed: %s", body["metadata"]["name"], err)


def is_serving(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """A Ready model whose spec asks for a server (kopf ``when`` filter of the serving daemon)."""
    return bool(((spec or {}).get("serving") or {}).get("enabled")) and (status or {}).get("phase") == "Ready"


async def watch_serving(body: Mapping[str, Any], ctx: Context, stopped: Any) -> None:
    """While served: readyReplicas into status every poll; a lost Deployment is reported and re-created."""
    owner = Owner.from_body(body)
    name = server_name(owner.name)
    while not stopped:
        try:
            deployment = await ctx.kube.get(DEPLOYMENTS, owner.namespace, name)
            update = StatusUpdate(body)
            if deployment is None:
                message = f"Deployment {name} disappeared; creating it again"
                update.condition(ConditionType.SERVING.value, False, "DeploymentLost", message)
                update.set(readyReplicas=0)
                post_event(body, "DeploymentLost", message, warning=True)
                await _write(ctx, owner, update)
                await reconcile(body, ctx)
            else:
                spec = TrainedModelSpec.model_validate(dict(body.get("spec") or {}))
                serving_status(update, deployment, spec.serving.replicas, serving_url(owner, spec))
                await _write(ctx, owner, update)
        except Exception as err:
            logger.warning("watching the server of TrainedModel %s failed: %s", owner.name, err)
        await stopped.wait(ctx.config.progress_poll_seconds)


async def delete(body: Mapping[str, Any], ctx: Context) -> None:
    """Remove the server; delete the artifacts only with deletionPolicy: Delete."""
    owner = Owner.from_body(body)
    name = server_name(owner.name)
    await ctx.kube.delete(DEPLOYMENTS, owner.namespace, name)
    await ctx.kube.delete(SERVICES, owner.namespace, name)
    spec = TrainedModelSpec.model_validate(dict(body.get("spec") or {}))
    if spec.deletion_policy == DeletionPolicy.DELETE.value:
        root, model_id = locate(owner, spec, ctx)
        count = await asyncio.to_thread(artifacts.remove_model, root, model_id)
        kopf.info(body, reason="ArtifactsDeleted", message=f"deleted {count} objects of model {model_id}")
    metrics.record_phase(RESOURCE, owner.namespace, owner.name, None)
