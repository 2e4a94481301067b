"""An in-memory stand-in for the operator's Kube client, for unit tests of single controller steps."""

from __future__ import annotations

import copy
from typing import Any

from musicgen_ops.controllers.kube import ConflictError, Resource


class FakeKube:
    """Objects by (plural, namespace, name); records every call; honours resourceVersion preconditions."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str | None]] = []
        self.version = 0

    def put(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        meta = obj["metadata"]
        self.objects[(resource.plural, meta["namespace"], meta["name"])] = obj
        return obj

    async def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", resource.plural, name))
        found = self.objects.get((resource.plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def list(self, resource: Resource, namespace: str, labels: dict | None = None) -> list[dict]:
        self.calls.append(("list", resource.plural, None))
        return [copy.deepcopy(o) for (p, ns, _), o in self.objects.items() if p == resource.plural]

    async def get_or_create(self, resource: Resource, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        meta = body["metadata"]
        existing = await self.get(resource, meta["namespace"], meta["name"])
        if existing is not None:
            return existing, False
        self.calls.append(("create", resource.plural, meta["name"]))
        return self.put(resource, body), True

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: dict, *, subresource: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(
            ("patch", f"{resource.plural}/{subresource}" if subresource else resource.plural, name)
        )
        obj = self.objects[(resource.plural, namespace, name)]
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != obj["metadata"]["resourceVersion"]:
            raise ConflictError(409, "Conflict", "the object has been modified", name)
        merged = _merge(copy.deepcopy(obj), {k: v for k, v in patch.items() if k != "metadata"})
        merged["metadata"] = _merge(merged["metadata"], {**(patch.get("metadata") or {})})
        return self.put(resource, merged)

    async def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        self.calls.append(("delete", resource.plural, name))
        return self.objects.pop((resource.plural, namespace, name), None) is not None


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge-patch (lists replaced, None removes)."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target
