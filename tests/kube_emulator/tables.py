"""``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``: lists and objects rendered as a Table.

Custom resources get NAME plus their CRD's ``additionalPrinterColumns`` (NAME and AGE when the CRD
declares none), as kube-apiserver does; built-in kinds get NAME and AGE only (a real server prints more
columns for some of them). Column paths use a JSONPath subset: ``.a.b``, ``.a[0].b`` and
``.a[?(@.type=="X")].b`` (what CRD printer columns use in practice).
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from tests.kube_emulator.resources import ResourceType

_STEP = re.compile(
    r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_\-.]+)\s*==\s*[\"']([^\"']*)[\"']\)\]"
)


def jsonpath(obj: Any, path: str) -> Any:
    """Evaluate a simple JSONPath (``.status.phase``, ``.items[0].x``, a ``[?(@.k=="v")]`` filter)."""
    position, value = 0, obj
    path = path.strip().removeprefix("{").removesuffix("}").removeprefix("$")
    while position < len(path):
        match = _STEP.match(path, position)
        if match is None:
            raise ValueError(f"unsupported JSONPath {path!r} at {path[position:]!r}")
        position = match.end()
        key, index, filter_key, filter_value = match.groups()
        if key is not None:
            value = value.get(key) if isinstance(value, dict) else None
        elif index is not None:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        else:
            candidates = value if isinstance(value, list) else []
            value = next((c for c in candidates if str(jsonpath(c, "." + filter_key)) == filter_value), None)
        if value is None:
            return None
    return value


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery's HumanDuration (``45s``, ``3m12s``, ``5h``, ``2d3h``)."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def _age(timestamp: Any) -> str | None:
    if not isinstance(timestamp, str):
        return None
    created = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return human_duration((datetime.datetime.now(tz=datetime.timezone.utc) - created).total_seconds())


_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _columns(rtype: ResourceType) -> list[dict[str, Any]]:
    return list(rtype.printer_columns) or [_AGE_COLUMN]


def _cell(obj: dict[str, Any], column: dict[str, Any]) -> Any:
    value = jsonpath(obj, column["jsonPath"])
    if value is None:
        return None
    kind = column.get("type")
    if kind == "date":
        return _age(value)
    if kind == "integer" and isinstance(value, (int, float)):
        return int(value)
    if kind == "number" and isinstance(value, (int, float)):
        return value
    if kind == "boolean":
        return bool(value)
    return value if isinstance(value, str) else str(value)


def render_table(rtype: ResourceType, objects: list[dict[str, Any]], resource_version: str) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of ``objects``; each row carries PartialObjectMetadata."""
    columns = _columns(rtype)
    definitions = [dict(_NAME_COLUMN)] + [
        {
            "name": column["name"],
            "type": "string" if column.get("type") == "date" else column.get("type", "string"),
            "format": column.get("format", ""),
            "description": column.get("description", ""),
            "priority": column.get("priority", 0),
        }
        for column in columns
    ]
    rows = [
        {
            "cells": [obj["metadata"]["name"], *(_cell(obj, column) for column in columns)],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            },
        }
        for obj in objects
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
