"""What a real API server refuses: non-finite JSON numbers, bad object names, objects that break their
CRD's structural schema, and edits that break ``self == oldSelf`` CEL rules.

Errors are :class:`ApiError` carrying the status code and the message shape of kube-apiserver.
CEL: only the transition rule ``self == oldSelf`` (immutability) is evaluated; every other
``x-kubernetes-validations`` rule is accepted and not evaluated.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema

from tests.kube_emulator.resources import ResourceType


class ApiError(Exception):
    """A refusal, rendered as a ``kind: Status`` body."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        """The Status object a real server answers with."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def parse_json(raw: bytes, what: str = "body") -> Any:
    """Decode a request body the way Go's encoding/json does: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        where = "in numeric literal" if constant.startswith("-") else "looking for beginning of value"
        raise ApiError(
            400, "BadRequest", f"error decoding {what}: invalid character '{constant.lstrip('-')[0]}' {where}"
        )

    try:
        return json.loads(raw or b"null", parse_constant=refuse)
    except json.JSONDecodeError as err:
        raise ApiError(400, "BadRequest", f"error decoding {what}: {err.msg}") from err


_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})*"
_DNS1035 = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_NAME_RULES = {
    # rule: (regex, max length, the apimachinery message)
    "subdomain": (
        _SUBDOMAIN,
        253,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
        "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
        f"validation is '{_SUBDOMAIN}')",
    ),
    "label": (
        _LABEL,
        63,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
        f"start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
        f"validation is '{_LABEL}')",
    ),
    "dns1035": (
        _DNS1035,
        63,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
        "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
        f"regex used for validation is '{_DNS1035}')",
    ),
}


def invalid(rtype: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid with one cause per (field, message), shaped like kube-apiserver's."""
    group_kind = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
    text = "; ".join(f"{path}: {message}" if path else message for path, message in causes)
    if len(causes) > 1:
        text = "[" + ", ".join(f"{p}: {m}" if p else m for p, m in causes) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{group_kind} "{name}" is invalid: {text}',
        {
            "name": name,
            "group": rtype.group,
            "kind": rtype.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": m, "field": p} for p, m in causes],
        },
    )


def check_name(rtype: ResourceType, name: str) -> None:
    """422 when ``name`` is not valid for this kind (DNS-1035 label for Services, ...)."""
    pattern, limit, explanation = _NAME_RULES[rtype.name_rule]
    problems = []
    if len(name) > limit:
        problems.append(f"must be no more than {limit} characters")
    if not re.fullmatch(pattern, name):
        problems.append(explanation)
    if problems:
        message = f"Invalid value: {json.dumps(name)}: " + ", ".join(problems)
        raise invalid(rtype, name, [("metadata.name", message)])


# --- CRD structural schemas ---------------------------------------------------------------------------

_META_KEYS = {"apiVersion", "kind", "metadata"}


