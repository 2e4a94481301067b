"""Pydantic models -> structural OpenAPI v3 schemas -> CustomResourceDefinitions (apiextensions.k8s.io/v1).

pydantic writes JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3.0 subset: no ``$ref``,
no ``anyOf`` for optional fields, boolean ``exclusiveMinimum``, no ``additionalProperties: false`` next to
``properties``. :func:`to_structural` performs exactly those rewrites; everything else (defaults, enums,
minimum/maximum, patterns, required) passes through. Factory defaults (``default_factory``) are added
too, so the API server fills nested defaults the way the operator's models do.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from musicgen_ops.api.common import CATEGORY, GROUP, VERSION, ResourceKind
from musicgen_ops.api.generationrequest import GENERATION_REQUEST
from musicgen_ops.api.trainedmodel import TRAINED_MODEL
from musicgen_ops.api.trainingjob import TRAINING_JOB

ALL_KINDS: tuple[ResourceKind, ...] = (TRAINING_JOB, TRAINED_MODEL, GENERATION_REQUEST)
HEADER = "# GENERATED from musicgen_ops.api by `make crds` (musicgen-ops crds). Do not edit by hand.\n"
_DROP_KEYS = {"title", "$defs", "additionalProperties_false"}


def _factory_defaults(model: type[BaseModel], defs: dict[str, Any], seen: set[str]) -> None:
    """Add ``default`` for fields built by ``default_factory`` (pydantic leaves them out)."""
    name = model.__name__
    if name in seen or name not in defs:
        return
    seen.add(name)
    props = defs[name].get("properties", {})
    for field_name, field in model.model_fields.items():
        alias = field.alias or field_name
        annotation = field.annotation
        if field.default_factory is not None and alias in props:
            value = field.default_factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                props[alias]["default"] = value.model_dump(by_alias=True, exclude_none=True, mode="json")
            else:
                props[alias]["default"] = value
        for sub in _models_in(annotation):
            _factory_defaults(sub, defs, seen)


def _legacy_properties(model: type[BaseModel], defs: dict[str, Any], seen: set[str]) -> None:
    """Publish each of a model's legacy field names as a deprecated property, so objects written with
    the old name stay valid; a required field becomes "this or its old name" (a CEL rule), and the
    canonical field loses its server-side default."""
    name = model.__name__
    if name in seen or name not in defs:
        return
    seen.add(name)
    node = defs[name]
    props = node.get("properties", {})
    for old, field_name in getattr(model, "legacy_names", {}).items():
        new = model.model_fields[field_name].alias or field_name
        if new not in props:
            continue
        props[old] = {**copy.deepcopy(props[new]), "description": f"Deprecated: use {new}."}
        props[old].pop("default", None)
        # No server-side default for a field with an old name: the API server would fill it in beside
        # the old name a user wrote, and the two would conflict. The models apply the default instead.
        props[new].pop("default", None)
        if new in node.get("required", []):
            node["required"] = [r for r in node["required"] if r != new]
            if not node["required"]:
                del node["required"]
            node.setdefault("x-kubernetes-validations", []).append(
                {"rule": f"has(self.{new}) || has(self.{old})", "message": f"{new} is required"}
            )
    for field in model.model_fields.values():
        for sub in _models_in(field.annotation):
            _legacy_properties(sub, defs, seen)


def _immutable_rules(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """CEL ``self == oldSelf`` on each of ``model.immutable_fields``; an optional field also may not be
    added or removed (a transition rule on a property only runs when old and new both have it)."""
    props = schema.get("properties", {})
    for field_name in getattr(model, "immutable_fields", ()):
        field = model.model_fields[field_name]
        alias = field.alias or field_name
        message = f"{alias} is immutable once created: create a new {model.__name__.removesuffix('Spec')}"
        props[alias].setdefault("x-kubernetes-validations", []).append(
            {"rule": "self == oldSelf", "message": message}
        )
        if field.default is None and field.default_factory is None:
            schema.setdefault("x-kubernetes-validations", []).append(
                {"rule": f"has(self.{alias}) == has(oldSelf.{alias})", "message": message}
            )


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes mentioned in a type annotation (list[X], X | None...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_models_in(arg))
    return found


def to_structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrite one pydantic JSON-schema node into Kubernetes' structural OpenAPI v3 form."""
    if isinstance(node, list):
        return [to_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = {**copy.deepcopy(target), **node}  # local description/default win
        return to_structural(merged, defs)
    if "anyOf" in node:  # `X | None`: the type itself, nullable
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union of {len(options)} types structurally: {options}")
        return {**to_structural({**options[0], **node}, defs), "nullable": True}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "enum" in node and "type" not in node:
        node["type"] = "string" if all(isinstance(v, str) for v in node["enum"]) else "integer"
    if "exclusiveMinimum" in node and not isinstance(node["exclusiveMinimum"], bool):
        node["minimum"], node["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node and not isinstance(node["exclusiveMaximum"], bool):
        node["maximum"], node["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    if node.get("default", 0) is None:
        del node["default"]
    if "properties" in node and "type" not in node:
        node["type"] = "object"
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if key == "properties":
            result[key] = {name: to_structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            result[key] = to_structural(value, defs)
        else:
            result[key] = value
    return result


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one pydantic model (camelCase fields)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    defs[model.__name__] = {k: v for k, v in raw.items() if k != "$defs"}
    _factory_defaults(model, defs, set())
    _legacy_properties(model, defs, set())
    schema = to_structural(defs[model.__name__], defs)
    _immutable_rules(model, schema)
    conditions = schema.get("properties", {}).get("conditions")
    if conditions is not None:
        conditions["x-kubernetes-list-type"] = "map"
        conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def openapi_schema(kind: ResourceKind) -> dict[str, Any]:
    """The openAPIV3Schema of a resource: apiVersion, kind, metadata, spec and status."""
    schema: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": model_schema(kind.spec_model),
            "status": model_schema(kind.status_model),
        },
    }
    if kind.rules:
        schema["x-kubernetes-validations"] = [dict(rule) for rule in kind.rules]
    return schema


def crd_manifest(kind: ResourceKind) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "musicgen-ops"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [column.to_k8s() for column in kind.columns],
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                }
            ],
        },
    }


def render_crd(kind: ResourceKind) -> str:
    """The YAML text of one CRD file, with the generated-file header."""
    return HEADER + yaml.safe_dump(crd_manifest(kind), sort_keys=False, width=110)


def crd_filename(kind: ResourceKind) -> str:
    """File name of a CRD (controller-gen style: <group>_<plural>.yaml)."""
    return f"{GROUP}_{kind.plural}.yaml"


def write_crds(*dirs: Path) -> list[Path]:
    """Write every CRD into each folder; returns the written paths."""
    written = []
    for folder in dirs:
        folder.mkdir(parents=True, exist_ok=True)
        for kind in ALL_KINDS:
            path = folder / crd_filename(kind)
            path.write_text(render_crd(kind), encoding="utf-8")
            written.append(path)
    return written


def stale_crds(*dirs: Path) -> list[Path]:
    """Files in ``dirs`` that are missing or differ from what the models generate now."""
    stale = []
    for folder in dirs:
        for kind in ALL_KINDS:
            path = folder / crd_filename(kind)
            if not path.is_file() or path.read_text(encoding="utf-8") != render_crd(kind):
                stale.append(path)
    return stale
