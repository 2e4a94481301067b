"""``/openapi/v3``: one document per group-version, with each kind's schema (the CRD's
``openAPIV3Schema``; a bare object for built-in kinds) and a PATCH operation per resource that declares
the ``fieldValidation`` query parameter, so ``kubectl explain`` finds the schemas and ``kubectl apply``
leaves field validation to the server.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.kube_emulator.resources import ResourceType


def group_version_path(rtype: ResourceType) -> str:
    """``api/v1`` or ``apis/<group>/<version>``, as in the /openapi/v3 index."""
    return f"apis/{rtype.group}/{rtype.version}" if rtype.group else f"api/{rtype.version}"


def schema_name(rtype: ResourceType) -> str:
    """Reverse-domain definition name: ``io.musicgen.v1alpha1.TrainingJob``, ``io.k8s.api.core.v1.Pod``."""
    if rtype.group and "." in rtype.group and not rtype.group.endswith("k8s.io"):
        prefix = ".".join(reversed(rtype.group.split(".")))
    else:
        prefix = "io.k8s.api." + (rtype.group.split(".")[0] if rtype.group else "core")
    return f"{prefix}.{rtype.version}.{rtype.kind}"


def _gvk(rtype: ResourceType) -> dict[str, str]:
    return {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}


def _paths(rtype: ResourceType) -> dict[str, Any]:
    base = "/" + group_version_path(rtype)
    item = (
        f"{base}/namespaces/{{namespace}}/{rtype.plural}/{{name}}"
        if rtype.namespaced
        else f"{base}/{rtype.plural}/{{name}}"
    )
    ref = {"$ref": f"#/components/schemas/{schema_name(rtype)}"}
    patch = {
        "operationId": f"patch{rtype.kind}",
        "parameters": [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
        ],
        "responses": {"200": {"content": {"application/json": {"schema": ref}}}},
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": _gvk(rtype),
    }
    return {item: {"patch": patch}}


def _schema(rtype: ResourceType) -> dict[str, Any]:
    schema = dict(rtype.schema or {"type": "object", "description": f"{rtype.kind} (built-in kind)."})
    schema["x-kubernetes-group-version-kind"] = [_gvk(rtype)]
    return schema


def document(types: list[ResourceType]) -> dict[str, Any]:
    """The OpenAPI 3.0 document of one group-version."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rtype in types:
        paths.update(_paths(rtype))
        schemas[schema_name(rtype)] = _schema(rtype)
    first = types[0]
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
        "x-group-version": first.api_version,
    }


def index(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The /openapi/v3 index: each group-version path with a content hash, as kube-apiserver serves."""
    paths = {}
    for path, doc in sorted(documents.items()):
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
