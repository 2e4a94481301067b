"""What every handler needs at run time: the configuration and the API client (kept in kopf's memo)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from musicgen_ops.contracts.base import describe_validation_error as describe_problems
from musicgen_ops.controllers.config import OperatorConfig
from musicgen_ops.controllers.kube import Kube


@dataclass
class Context:
    """The operator's configuration and its Kubernetes client."""

    config: OperatorConfig
    kube: Kube


def describe_validation_error(err: ValidationError, prefix: str = "spec") -> str:
    """The problems of an invalid spec on one line, each naming its Kubernetes (camelCase) path and the
    value it got (the contracts' wording, as the CLI and the jobs print it)."""
    return "; ".join(describe_problems(err, prefix))
