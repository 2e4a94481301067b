"""Conditions, phase transitions and their Events (Kubernetes API conventions)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

import kopf

logger = logging.getLogger(__name__)


def now() -> str:
    """The current time as an RFC 3339 string."""
    return (
        datetime.datetime.now(tz=datetime.timezone.utc)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )


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


class StatusUpdate:
    """A status patch being assembled: phase, conditions and fields, plus the Events to post."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.old: Mapping[str, Any] = body.get("status") or {}
        self.fields: dict[str, Any] = {}
        self._conditions: list[dict[str, Any]] | None = None
        self.generation = (body.get("metadata") or {}).get("generation")

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
        return self

    def phase(self, phase: str, reason: str, message: str = "", *, warning: bool = False) -> StatusUpdate:
        """Move to ``phase``; posts an Event when the phase changes."""
        self.fields["phase"] = phase
        self.fields["message"] = message or None
        if self.old.get("phase") != phase:
            post_event(self.body, reason, message or f"phase {phase}", warning=warning)
        return self

    def set(self, **fields: Any) -> StatusUpdate:
        """Set plain status fields (camelCase names); None removes a field."""
        self.fields.update(fields)
        return self

    def as_patch(self) -> dict[str, Any]:
        """The merge-patch body of ``status`` (only what changed)."""
        patch = {k: v for k, v in self.fields.items() if self.old.get(k) != v}
        if self._conditions is not None and self._conditions != list(self.old.get("conditions") or []):
            patch["conditions"] = self._conditions
        if self.generation is not None and self.old.get("observedGeneration") != self.generation:
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