def _to_json_schema(schema: Any) -> Any:
    """OpenAPI v3 (Kubernetes flavour) -> a draft-4 JSON Schema jsonschema can check."""
    if isinstance(schema, list):
        return [_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _to_json_schema(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    out.pop("default", None)
    out.pop("nullable", None)
    if schema.get("x-kubernetes-int-or-string"):
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _error_message(error: jsonschema.ValidationError, field: str) -> str:
    value = json.dumps(error.instance)
    kind = error.validator
    expected = error.validator_value
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        return f'Invalid value: "{type(error.instance).__name__}": {field} in body must be of type ' + (
            " or ".join(t for t in types if t != "null")
        )
    if kind == "enum":
        allowed = ", ".join(json.dumps(v) for v in expected if v is not None)
        return f"Unsupported value: {value}: supported values: {allowed}"
    if kind == "required":
        return "Required value"
    messages = {
        "minimum": f"should be greater than or equal to {expected}",
        "maximum": f"should be less than or equal to {expected}",
        "minLength": f"should be at least {expected} chars long",
        "maxLength": f"should be at most {expected} chars long",
        "minItems": f"should have at least {expected} items",
        "maxItems": f"should have at most {expected} items",
        "pattern": f"should match '{expected}'",
        "uniqueItems": "shouldn't contain duplicates",
    }
    if kind in messages:
        return f"Invalid value: {value}: {field} in body {messages[kind]}"
    return f"Invalid value: {value}: {error.message}"


def _walk_prune_default(obj: Any, schema: dict[str, Any], path: list[Any], unknown: list[str]) -> Any:
    """Drop fields the schema does not declare (recording them) and fill declared defaults."""
    if not isinstance(schema, dict):
        return obj
    if isinstance(obj, dict) and (schema.get("type") == "object" or "properties" in schema):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return obj
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is not None:
            for key in list(obj):
                if key not in props and not (not path and key in _META_KEYS):
                    unknown.append(_path([*path, key]))
                    del obj[key]
            for key, sub in props.items():
                if key not in obj and isinstance(sub, dict) and "default" in sub:
                    obj[key] = copy.deepcopy(sub["default"])
                if key in obj and isinstance(sub, dict):
                    obj[key] = _walk_prune_default(obj[key], sub, [*path, key], unknown)
        elif isinstance(extra, dict):
            for key in list(obj):
                obj[key] = _walk_prune_default(obj[key], extra, [*path, key], unknown)
        return obj
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [_walk_prune_default(item, schema["items"], [*path, i], unknown) for i, item in enumerate(obj)]
    return obj


def _immutability_rules(schema: Any, path: list[str]) -> list[tuple[list[str], str]]:
    """(path, message) of every ``self == oldSelf`` rule in the schema."""
    found: list[tuple[list[str], str]] = []
    if not isinstance(schema, dict):
        return found
    for rule in schema.get("x-kubernetes-validations") or []:
        if re.fullmatch(r"\s*self\s*==\s*oldSelf\s*", rule.get("rule", "")):
            found.append(
                (path, rule.get("message") or 'Invalid value: "object": failed rule: self == oldSelf')
            )
    for key, sub in (schema.get("properties") or {}).items():
        found.extend(_immutability_rules(sub, [*path, key]))
    return found


def _lookup(obj: Any, path: list[str]) -> tuple[bool, Any]:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return False, None
        obj = obj[part]
    return True, obj


class _Compiled:
    """A schema's validators (whole object, and per top-level field) and its ``self == oldSelf`` rules."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        converted = _to_json_schema(schema)
        self.whole = jsonschema.Draft4Validator(converted)
        self.fields = {
            key: jsonschema.Draft4Validator(sub) for key, sub in (converted.get("properties") or {}).items()
        }
        self.rules = _immutability_rules(schema, [])

    def errors(self, obj: dict[str, Any], old: dict[str, Any] | None) -> list[jsonschema.ValidationError]:
        """Schema errors; on update only the top-level fields that changed are checked again."""
        if old is None:
            return list(self.whole.iter_errors(obj))
        found = []
        for key, validator in self.fields.items():
            if key in obj and obj[key] != old.get(key):
                for error in validator.iter_errors(obj[key]):
                    error.path.appendleft(key)
                    found.append(error)
        return found


_COMPILED: dict[int, _Compiled] = {}


def _compiled(schema: dict[str, Any]) -> _Compiled:
    """Compile each CRD schema once (validation on every write is the emulator's hottest path)."""
    cached = _COMPILED.get(id(schema))
    if cached is None or cached.schema is not schema:
        cached = _COMPILED[id(schema)] = _Compiled(schema)
    return cached


def admit_custom_object(
    rtype: ResourceType,
    obj: dict[str, Any],
    old: dict[str, Any] | None,
    field_validation: str,
) -> list[str]:
    """Prune, default and validate ``obj`` in place against its CRD schema; return warnings.

    Raises ApiError 400 for unknown fields under ``fieldValidation=Strict`` and 422 for schema or
    ``self == oldSelf`` violations.
    """
    schema = rtype.schema
    if not schema:
        return []
    name = (obj.get("metadata") or {}).get("name", "")
    unknown: list[str] = []
    _walk_prune_default(obj, schema, [], unknown)
    warnings = [f'unknown field "{field}"' for field in unknown]
    if unknown and field_validation == "Strict":
        raise ApiError(400, "BadRequest", "strict decoding error: " + ", ".join(warnings))
    compiled = _compiled(schema)
    causes = []
    for error in sorted(compiled.errors(obj, old), key=lambda e: list(map(str, e.absolute_path))):
        parts = list(error.absolute_path)
        if error.validator == "required":
            missing = re.match(r"'([^']+)'", error.message)
            parts.append(missing.group(1) if missing else "")
        field = _path(parts)
        causes.append((field, _error_message(error, field)))
    if old is not None:
        for path, message in compiled.rules:
            had, before = _lookup(old, path)
            has, after = _lookup(obj, path)
            if had and has and before != after:
                causes.append((_path(path), f'Invalid value: "object": {message}'))
    if causes:
        raise invalid(rtype, name, causes)
    return warnings if field_validation != "Ignore" else []
