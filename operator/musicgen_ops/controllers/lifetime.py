"""``spec.ttlSecondsAfterFinished``: delete a finished custom resource after its time to live."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from musicgen_ops.controllers.context import Context
from musicgen_ops.controllers.kube import Resource

logger = logging.getLogger(__name__)
FINISHED = {"Succeeded", "Failed"}


def expiry_seconds(body: Mapping[str, Any], now: datetime.datetime | None = None) -> float | None:
    """Seconds until a finished resource expires (<= 0: due), or None when it never does."""
    ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
    status = body.get("status") or {}
    if ttl is None or status.get("phase") not in FINISHED:
        return None
    finished = status.get("completionTime")
    if not finished:
        return float(ttl)
    at = datetime.datetime.fromisoformat(str(finished).replace("Z", "+00:00"))
    current = now or datetime.datetime.now(tz=datetime.timezone.utc)
    return ttl - (current - at).total_seconds()


def expires(spec: Mapping[str, Any], status: Mapping[str, Any], **_: Any) -> bool:
    """kopf ``when`` filter: a finished resource with a TTL."""
    return expiry_seconds({"spec": spec, "status": status}) is not None


async def expire_after_ttl(body: Mapping[str, Any], ctx: Context, stopped: Any, resource: Resource) -> None:
    """Wait out the TTL (or the daemon's stop), then delete the resource."""
    remaining = expiry_seconds(body)
    if remaining is None:
        return
    if remaining > 0:
        await stopped.wait(remaining)
        if stopped:
            return
    meta = body["metadata"]
    if await ctx.kube.delete(resource, meta["namespace"], meta["name"]):
        logger.info("deleted %s/%s: ttlSecondsAfterFinished passed", meta["namespace"], meta["name"])
