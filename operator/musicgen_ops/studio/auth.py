"""Access control of the local studio: one random token, a session cookie for the page, CSRF rules.

* Every ``/api/v1`` call sends ``Authorization: Bearer <token>`` (or ``X-Studio-Token``); the web app does
  too (media and the event stream are fetched with the header).
* The browser opens ``/?token=<token>`` once; the answer sets an HttpOnly, SameSite=Strict cookie that only
  serves the page (which carries the token for its calls) and redirects to a URL without the token. The
  cookie never authorises an API call, so a cross-site page can neither read nor change anything (CSRF):
  it cannot set the header without a CORS preflight the studio never grants, and a write with a foreign
  ``Origin`` is refused.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from musicgen_ops.studio.backend import StudioError

COOKIE_NAME = "musicgen_studio"
TOKEN_HEADER = "x-studio-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class UnauthorizedError(StudioError):
    """No token, or a wrong one."""

    status_code = 401


class ForbiddenError(StudioError):
    """A write authorised only by the cookie, or from another origin."""

    status_code = 403


def header_token(request: Request) -> str | None:
    """The token from ``Authorization: Bearer`` or ``X-Studio-Token``."""
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return request.headers.get(TOKEN_HEADER)


def matches(given: str | None, token: str) -> bool:
    """Constant-time comparison."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def check_request(request: Request, token: str) -> None:
    """Raise unless the request may proceed (see the module docstring for the rules)."""
    if matches(header_token(request), token):
        origin = request.headers.get("origin")
        if origin and request.method not in SAFE_METHODS and not same_origin(request, origin):
            raise ForbiddenError(f"error: requests from origin {origin} are not accepted")
        return
    if matches(request.cookies.get(COOKIE_NAME), token):
        raise ForbiddenError(
            "error: API calls need the token in the Authorization header (the cookie only serves the page)"
        )
    raise UnauthorizedError(
        "error: missing or wrong token: open the URL printed by `musicgen-ops studio`, or send "
        "'Authorization: Bearer <token>'"
    )


def check_forwarded_token(request: Request) -> None:
    """Kubernetes backend: a bearer token must come with the call; the Kubernetes API judges it (RBAC)."""
    if not header_token(request):
        raise UnauthorizedError(
            "error: send your Kubernetes token as 'Authorization: Bearer <token>': the studio acts as you"
        )
    origin = request.headers.get("origin")
    if origin and request.method not in SAFE_METHODS and not same_origin(request, origin):
        raise ForbiddenError(f"error: requests from origin {origin} are not accepted")


def same_origin(request: Request, origin: str) -> bool:
    """Whether ``origin`` is this server (scheme://host[:port] as the client addressed it)."""
    return origin.rstrip("/") == f"{request.url.scheme}://{request.headers.get('host', '')}"
