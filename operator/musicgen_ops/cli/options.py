"""CLI options declared from the contract models: default and help come from the field, bounds are
checked by the model, and a validation error names the option the user typed."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined


def field_option(model: type[BaseModel], name: str, *declarations: str, **kwargs: Any) -> Any:
    """A ``typer.Option`` for ``model.<name>``: ``--<name-with-dashes>`` plus ``declarations``."""
    field = model.model_fields[name]
    default = kwargs.pop("default", None if field.default is PydanticUndefined else field.default)
    if isinstance(default, list):
        default = ",".join(map(str, default)) or None
    flag = "--" + name.replace("_", "-")
    decls = [flag, *(d for d in declarations if d != flag)]
    return typer.Option(default, *decls, help=kwargs.pop("help", field.description), **kwargs)


def describe_option_errors(err: ValidationError, renames: dict[str, str] | None = None) -> str:
    """Pydantic's problems as ``--option: reason`` (nested fields ``lora.r`` -> ``--lora-r``)."""
    renames = renames or {}
    lines = []
    for item in err.errors():
        parts = [str(part) for part in item.get("loc", ()) if not isinstance(part, int)]  # not list indices
        path = "_".join(parts)
        option = renames.get(path, path.replace("_", "-"))
        lines.append(f"--{option}: {item.get('msg', 'invalid')}" if option else item.get("msg", "invalid"))
    return "; ".join(lines)


def split_list(value: str | None) -> list[str]:
    """``a,b, c`` -> ``['a', 'b', 'c']`` (None -> [])."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]
