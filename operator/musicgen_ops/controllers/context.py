"""What every handler needs at run time: the configuration and the API client (kept in kopf's memo)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from musicgen_ops.controllers.config import OperatorConfig
from musicgen_ops.controllers.kube import Kube


@dataclass
class Context:
    """The operator's configuration and its Kubernetes client."""

    config: OperatorConfig
    kube: Kube


def describe_validation_error(err: ValidationError, prefix: str = "spec") -> str:
    """One line per problem, naming the field by its Kubernetes (camelCase) path."""
    problems = []
    for error in err.errors():
        path = ".".join([prefix, *(str(part) for part in error["loc"])])
        problems.append(f"{path}: {error['msg']}")
    return "; ".join(problems)
