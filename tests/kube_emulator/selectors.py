"""Label and field selectors as the API server parses them (``a=b,c!=d,e in (f,g),!h`` and
``metadata.name=x,involvedObject.uid=y``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.kube_emulator.validation import ApiError

Predicate = Callable[[dict[str, Any]], bool]

_SET = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def label_selector(selector: str | None) -> Predicate:
    """A predicate on objects for ``?labelSelector=``; 400 for syntax a real server refuses."""
    terms: list[tuple[str, str, set[str]]] = []  # (key, operator, values)
    for term in _split(selector or ""):
        if match := _SET.match(term):
            values = {v.strip() for v in match.group(3).split(",")}
            terms.append((match.group(1), match.group(2), values))
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            terms.append((key, "notin", {value}))
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            terms.append((key, "in", {value}))
        elif re.fullmatch(r"!?[A-Za-z0-9./_-]+", term):
            terms.append((term.lstrip("!"), "absent" if term.startswith("!") else "present", set()))
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")

    def matches(labels: dict[str, str], key: str, operator: str, values: set[str]) -> bool:
        if operator == "present":
            return key in labels
        if operator == "absent":
            return key not in labels
        return (labels.get(key) in values) == (operator == "in")

    def predicate(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(matches(labels, *term) for term in terms)

    return predicate


def _field(obj: Any, path: str) -> str:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return "" if obj is None else str(obj)


def field_selector(selector: str | None) -> Predicate:
    """A predicate for ``?fieldSelector=`` (``=``, ``==``, ``!=`` on dotted paths)."""
    tests: list[tuple[str, str, bool]] = []
    for term in _split(selector or ""):
        negate = "!=" in term
        key, sep, value = term.replace("!=", "=").replace("==", "=").partition("=")
        if not sep:
            raise ApiError(400, "BadRequest", f"invalid selector: {selector!r}; can't understand {term!r}")
        tests.append((key.strip(), value.strip(), negate))

    def predicate(obj: dict[str, Any]) -> bool:
        return all((_field(obj, key) == value) != negate for key, value, negate in tests)

    return predicate
