"""Dependencies of the routes as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from musicgen_ops.studio.auth import check_forwarded_token, check_request, header_token
from musicgen_ops.studio.backend import Backend
from musicgen_ops.studio.settings import StudioSettings


def get_settings(request: Request) -> StudioSettings:
    """The settings the app was created with."""
    return request.app.state.settings


def get_backend(request: Request) -> Backend:
    """The backend: the app's one local backend, or a Kubernetes backend acting with the caller's token."""
    settings: StudioSettings = request.app.state.settings
    if settings.backend == "kubernetes":
        from musicgen_ops.studio.kube.backend import KubernetesBackend

        return KubernetesBackend(settings, header_token(request) or "")
    return request.app.state.backend


def require_token(request: Request) -> None:
    """Every API call: the token (header, or the cookie for reads), CSRF rules."""
    settings: StudioSettings = request.app.state.settings
    if settings.backend == "kubernetes":
        check_forwarded_token(request)
    else:
        check_request(request, settings.token)


SettingsDep = Annotated[StudioSettings, Depends(get_settings)]
BackendDep = Annotated[Backend, Depends(get_backend)]
