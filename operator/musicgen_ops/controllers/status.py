"""Conditions, phase transitions and their Events (Kubernetes API conventions)."""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Mapping
from typing import Any

import kopf

from musicgen_ops.controllers.kube import ConflictError, Kube, Resource

logger = logging.getLogger(__name__)


def now() -> str:
    """The current time as an RFC 3339 string."""
    return (
        datetime.datetime.now(tz=datetime.timezone.utc)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )


def rounded_loss(value: float | None) -> float | None:
    """A loss as status shows it: five decimals (what `kubectl get` prints), None stays None."""
    return round(value, 5) if value is not None else None


def set_condition(
    conditions: list[Mapping[str, Any]] | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    timestamp: str | None = None,
) -> list[dict[str, Any]]:
    """Return ``conditions`` with ``type_`` added or updated.

    ``lastTransitionTime`` changes only when the status flips, as Kubernetes conventions require.
    """
    value = status if isinstance(status, str) else ("True" if status else "False")
    result = [dict(c) for c in conditions or []]
    for condition in result:
        if condition.get("type") == type_:
            if condition.get("status") != value:
                condition["lastTransitionTime"] = timestamp or now()
            condition.update(status=value, reason=reason, message=message)
            if generation is not None:
                condition["observedGeneration"] = generation
            return result
    new = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": timestamp or now(),
    }
    if generation is not None:
        new["observedGeneration"] = generation
    result.append(new)
    return result


def get_condition(status: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    """The condition of that type, if any."""
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return condition
    return None


def non_finite_paths(value: Any, path: str = "") -> list[str]:
    """Paths of NaN/Infinity numbers in a JSON-like value (a real API server rejects them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [path or "."]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in non_finite_paths(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, f"{path}[{i}]")]
    return []


def finite_only(value: Any) -> Any:
    """``value`` with every NaN/Infinity replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_only(v) for v in value]
    return value


class StatusUpdate:
    """A status patch being assembled: phase, conditions and fields, plus the Events to post.

    One writer per condition type: the update remembers which types it set, and :meth:`patch_against`
    merges only those into the conditions currently stored, so the reconcile handler and the progress
    daemon never overwrite each other's conditions. ``observedGeneration`` moves only on :meth:`observe`.
    """

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.old: Mapping[str, Any] = body.get("status") or {}
        self.fields: dict[str, Any] = {}
        self._conditions: list[dict[str, Any]] | None = None
        self._touched: dict[str, dict[str, Any]] = {}
        self._observed = False
        self.generation = (body.get("metadata") or {}).get("generation")

    def observe(self) -> StatusUpdate:
        """Record that this update acted on the object's current generation."""
        self._observed = True
        return self

    @property
    def conditions(self) -> list[dict[str, Any]]:
        """Conditions as they will be after this update."""
        if self._conditions is None:
            self._conditions = [dict(c) for c in self.old.get("conditions") or []]
        return self._conditions

    def condition(self, type_: str, status: bool | str, reason: str, message: str = "") -> StatusUpdate:
        """Set a condition."""
        self._conditions = set_condition(
            self.conditions, type_, status, reason, message, generation=self.generation
        )
        self._touched[type_] = next(c for c in self._conditions if c.get("type") == type_)
        return self

    def phase(self, phase: str, reason: str, message: str = "", *, warning: bool = False) -> StatusUpdate:
        """Move to ``phase``; posts an Event when the phase changes."""
        self.fields["phase"] = phase
        self.fields["reason"] = reason
        self.fields["message"] = message or None
        if self.old.get("phase") != phase:
            post_event(self.body, reason, message or f"phase {phase}", warning=warning)
        return self

    def set(self, **fields: Any) -> StatusUpdate:
        """Set plain status fields (camelCase names); None removes a field."""
        self.fields.update(fields)
        return self

    def as_patch(self) -> dict[str, Any]:
        """The merge-patch body of ``status`` against the snapshot it was built from (only what changed)."""
        return self.patch_against(self.old)

    def patch_against(self, current: Mapping[str, Any]) -> dict[str, Any]:
        """The merge-patch body of ``status`` against ``current`` (the freshest status read): plain fields
        that differ, the stored conditions with only this update's types replaced, finite numbers only."""
        patch = {k: finite_only(v) for k, v in self.fields.items() if current.get(k) != v}
        if self._touched:
            stored = [dict(c) for c in current.get("conditions") or []]
            merged = [self._touched.get(c.get("type", ""), c) for c in stored]
            merged += [c for t, c in self._touched.items() if t not in {c.get("type") for c in stored}]
            if merged != stored:
                patch["conditions"] = merged
        if (
            self._observed
            and self.generation is not None
            and current.get("observedGeneration") != self.generation
        ):
            patch["observedGeneration"] = self.generation
        return patch

    def apply_to(self, patch: kopf.Patch) -> None:
        """Put this update into kopf's patch of the handled object."""
        for key, value in self.as_patch().items():
            patch.status[key] = value


def post_event(body: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
    """Post a Kubernetes Event about a resource (kopf sends it in the background)."""
    try:
        if warning:
            kopf.warn(body, reason=reason, message=message)
        else:
            kopf.info(body, reason=reason, message=message)
    except LookupError:  # outside a running operator (unit tests): log only
        logger.info("event %s: %s", reason, message)


async def write_status(
    kube: Kube, resource: Resource, namespace: str, name: str, update: StatusUpdate
) -> dict:
    """Merge ``update`` into the freshest stored status and patch it, guarded by resourceVersion (a real
    API server answers 409 when another writer came first; then read again). Returns what was written."""
    if not update.as_patch():
        return {}
    for attempt in range(3):
        current = await kube.get(resource, namespace, name)
        if current is None:
            return {}
        patch = update.patch_against(current.get("status") or {})
        if not patch:
            return {}
        version = (current.get("metadata") or {}).get("resourceVersion")
        body: dict[str, Any] = {"status": patch}
        if version:
            body["metadata"] = {"resourceVersion": version}
        try:
            await kube.patch(resource, namespace, name, body, subresource="status")
            return patch
        except ConflictError:
            if attempt == 2:
                raise
    return {}
