"""FastAPI dependencies as ``Annotated`` aliases: the service and the settings of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.serving.metrics import ServingMetrics
from musicgen_ops.serving.service import GenerationService


def get_service(request: Request) -> GenerationService:
    """The app's GenerationService (created in ``create_app``)."""
    return request.app.state.service


def get_settings(request: Request) -> ServeEnvironment:
    """The app's settings."""
    return request.app.state.service.settings


def get_metrics(request: Request) -> ServingMetrics:
    """The app's Prometheus metrics."""
    return request.app.state.service.metrics


ServiceDep = Annotated[GenerationService, Depends(get_service)]
SettingsDep = Annotated[ServeEnvironment, Depends(get_settings)]
MetricsDep = Annotated[ServingMetrics, Depends(get_metrics)]
