"""Helpers to pick manifests out of a rendered chart."""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]


def find(
    docs: list[Manifest], kind: str, name: str | None = None, namespace: str | None = None
) -> list[Manifest]:
    """The manifests of one kind, optionally with a given name / namespace."""
    return [
        d
        for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]


def one(docs: list[Manifest], kind: str, name: str | None = None, namespace: str | None = None) -> Manifest:
    """Exactly one manifest of a kind (and name / namespace)."""
    found = find(docs, kind, name, namespace)
    assert len(found) == 1, (
        f"expected one {kind} {name or ''} in {namespace or 'any namespace'}, got {len(found)}"
    )
    return found[0]


def container_env(deployment: Manifest, container: int = 0) -> dict[str, str]:
    """A container's literal env as a dict."""
    env = deployment["spec"]["template"]["spec"]["containers"][container].get("env", [])
    return {e["name"]: e.get("value") for e in env}
