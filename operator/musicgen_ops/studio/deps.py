"""Dependencies of the routes as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from musicgen_ops.studio.auth import check_request
from musicgen_ops.studio.backend import Backend
from musicgen_ops.studio.settings import StudioSettings


def get_settings(request: Request) -> StudioSettings:
    """The settings the app was created with."""
    return request.app.state.settings


def get_backend(request: Request) -> Backend:
    """The backend the app was created with."""
    return request.app.state.backend


def require_token(request: Request) -> None:
    """Every API call: the token (header, or the cookie for reads), CSRF rules."""
    check_request(request, request.app.state.settings.token)


SettingsDep = Annotated[StudioSettings, Depends(get_settings)]
BackendDep = Annotated[Backend, Depends(get_backend)]
