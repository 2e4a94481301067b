"""TrainedModel: check the artifacts in storage, serve the model if asked, honour the deletion policy."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from musicgen_ops.api.common import ConditionType
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
from musicgen_ops.controllers.status import StatusUpdate, now

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
    patch = update.as_patch()
    await ctx.kube.patch_status(TRAINED_MODELS, owner.namespace, owner.name, patch)
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
        update.set(servingUrl=None, deploymentName=None)
        return
    deployment = build_generator_deployment(owner, spec, model_id, root, ctx.config)
    existing, created = await ctx.kube.get_or_create(DEPLOYMENTS, deployment)
    if not created and (existing.get("spec") or {}) != deployment["spec"]:
        await ctx.kube.patch(DEPLOYMENTS, owner.namespace, name, {"spec": deployment["spec"]})
    await ctx.kube.get_or_create(SERVICES, build_generator_service(owner, spec))
    url = serving_url(owner, spec)
    update.set(servingUrl=url, deploymentName=name)
    update.condition(
        ConditionType.SERVING.value,
        True,
        "DeploymentCreated",
        f"{spec.serving.replicas} replica(s) behind {url}",
    )


async def reconcile(body: Mapping[str, Any], ctx: Context) -> str:
    """Check the artifacts, then create/remove the server; returns the phase reached."""
    owner = Owner.from_body(body)
    update = StatusUpdate(body)
    try:
        spec = parse_spec(body.get("spec") or {})
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
        finalLoss=check.final_loss,
        validationLoss=check.validation_loss,
        baseValidationLoss=check.base_validation_loss,
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
