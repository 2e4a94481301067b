"""Label keys, deterministic child names and owner references (pure functions, no I/O)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from musicgen_ops.api.common import API_VERSION, GROUP

PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
#: Kueue's queue label, copied from a custom resource to its Job.
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
OPERATOR_NAME = "musicgen-operator"


def resource_label(kind: str) -> str:
    """Label naming the custom resource a child belongs to, e.g. musicgen.io/trainingjob."""
    return f"{GROUP}/{kind.lower()}"


def child_name(name: str, suffix: str) -> str:
    """``<name>-<suffix>``, shortened with a stable hash when longer than 63 characters."""
    full = f"{name}-{suffix}"
    if len(full) <= 63:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{name[: 63 - len(suffix) - 10].rstrip('-')}-{digest}-{suffix}"


def child_labels(kind: str, name: str, component: str, parent_labels: dict[str, str] | None = None) -> dict:
    """Labels of an object the operator creates for custom resource ``kind/name``."""
    labels = {
        PART_OF: "musicgen-ops",
        MANAGED_BY: OPERATOR_NAME,
        COMPONENT: component,
        resource_label(kind): name,
    }
    queue = (parent_labels or {}).get(QUEUE_LABEL)
    if queue:
        labels[QUEUE_LABEL] = queue
    return labels


def selector_labels(kind: str, name: str, component: str) -> dict[str, str]:
    """The immutable subset used in a Deployment's selector."""
    return {NAME: f"musicgen-{component}", INSTANCE: name, resource_label(kind): name}


def owner_reference(kind: str, name: str, uid: str, *, controller: bool = True) -> dict:
    """An ownerReference to a musicgen.io resource (garbage collection on a real cluster)."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": controller,
        "blockOwnerDeletion": True,
    }


@dataclass(frozen=True)
class Owner:
    """The custom resource a child object is built for."""

    kind: str
    name: str
    namespace: str
    uid: str
    labels: dict[str, str] = field(default_factory=dict)

    def reference(self) -> dict:
        """Its ownerReference."""
        return owner_reference(self.kind, self.name, self.uid)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Owner:
        """Read kind, name, namespace, uid and labels from an object's body."""
        meta = body.get("metadata", {})
        return cls(
            kind=body.get("kind", ""),
            name=meta.get("name", ""),
            namespace=meta.get("namespace", ""),
            uid=meta.get("uid", ""),
            labels=dict(meta.get("labels") or {}),
        )
