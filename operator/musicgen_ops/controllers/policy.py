"""Checks made before any Job exists: cross-field rules, allowed images, storage Secrets, model owners.

Each check returns a problem sentence (or None); the controller turns problems into InvalidSpec.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from pydantic import BaseModel

from musicgen_ops.api.trainingjob import TrainingJobSpec
from musicgen_ops.controllers import artifacts
from musicgen_ops.controllers.builders.jobs import training_job_name
from musicgen_ops.controllers.builders.labels import Owner, resource_label
from musicgen_ops.controllers.builders.workers import name_problem
from musicgen_ops.controllers.context import Context
from musicgen_ops.controllers.kube import SECRETS, TRAINED_MODELS

#: Label on a TrainedModel naming the uid of the TrainingJob that produced it.
OWNER_UID_LABEL = "musicgen.io/trainingjob-uid"


#: Run-shaping fields added after runs existed, left out of the digest at their default: the digest of a
#: run created before them (stored in its status) still matches once the operator knows them.
LATER_FIELDS_AT_DEFAULT: dict[tuple[str, str], Any] = {
    ("resources", "nodes"): 1,
    ("training", "samplePrompts"): [],
    ("training", "sampleSeconds"): 4.0,
    ("training", "sampleSeed"): 0,
}


def run_shaping(spec: BaseModel) -> dict[str, Any]:
    """The immutable part of a spec (``immutable_fields``), camelCase, as Kubernetes stores it."""
    fields = set(getattr(type(spec), "immutable_fields", ()))
    dumped = spec.model_dump(by_alias=True, mode="json", include=fields)
    for (parent, name), default in LATER_FIELDS_AT_DEFAULT.items():
        if isinstance(dumped.get(parent), dict) and dumped[parent].get(name) == default:
            dumped[parent] = {k: v for k, v in dumped[parent].items() if k != name}
    return dict(sorted(dumped.items()))


def spec_digest(spec: BaseModel) -> str:
    """A short digest of the run-shaping spec: what the Job was built from."""
    canonical = json.dumps(run_shaping(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def image_problem(image: str | None, ctx: Context, field: str = "spec.image") -> str | None:
    """An image that is not on the operator's allow-list."""
    allowed = ctx.config.image_allow_list
    if image is None or image in allowed:
        return None
    return f"{field}: image {image!r} is not allowed (allowed: {', '.join(sorted(allowed))})"


async def secret_problem(name: str | None, namespace: str, ctx: Context) -> str | None:
    """A user-chosen storage Secret that is missing or lacks the storage label."""
    if not name:
        return None
    label = ctx.config.storage_secret_label
    secret = await ctx.kube.get(SECRETS, namespace, name)
    if secret is None:
        return f"spec.storageSecret: Secret {name!r} does not exist in namespace {namespace}"
    if ((secret.get("metadata") or {}).get("labels") or {}).get(label) != "true":
        return f'spec.storageSecret: Secret {name!r} is not labelled {label}: "true"'
    return None


async def model_owner_problem(owner: Owner, model_id: str, ctx: Context) -> str | None:
    """A model id that another TrainingJob (or an earlier one of the same name) already owns."""
    model = await ctx.kube.get(TRAINED_MODELS, owner.namespace, model_id)
    if model is not None:
        labels = (model.get("metadata") or {}).get("labels") or {}
        if labels.get(OWNER_UID_LABEL) != owner.uid:
            by = labels.get(resource_label("TrainingJob")) or (model.get("spec") or {}).get("trainingJob")
            return (
                f"spec.modelId: TrainedModel {model_id!r} already exists"
                + (f" (trained by TrainingJob {by})" if by else "")
                + "; choose another spec.modelId or delete that model"
            )
        return None
    if await asyncio.to_thread(artifacts.model_published, ctx.config.artifacts_uri, model_id):
        return (
            f"spec.modelId: a model {model_id!r} is already published under {ctx.config.artifacts_uri}; "
            "choose another spec.modelId"
        )
    return None


async def training_problems(owner: Owner, spec: TrainingJobSpec, ctx: Context) -> list[str]:
    """Every reason not to create the training Job for this spec."""
    problems = [
        name_problem(training_job_name(owner.name), spec.resources),
        image_problem(spec.image, ctx),
        await secret_problem(spec.storage_secret, owner.namespace, ctx),
        await model_owner_problem(owner, spec.model_id or owner.name, ctx),
    ]
    return [p for p in problems if p]
