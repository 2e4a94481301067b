"""A thin async Kubernetes API client: dicts in, dicts out, merge-patches, get-or-create.

kopf is deliberately not a client; this module is the operator's one. Credentials come from the same
place kopf's own login takes them (in-cluster service account, else kubeconfig) through the official
``kubernetes`` package's loaders; requests go over aiohttp. 429/5xx and connection errors are retried
here a few times with backoff; what still fails is raised and kopf retries the handler with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp

from musicgen_ops.api.common import GROUP, VERSION

logger = logging.getLogger(__name__)
USER_AGENT = "musicgen-operator/0.1"
MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """The API server refused a request."""

    def __init__(self, status: int, reason: str, message: str, url: str) -> None:
        self.status, self.reason, self.url = status, reason, url
        super().__init__(f"HTTP {status} {reason} for {url}: {message}")


class NotFoundError(KubeError):
    """404."""


class ConflictError(KubeError):
    """409 (already exists, or a stale resourceVersion)."""


@dataclass(frozen=True)
class Resource:
    """A Kubernetes resource by group, version and plural."""

    group: str
    version: str
    plural: str

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The API path of a collection or an object."""
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        parts = [base]
        if namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


JOBS = Resource("batch", "v1", "jobs")
PODS = Resource("", "v1", "pods")
SERVICES = Resource("", "v1", "services")
SECRETS = Resource("", "v1", "secrets")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
TRAINING_JOBS = Resource(GROUP, VERSION, "trainingjobs")
TRAINED_MODELS = Resource(GROUP, VERSION, "trainedmodels")
GENERATION_REQUESTS = Resource(GROUP, VERSION, "generationrequests")


@dataclass
class Connection:
    """Where the API server is and how to authenticate."""

    server: str
    headers: dict[str, str]
    ssl_context: ssl.SSLContext | bool | None = None
    refresh: Any = None  # kubernetes Configuration whose auth_settings() refreshes tokens


def connection_from_environment() -> Connection:
    """In-cluster service account, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    import kubernetes.client
    import kubernetes.config

    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        # Explicit: the kubernetes package reads KUBECONFIG once, at import time.
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    config = kubernetes.client.Configuration.get_default_copy()
    context: ssl.SSLContext | bool | None = None
    if config.host.startswith("https"):
        context = ssl.create_default_context(cafile=config.ssl_ca_cert) if config.verify_ssl else False
        if context and config.cert_file:
            context.load_cert_chain(config.cert_file, config.key_file)
    return Connection(server=config.host.rstrip("/"), headers={}, ssl_context=context, refresh=config)


class Kube:
    """Async API calls the controllers need."""

    def __init__(self, connection: Connection, *, attempts: int = 3, backoff: float = 0.5) -> None:
        self.connection = connection
        self.attempts = attempts
        self.backoff = backoff
        self._session: aiohttp.ClientSession | None = None

    def _auth_headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, **self.connection.headers}
        config = self.connection.refresh
        if config is not None:
            for setting in config.auth_settings().values():
                if setting.get("in") == "header" and setting.get("value"):
                    headers[setting["key"]] = setting["value"]
        return headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        url = self.connection.server + path
        headers = {**self._auth_headers(), "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._session.request(
                    method, url, json=body, params=params, headers=headers, ssl=self.connection.ssl_context
                ) as response:
                    data = await response.json(content_type=None) if response.content_length != 0 else {}
                    if response.status < 400:
                        return data or {}
                    error = _error(response.status, data, url)
                    if response.status not in (429, 500, 502, 503, 504) or attempt == self.attempts:
                        raise error
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as err:
                if attempt == self.attempts:
                    raise KubeError(0, type(err).__name__, str(err), url) from err
            logger.debug("retrying %s %s in %.1fs (attempt %d)", method, path, delay, attempt)
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self._request("GET", resource.path(namespace, name))
        except NotFoundError:
            return None

    async def list(
        self, resource: Resource, namespace: str, labels: dict[str, str] | None = None
    ) -> list[dict]:
        """Objects in a namespace matching all ``labels``."""
        params = {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else None
        data = await self._request("GET", resource.path(namespace), params=params)
        items = data.get("items") or []
        # Filter here too: the selector is an optimisation, not a guarantee we rely on.
        return [
            i
            for i in items
            if all((i.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in (labels or {}).items())
        ]

    async def create(self, resource: Resource, body: dict[str, Any]) -> dict[str, Any]:
        """Create an object in its metadata.namespace."""
        return await self._request("POST", resource.path(body["metadata"].get("namespace")), body=body)

    async def get_or_create(self, resource: Resource, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The existing object of that name, or a new one: (object, created)."""
        meta = body["metadata"]
        existing = await self.get(resource, meta["namespace"], meta["name"])
        if existing is not None:
            return existing, False
        try:
            return await self.create(resource, body), True
        except ConflictError:  # created concurrently
            found = await self.get(resource, meta["namespace"], meta["name"])
            if found is None:
                raise
            return found, False

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """A JSON merge-patch of an object (or its subresource)."""
        return await self._request(
            "PATCH", resource.path(namespace, name, subresource), body=patch, content_type=MERGE_PATCH
        )

    async def patch_status(
        self, resource: Resource, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        """Merge ``status`` into the object's status subresource."""
        if status:
            await self.patch(resource, namespace, name, {"status": status}, subresource="status")

    async def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        """Delete with background propagation (the Job's pods go too); False when already gone."""
        try:
            await self._request(
                "DELETE",
                resource.path(namespace, name),
                body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
            )
        except NotFoundError:
            return False
        return True

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()


def _error(status: int, data: Any, url: str) -> KubeError:
    reason = data.get("reason", "") if isinstance(data, dict) else ""
    message = data.get("message", "") if isinstance(data, dict) else str(data)
    cls = NotFoundError if status == 404 else ConflictError if status == 409 else KubeError
    return cls(status, reason, message, url)
