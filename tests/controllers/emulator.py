"""kmock's KubernetesEmulator, extended with the API-server behaviour kopf and the operator rely on.

Extensions (each small, all in :class:`MusicgenEmulator`):

1. ``metadata.uid``, ``resourceVersion``, ``generation`` and ``creationTimestamp`` on create; a new
   ``resourceVersion`` on every write and ``generation + 1`` when ``spec`` changes (kopf's JSON-patch
   guards test resourceVersion; the operator reports observedGeneration).
2. A failed JSON-patch ``test`` answers 422 as a real server does (kmock answers 500).
3. The ``status`` subresource is separate: PATCH .../status changes only status; a PATCH of the main
   object ignores status.
4. Equality label selectors (``?labelSelector=a=b,c=d``) filter lists.
5. ``metadata.generateName`` gets a random suffix as the name (kopf posts Events that way).
6. Every request is recorded as (user agent, verb, API group, resource[/subresource]) for the RBAC test.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import jsonpatch
import kmock
from kmock._internal import enums, rendering

_VERBS = {
    enums.action.LIST: "list",
    enums.action.WATCH: "watch",
    enums.action.FETCH: "get",
    enums.action.CREATE: "create",
    enums.action.UPDATE: "patch",
    enums.action.DELETE: "delete",
}


@dataclass(frozen=True)
class Recorded:
    """One request the emulator served."""

    user_agent: str
    verb: str
    api_group: str
    resource: str
    namespace: str | None
    name: str | None


class MusicgenEmulator(kmock.KubernetesEmulator):
    """The emulator plus uid/resourceVersion/generation, status subresource, selectors, a request log."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.recorded: list[Recorded] = []
        self._versions = itertools.count(1)

    def _current(self, request: rendering.Request) -> dict[str, Any] | None:
        key = (request.resource, request.namespace, request.name)
        if key in self.objects and not self.objects[key].deleted:
            return self.objects[key].raw
        return None

    def _stamp(self, request: rendering.Request) -> None:
        version = str(next(self._versions))
        if request.action == enums.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if request.namespace and "namespace" not in meta:
                meta["namespace"] = request.namespace
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("generation", 1)
            meta.setdefault(
                "creationTimestamp",
                datetime.datetime.now(tz=datetime.timezone.utc).replace(microsecond=0).isoformat(),
            )
            meta["resourceVersion"] = version
        elif request.action == enums.action.UPDATE and request.name:
            current = self._current(request)
            if current is None:
                return
            generation = current.get("metadata", {}).get("generation", 1)
            if isinstance(request.data, list):  # JSON patch: check the guards like a server (422)
                try:
                    after = jsonpatch.apply_patch(copy.deepcopy(current), request.data)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
                    raise kmock.KubernetesError(status=422, reason="Invalid", message=str(err)) from err
                if after.get("spec") != current.get("spec"):
                    generation += 1
                request.data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})
                request.data.append({"op": "add", "path": "/metadata/generation", "value": generation})
            elif isinstance(request.data, dict):
                if request.subresource == "status":
                    for key in [k for k in request.data if k != "status"]:
                        del request.data[key]
                else:
                    request.data.pop("status", None)
                    if "spec" in request.data:
                        generation += 1
                request.data.setdefault("metadata", {})
                request.data["metadata"] = dict(request.data["metadata"] or {})
                request.data["metadata"].update(resourceVersion=version, generation=generation)

    async def _handle(self, request: rendering.Request) -> Any:
        if request.resource is not None and request.resource.plural and request.action in _VERBS:
            resource = request.resource.plural or ""
            if request.subresource:
                resource = f"{resource}/{request.subresource}"
            self.recorded.append(
                Recorded(
                    user_agent=request.headers.get("User-Agent", ""),
                    verb=_VERBS[request.action],
                    api_group=request.resource.group or "",
                    resource=resource,
                    namespace=request.namespace,
                    name=request.name,
                )
            )
            try:
                self._stamp(request)
            except kmock.KubernetesError as err:
                return await self._render_error(err)
        return await super()._handle(request)

    async def _serve_list(self, request: rendering.Request) -> Any:
        result = await super()._serve_list(request)
        selector = (request.params or {}).get("labelSelector")
        if selector:
            wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
            result["items"] = [
                item
                for item in result["items"]
                if all((item.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in wanted.items())
            ]
        return result
