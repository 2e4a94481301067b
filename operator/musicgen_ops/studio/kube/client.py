"""A small Kubernetes REST client for the studio's three custom resources, with the caller's token."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from musicgen_ops.api.common import GROUP, VERSION
from musicgen_ops.studio.auth import ForbiddenError, UnauthorizedError
from musicgen_ops.studio.backend import ConflictError, InvalidInputError, NotFoundError, StudioError

#: The path of a namespaced custom resource collection.
COLLECTION = "/apis/{group}/{version}/namespaces/{namespace}/{plural}"
#: Where a caller asks what it may do.
SELF_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


class KubeUnavailableError(StudioError):
    """The Kubernetes API cannot be reached."""

    status_code = 502


def raise_for(response: httpx.Response, verb: str, plural: str, namespace: str) -> None:
    """Turn a Kubernetes API error into the studio's error, naming the verb and resource."""
    if response.status_code < 400:
        return
    try:
        reason = response.json().get("message") or response.text
    except ValueError:
        reason = response.text
    where = f"{verb} {plural}.{GROUP} in namespace {namespace}"
    errors: dict[int, type[StudioError]] = {
        401: UnauthorizedError,
        403: ForbiddenError,
        404: NotFoundError,
        409: ConflictError,
        422: InvalidInputError,
    }
    if response.status_code == 403:
        raise ForbiddenError(f"error: Kubernetes RBAC does not let your token {where}: {reason}")
    if response.status_code == 401:
        raise UnauthorizedError(f"error: the Kubernetes API refused your token ({where}): {reason}")
    raise errors.get(response.status_code, StudioError)(f"error: {where}: {reason}")


class KubeClient:
    """CRUD and watch on ``musicgen.io`` resources in one namespace, as the holder of ``token``."""

    def __init__(
        self, api_url: str, namespace: str, token: str, *, verify: str | bool = True, timeout: float = 10.0
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.namespace = namespace
        self.headers = {"Authorization": f"Bearer {token}", "User-Agent": "musicgen-studio"}
        self.verify = verify
        self.timeout = timeout

    def _url(self, plural: str, name: str | None = None) -> str:
        path = COLLECTION.format(group=GROUP, version=VERSION, namespace=self.namespace, plural=plural)
        return f"{self.api_url}{path}" + (f"/{name}" if name else "")

    def _request(self, method: str, verb: str, plural: str, name: str | None = None, **kwargs: Any) -> Any:
        try:
            with httpx.Client(headers=self.headers, verify=self.verify, timeout=self.timeout) as http:
                response = http.request(method, self._url(plural, name), **kwargs)
        except httpx.HTTPError as err:
            raise KubeUnavailableError(
                f"error: the Kubernetes API at {self.api_url} is unreachable: {err}"
            ) from err
        raise_for(response, verb, plural, self.namespace)
        return response.json() if response.content else None

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create one object."""
        return self._request("POST", "create", plural, json=body)

    def get(self, plural: str, name: str) -> dict[str, Any]:
        """Read one object."""
        return self._request("GET", "get", plural, name)

    def list(self, plural: str) -> list[dict[str, Any]]:
        """Every object of a kind in the namespace."""
        return self._request("GET", "list", plural)["items"]

    def can(self, verb: str, plural: str) -> bool:
        """Whether RBAC lets the caller ``verb`` this namespace's ``plural`` (a SelfSubjectAccessReview,
        which every authenticated user may create)."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": self.namespace,
                    "verb": verb,
                    "group": GROUP,
                    "resource": plural,
                }
            },
        }
        try:
            with httpx.Client(headers=self.headers, verify=self.verify, timeout=self.timeout) as http:
                response = http.post(f"{self.api_url}{SELF_REVIEWS}", json=review)
        except httpx.HTTPError as err:
            raise KubeUnavailableError(
                f"error: the Kubernetes API at {self.api_url} is unreachable: {err}"
            ) from err
        raise_for(response, "review access to", plural, self.namespace)
        return bool((response.json().get("status") or {}).get("allowed"))

    def delete(self, plural: str, name: str) -> None:
        """Delete one object (its Jobs and pods go with it through owner references)."""
        self._request("DELETE", "delete", plural, name)

    async def watch(
        self, plural: str, name: str, timeout_seconds: int = 300
    ) -> AsyncIterator[dict[str, Any]]:
        """The object each time the API server reports a change (a watch, not a polling loop)."""
        params = {
            "watch": "true",
            "fieldSelector": f"metadata.name={name}",
            "timeoutSeconds": timeout_seconds,
        }
        timeout = httpx.Timeout(self.timeout, read=timeout_seconds + 5)
        async with (
            httpx.AsyncClient(headers=self.headers, verify=self.verify, timeout=timeout) as http,
            http.stream("GET", self._url(plural), params=params) as response,
        ):
            if response.status_code >= 400:
                await response.aread()
                raise_for(response, "watch", plural, self.namespace)
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if (obj.get("metadata") or {}).get("name") != name:  # not every server filters
                    continue
                yield {"type": event.get("type"), "object": obj}
