"""Shared machinery of the contracts: legacy field names, strict environments, env round trips."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from typing_extensions import Self


class Contract(BaseModel):
    """Base of the contract models: unknown fields are refused, so typos never pass silently.

    ``legacy_names`` maps names users may already use (``bpm``) to the canonical field
    (``target_bpm``); they are accepted on input and never written.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    legacy_names: ClassVar[dict[str, str]] = {}

    @classmethod
    def pick(cls, source: BaseModel) -> Self:
        """This model built from the fields of ``source`` that it declares (e.g. the generation
        parameters of a GenerationRequest spec)."""
        return cls.model_validate(source.model_dump(include=set(cls.model_fields)))

    @model_validator(mode="before")
    @classmethod
    def _accept_legacy_names(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not cls.legacy_names:
            return data
        data = dict(data)
        for old, field in cls.legacy_names.items():
            if old not in data:
                continue
            new = cls.model_fields[field].alias or field
            if new in data or field in data:
                raise ValueError(f"'{old}' is the old name of '{new}': give only one of them")
            data[new] = data.pop(old)
        return data


def describe_validation_error(err: ValidationError, prefix: str = "") -> list[str]:
    """One ``field: reason (got ...)`` line per problem, in the order pydantic found them."""
    lines = []
    for item in err.errors():
        where = ".".join([prefix, *(str(part) for part in item["loc"])] if prefix else map(str, item["loc"]))
        got = repr(item.get("input"))
        got = got if len(got) <= 80 else got[:77] + "..."
        lines.append(f"{where or 'parameters'}: {item['msg']} (got {got})")
    return lines


def unknown_variables(prefix: str, known: set[str], environ: Mapping[str, str]) -> list[str]:
    """One message per variable with ``prefix`` that no field declares (with a close match if any)."""
    messages = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(prefix) or upper in known:
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        messages.append(f"unknown environment variable {name}{hint}")
    return messages


def foreign_variables(
    namespace: str, known: tuple[str, ...], spellings: set[str], environ: Mapping[str, str]
) -> list[str]:
    """One message per variable of ``namespace`` that is neither a ``known`` name nor has a ``known``
    prefix (a typo in the family part, SEVRE for SERVE), with the closest of ``spellings``."""
    if not namespace:
        return []
    prefixes = tuple(k for k in known if k.endswith("_"))
    messages = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(namespace) or upper in known or upper.startswith(prefixes):
            continue
        close = difflib.get_close_matches(upper, sorted(spellings), n=1, cutoff=0.8)
        hint = (
            f"did you mean {close[0]}?"
            if close
            else "known: " + ", ".join(k + "*" if k.endswith("_") else k for k in known)
        )
        messages.append(f"unknown environment variable {name} ({hint})")
    return messages


class UnknownEnvironmentError(ValueError):
    """A variable with our prefix that no setting declares: an error at start-up, not ignored."""


class StrictEnvironment(BaseModel):
    """A container environment: ``<PREFIX><FIELD>`` variables; unknown ones with the prefix are errors.

    Nested models and lists travel as one JSON value each. :meth:`to_env` is the exact inverse of
    :meth:`from_environ`, so the operator writes what the entrypoint reads.
    """

    model_config = ConfigDict(extra="forbid")

    env_prefix: ClassVar[str] = ""
    #: The project-wide namespace of variables (e.g. ``MUSICGEN_``) and what lives in it: family prefixes
    #: (ending in ``_``) and single names; any other variable of the namespace is refused as a typo.
    env_namespace: ClassVar[str] = ""
    env_namespace_known: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def variable_names(cls) -> dict[str, str]:
        """Field name -> environment variable name."""
        return {name: f"{cls.env_prefix}{name.upper()}" for name in cls.model_fields}

    @classmethod
    def _spellings(cls) -> set[str]:
        """Every variable name of this namespace that some environment declares, and its single names."""
        names = {k for k in cls.env_namespace_known if not k.endswith("_")}
        pending: list[type[StrictEnvironment]] = [StrictEnvironment]
        while pending:
            environment = pending.pop()
            pending.extend(environment.__subclasses__())
            if environment.env_prefix and environment.env_namespace == cls.env_namespace:
                names.update(environment.variable_names().values())
        return names

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Read the settings from ``environ`` (default ``os.environ``); ``overrides`` win.

        Raises:
            UnknownEnvironmentError: a variable with the prefix names no setting.
            pydantic.ValidationError: a value is invalid.
        """
        environ = dict(os.environ if environ is None else environ)
        problems = unknown_variables(cls.env_prefix, set(cls.variable_names().values()), environ)
        problems += foreign_variables(cls.env_namespace, cls.env_namespace_known, cls._spellings(), environ)
        if problems:
            raise UnknownEnvironmentError("; ".join(problems))
        values: dict[str, Any] = {}
        by_name = {key.upper(): value for key, value in environ.items()}
        for field, variable in cls.variable_names().items():
            if variable in by_name:
                values[field] = _decode(by_name[variable])
        values.update(overrides)
        return cls.model_validate(values)

    def to_env(self) -> list[dict[str, str]]:
        """Container ``env`` entries that :meth:`from_environ` reads back as this object (no defaults)."""
        env = []
        names = self.variable_names()
        for name, value in self.model_dump(mode="json", exclude_none=True, exclude_defaults=True).items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (list, dict)):
                text = json.dumps(value, sort_keys=True)
            else:
                text = str(value)
            env.append({"name": names[name], "value": text})
        return env


def _decode(text: str) -> Any:
    """A JSON object or list stays JSON; anything else is passed as the string pydantic coerces."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    return text
