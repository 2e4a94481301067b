"""The worker pods of a multi-node TrainingJob: their headless Service and what status says about them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from musicgen_ops.controllers.builders.labels import Owner
from musicgen_ops.controllers.builders.workers import build_workers_service
from musicgen_ops.controllers.context import Context
from musicgen_ops.controllers.kube import SERVICES
from musicgen_ops.controllers.status import post_event


def is_indexed(job: Mapping[str, Any]) -> bool:
    """Whether the Job runs several worker pods (an Indexed Job)."""
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


async def ensure_service(ctx: Context, owner: Owner, job: Mapping[str, Any], body: Mapping[str, Any]) -> None:
    """Create the workers' headless Service of an Indexed Job (owned by the Job, so it goes with it)."""
    if not is_indexed(job):
        return
    service, created = await ctx.kube.get_or_create(SERVICES, build_workers_service(owner, dict(job)))
    name = service["metadata"]["name"]
    if created:
        post_event(body, "ServiceCreated", f"created headless Service {name} for the worker pods")
        return
    owners = {ref.get("uid") for ref in service["metadata"].get("ownerReferences") or []}
    if job["metadata"]["uid"] not in owners:  # an earlier Job's (not yet collected) or somebody else's
        message = (
            f"Service {name} exists but does not belong to Job {job['metadata']['name']}: the workers cannot "
            "find each other through it; waiting for it to go (delete it if the operator did not create it)"
        )
        post_event(body, "ServiceConflict", message, warning=True)
        raise kopf.TemporaryError(message, delay=10)


def worker_fields(job: Mapping[str, Any]) -> dict[str, Any]:
    """Status fields of an Indexed Job's workers: 'running/requested' and the indexes that failed for good."""
    if not is_indexed(job):
        return {}
    total = int((job.get("spec") or {}).get("completions") or 1)
    status = job.get("status") or {}
    fields: dict[str, Any] = {"workers": f"{int(status.get('active') or 0)}/{total}"}
    if status.get("failedIndexes"):
        fields["failedIndexes"] = status["failedIndexes"]
    return fields


def waiting_note(job: Mapping[str, Any]) -> str:
    """What a Running message adds while some workers are not running yet (they cannot rendezvous)."""
    if not is_indexed(job):
        return ""
    total = int((job.get("spec") or {}).get("completions") or 1)
    status = job.get("status") or {}
    running = int(status.get("active") or 0) + int(status.get("succeeded") or 0)
    if running >= total:
        return f" ({total}/{total} workers)"
    return (
        f" ({running}/{total} workers; the others wait for a node, and training starts when all have "
        "joined the rendezvous)"
    )
