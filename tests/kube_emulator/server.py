"""HTTP in front of :class:`KubeEmulator`: discovery, OpenAPI v3, CRUD, watch, Tables.

Each URL is parsed once into (group, version, namespace, plural, name, subresource) and looked up in
dicts: O(1) in the number of requests served, unlike matching each request against the whole history.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import yaml
from aiohttp import web

from tests.kube_emulator import openapi, protobuf
from tests.kube_emulator.emulator import KubeEmulator, Recorded
from tests.kube_emulator.patches import APPLY
from tests.kube_emulator.resources import ResourceType
from tests.kube_emulator.selectors import field_selector, label_selector
from tests.kube_emulator.store import Watcher
from tests.kube_emulator.tables import render_table
from tests.kube_emulator.validation import ApiError, parse_json

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-musicgen-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_STOP = object()


def _json(data: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)} if warnings else None
    return web.Response(
        body=json.dumps(data, allow_nan=False).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    first = accept.split(",")[0]
    return "as=Table" in first


def _truthy(value: str | None) -> bool:
    return value in ("true", "1", "True")


async def _body(request: web.Request) -> Any:
    """A create/replace body: JSON (strictly parsed) or Kubernetes protobuf for a few core kinds."""
    raw = await request.read()
    if "protobuf" in request.headers.get("Content-Type", ""):
        return protobuf.decode(raw)
    return parse_json(raw)


def _verb(method: str, name: str | None, watching: bool) -> str:
    """The RBAC verb of a request."""
    if method == "GET":
        return "get" if name else "watch" if watching else "list"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


class Routes:
    """The aiohttp handler; one instance per emulator."""

    def __init__(self, emulator: KubeEmulator) -> None:
        self.emulator = emulator
        self.stopping = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Dispatch one request; API errors become Status bodies."""
        try:
            return await self._dispatch(request)
        except ApiError as err:
            return _json(err.status(), err.code)

    # --- discovery -----------------------------------------------------------------------------------

    def _group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for rtype in self.emulator.served():
            versions = groups.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        return groups

    def _api_group(self, group: str, versions: list[str]) -> dict[str, Any]:
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def _discovery(self, parts: list[str]) -> dict[str, Any] | None:
        groups = self._group_versions()
        if parts == ["api"]:
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
            }
        if parts == ["apis"]:
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._api_group(g, v) for g, v in sorted(groups.items()) if g],
            }
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **self._api_group(parts[1], groups[parts[1]])}
        if (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            types = [t for t in self.emulator.served() if t.group == group and t.version == version]
            if not types:
                return None
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": [entry for t in types for entry in t.discovery_entries()],
            }
        return None

    def _openapi(self, parts: list[str]) -> dict[str, Any] | None:
        by_path: dict[str, list[ResourceType]] = {}
        for rtype in self.emulator.served():
            by_path.setdefault(openapi.group_version_path(rtype), []).append(rtype)
        documents = {path: openapi.document(types) for path, types in by_path.items()}
        if parts == ["openapi", "v3"]:
            return openapi.index(documents)
        return documents.get("/".join(parts[2:]))

    # --- dispatch ------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET":
            if not parts:
                paths = ["/api", "/api/v1", "/apis", "/openapi/v3", "/version"]
                return _json({"paths": paths + [f"/apis/{g}" for g in self._group_versions() if g]})
            if parts == ["version"]:
                return _json(VERSION_INFO)
            if parts[0] == "openapi" and parts[1:2] == ["v3"]:
                doc = self._openapi(parts)
                if doc is None:
                    raise ApiError(404, "NotFound", f"the server could not find {request.path}")
                return _json(doc)
            if parts in (["healthz"], ["readyz"], ["livez"]):
                return web.Response(text="ok")
            discovered = self._discovery(parts)
            if discovered is not None:
                return _json(discovered)
        target = self._target(parts)
        if target is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return await self._serve(request, *target)

    def _target(self, parts: list[str]) -> tuple[ResourceType, str | None, str | None, str | None] | None:
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        versions = self.emulator.versions
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = versions.get((group, version, rest[2]))
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        rtype = versions.get((group, version, rest[0]))
        if rtype is None or len(rest) > 3:
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rtype.subresources:
            return None
        return rtype, namespace, name, sub

    def _record(
        self,
        request: web.Request,
        verb: str,
        rtype: ResourceType,
        ns: str | None,
        name: str | None,
        sub: str | None,
    ) -> None:
        self.emulator.recorded.append(
            Recorded(
                user_agent=request.headers.get("User-Agent", ""),
                verb=verb,
                api_group=rtype.group,
                resource=f"{rtype.plural}/{sub}" if sub else rtype.plural,
                namespace=ns,
                name=name,
            )
        )

    async def _serve(
        self, request: web.Request, rtype: ResourceType, ns: str | None, name: str | None, sub: str | None
    ) -> web.StreamResponse:
        method, query = request.method, request.query
        field_validation = query.get("fieldValidation", "Warn")
        dry_run = query.get("dryRun") == "All"
        emulator = self.emulator
        watching = method == "GET" and name is None and _truthy(query.get("watch"))
        verb = _verb(method, name, watching)
        self._record(request, verb, rtype, ns, name, sub)
        authorization = request.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else None
        resource = f"{rtype.plural}/{sub}" if sub else rtype.plural
        if rtype.key == ("authorization.k8s.io", "selfsubjectaccessreviews"):
            # Every authenticated user may ask what it may do (the system:basic-user ClusterRole).
            return self._self_review(token, await _body(request), method)
        emulator.authorizer.check(token, verb, rtype.group, resource, ns, name)
        if rtype.key == ("", "serviceaccounts") and sub == "token" and method == "POST":
            emulator.get(rtype, ns, name or "")
            token = emulator.authorizer.issue(ns or "", name or "")
            return _json(
                {
                    "kind": "TokenRequest",
                    "apiVersion": "authentication.k8s.io/v1",
                    "metadata": {},
                    "status": {"token": token, "expirationTimestamp": "2099-01-01T00:00:00Z"},
                },
                201,
            )
        if method == "GET" and name is None:
            if watching:
                return await self._watch(request, rtype, ns)
            return _json(self._list(request, rtype, ns))
        if method == "POST" and name is None:
            body = await _body(request)
            obj, warnings = emulator.create(rtype, ns, body, field_validation, dry_run)
            return _json(obj, 201, warnings)
        if name is None:
            if method == "DELETE":
                selected = self._select(request, rtype, ns)
                for obj in selected:
                    emulator.delete(rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"])
                return _json(
                    {
                        "kind": f"{rtype.kind}List",
                        "apiVersion": rtype.api_version,
                        "metadata": {},
                        "items": selected,
                    }
                )
            raise ApiError(
                405, "MethodNotAllowed", f"the server does not allow this method on {request.path}"
            )
        if method == "GET":
            obj = emulator.get(rtype, ns, name)
            if _wants_table(request):
                return _json(render_table(rtype, [obj], obj["metadata"]["resourceVersion"]))
            return _json(obj)
        if method == "PUT":
            body = await _body(request)
            obj, warnings = emulator.update(rtype, ns, name, body, sub, field_validation, dry_run)
            return _json(obj, 200, warnings)
        if method == "PATCH":
            content_type = request.headers.get("Content-Type", "")
            raw = await request.read()
            if content_type.startswith(APPLY) and not raw.lstrip().startswith(b"{"):
                patch = yaml.safe_load(raw)
            else:
                patch = parse_json(raw, "patch")
            if content_type.startswith(APPLY) and emulator.store.get(rtype.key, ns, name) is None:
                if sub is not None or not isinstance(patch, dict):
                    raise ApiError(404, "NotFound", f'{rtype.qualified} "{name}" not found')
                patch.setdefault("metadata", {})["name"] = name
                obj, warnings = emulator.create(rtype, ns, patch, field_validation, dry_run)
                return _json(obj, 201, warnings)
            obj, warnings = emulator.patch(
                rtype, ns, name, patch, content_type, sub, field_validation, dry_run
            )
            return _json(obj, 200, warnings)
        if method == "DELETE" and sub is None:
            raw = await request.read()
            return _json(emulator.delete(rtype, ns, name, parse_json(raw) if raw else None))
        raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on {request.path}")

    def _self_review(self, token: str | None, body: Any, method: str) -> web.Response:
        """SelfSubjectAccessReview: whether the caller may do what ``spec.resourceAttributes`` says."""
        if method != "POST":
            raise ApiError(405, "MethodNotAllowed", "selfsubjectaccessreviews only support create")
        attributes = ((body or {}).get("spec") or {}).get("resourceAttributes")
        if not isinstance(attributes, dict) or not attributes.get("verb") or not attributes.get("resource"):
            raise ApiError(
                422, "Invalid", "SelfSubjectAccessReview: spec.resourceAttributes needs verb and resource"
            )
        resource = attributes["resource"] + (
            f"/{attributes['subresource']}" if attributes.get("subresource") else ""
        )
        allowed = self.emulator.authorizer.allows(
            token,
            attributes["verb"],
            attributes.get("group", ""),
            resource,
            attributes.get("namespace") or None,
            attributes.get("name") or None,
        )
        review = {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {},
            "spec": body["spec"],
            "status": {"allowed": allowed, **({} if allowed else {"reason": "no RBAC rule allows it"})},
        }
        return _json(review, 201)

    def _select(self, request: web.Request, rtype: ResourceType, ns: str | None) -> list[dict[str, Any]]:
        by_label = label_selector(request.query.get("labelSelector"))
        by_field = field_selector(request.query.get("fieldSelector"))
        return [o for o in self.emulator.store.list(rtype.key, ns) if by_label(o) and by_field(o)]

    def _list(self, request: web.Request, rtype: ResourceType, ns: str | None) -> dict[str, Any]:
        items = self._select(request, rtype, ns)
        revision = str(self.emulator.store.revision)
        if _wants_table(request):
            return render_table(rtype, items, revision)
        return {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": revision},
            "items": items,
        }

    async def _watch(self, request: web.Request, rtype: ResourceType, ns: str | None) -> web.StreamResponse:
        query = request.query
        by_label = label_selector(query.get("labelSelector"))
        by_field = field_selector(query.get("fieldSelector"))
        store = self.emulator.store
        watcher = Watcher(rtype.key, ns, lambda o: by_label(o) and by_field(o))
        since = query.get("resourceVersion")
        initial: list[tuple[str, dict[str, Any]]] = []
        gone = False
        if since in (None, "", "0") or _truthy(query.get("sendInitialEvents")):
            initial = [("ADDED", o) for o in store.list(rtype.key, ns) if watcher.accepts(o)]
            if _truthy(query.get("sendInitialEvents")):
                bookmark = {
                    "kind": rtype.kind,
                    "apiVersion": rtype.api_version,
                    "metadata": {
                        "resourceVersion": str(store.revision),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                initial.append(("BOOKMARK", bookmark))
        else:
            replay = store.since(watcher, int(since))
            if replay is None:
                gone = True
            else:
                initial = [(e.type, e.object) for e in replay if watcher.accepts(e.object)]
        as_table = _wants_table(request)

        def encode(kind: str, obj: dict[str, Any]) -> bytes:
            if as_table and kind in ("ADDED", "MODIFIED", "DELETED"):
                obj = render_table(rtype, [obj], obj["metadata"]["resourceVersion"])
            return json.dumps({"type": kind, "object": obj}).encode() + b"\n"

        store.watchers.add(watcher)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        timeout = float(query.get("timeoutSeconds") or 3600)
        try:
            if gone:
                status = ApiError(
                    410, "Expired", f"too old resource version: {since} ({store.log[0].revision})"
                )
                await response.write(
                    json.dumps({"type": "ERROR", "object": status.status()}).encode() + b"\n"
                )
                return response
            for kind, obj in initial:
                await response.write(encode(kind, obj))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            stop = asyncio.ensure_future(self.stopping.wait())
            try:
                while True:
                    getter = asyncio.ensure_future(watcher.queue.get())
                    done, _ = await asyncio.wait(
                        {getter, stop},
                        timeout=max(0.0, deadline - loop.time()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if getter not in done:
                        getter.cancel()
                        break
                    event = getter.result()
                    if watcher.accepts(event.object):
                        await response.write(encode(event.type, event.object))
            finally:
                stop.cancel()
        except ConnectionResetError:
            pass
        finally:
            store.watchers.discard(watcher)
        return response


def make_app(emulator: KubeEmulator) -> tuple[web.Application, Routes]:
    """An aiohttp application serving ``emulator`` on every path."""
    routes = Routes(emulator)
    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_route("*", "/{tail:.*}", routes.handle)
    return app, routes
