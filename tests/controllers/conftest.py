"""The operator, run as in production (kopf's own loop over HTTP), against the test Kubernetes API emulator.

One emulator (tests/kube_emulator, loaded with crds/) and one operator serve the whole tests/controllers
session (kopf's handler registry is global, and starting kopf costs seconds). The emulator runs in a
thread with its own event loop, kopf in another; tests are plain sync functions that talk HTTP to the
emulator and play the Job controller by patching Job status. Storage is the local ``file://`` backend
in a temp folder.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.kube_emulator import EmulatorThread, KubeEmulator, write_kubeconfig

NAMESPACE = "default"
TEST_AGENT = "musicgen-tests"
GROUP_VERSION = "musicgen.io/v1alpha1"
CRDS = Path(__file__).resolve().parents[2] / "crds"

PATHS = {
    "trainingjobs": f"/apis/{GROUP_VERSION}",
    "trainedmodels": f"/apis/{GROUP_VERSION}",
    "generationrequests": f"/apis/{GROUP_VERSION}",
    "jobs": "/apis/batch/v1",
    "pods": "/api/v1",
    "deployments": "/apis/apps/v1",
    "services": "/api/v1",
    "events": "/api/v1",
}


class Cluster:
    """Sync helpers over HTTP for tests; the emulator lives in another thread."""

    def __init__(self, url: str, emulator: KubeEmulator, artifacts: Path) -> None:
        self.url = url
        self.emulator = emulator
        self.artifacts = artifacts
        self.http = httpx.Client(base_url=url, headers={"User-Agent": TEST_AGENT}, timeout=10)

    def path(self, plural: str, name: str | None = None, namespace: str = NAMESPACE, sub: str = "") -> str:
        parts = (
            [PATHS[plural], "namespaces", namespace, plural]
            + ([name] if name else [])
            + ([sub] if sub else [])
        )
        return "/".join(parts)

    def create(self, plural: str, body: dict, namespace: str = NAMESPACE) -> dict:
        """POST ``body``; a ``status`` in it is then written through the status subresource, the way
        a kubelet or controller would (the API server drops status on create)."""
        body = dict(body)
        status = body.pop("status", None)
        body.setdefault("metadata", {}).setdefault("namespace", namespace)
        response = self.http.post(self.path(plural, namespace=namespace), json=body)
        assert response.status_code < 300, response.text
        if status is not None:
            return self.patch(plural, body["metadata"]["name"], {"status": status}, sub="status")
        return response.json()

    def get(self, plural: str, name: str, namespace: str = NAMESPACE) -> dict | None:
        response = self.http.get(self.path(plural, name, namespace))
        return response.json() if response.status_code == 200 else None

    def list(self, plural: str, namespace: str = NAMESPACE) -> list[dict]:
        return self.http.get(self.path(plural, namespace=namespace)).json()["items"]

    def patch(self, plural: str, name: str, patch: dict, sub: str = "", namespace: str = NAMESPACE) -> dict:
        response = self.http.patch(
            self.path(plural, name, namespace, sub),
            json=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status_code < 300, response.text
        return response.json()

    def delete(self, plural: str, name: str, namespace: str = NAMESPACE) -> None:
        self.http.delete(self.path(plural, name, namespace))

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Poll ``check`` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except (KeyError, TypeError, AttributeError):
                last = None
            if last:
                return last
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def wait_status(
        self, plural: str, name: str, predicate: Callable[[dict], bool], timeout: float = 15.0
    ) -> dict:
        """Wait until the object's status satisfies ``predicate``; returns the object."""

        def check() -> dict | None:
            obj = self.get(plural, name)
            return obj if obj and predicate(obj.get("status") or {}) else None

        try:
            return self.wait_for(f"{plural}/{name} status", check, timeout)
        except AssertionError:
            obj = self.get(plural, name)
            raise AssertionError(
                f"{plural}/{name} never matched; last status: {obj and obj.get('status')}"
            ) from None

    def events(self, name: str) -> list[dict]:
        return [e for e in self.list("events") if (e.get("involvedObject") or {}).get("name") == name]


def unique(prefix: str) -> str:
    """A fresh object name per test."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _run_operator(ready: threading.Event, stop: threading.Event, box: dict) -> None:
    import kopf

    import musicgen_ops.controllers.main  # noqa: F401  (registers the handlers)

    @kopf.on.startup()
    def _test_settings(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.queueing.idle_timeout = 0.3
        settings.watching.reconnect_backoff = 0.2

    try:
        asyncio.run(kopf.operator(namespaces=[NAMESPACE], standalone=True, stop_flag=stop, ready_flag=ready))
    except BaseException as err:  # surfaced by the fixture
        box["error"] = err
        ready.set()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The emulator and the running operator, shared by every controller test."""
    tmp = tmp_path_factory.mktemp("operator")
    artifacts = tmp / "artifacts"
    artifacts.mkdir()
    box: dict[str, Any] = {}
    server = EmulatorThread(KubeEmulator(crds=CRDS)).start()
    kubeconfig = write_kubeconfig(tmp / "kubeconfig", server.url, NAMESPACE)
    env = {
        "KUBECONFIG": str(kubeconfig),
        "MUSICGEN_OPERATOR_WATCH_NAMESPACES": NAMESPACE,
        "MUSICGEN_OPERATOR_ARTIFACTS_URI": f"file://{artifacts}",
        "MUSICGEN_OPERATOR_TRAINER_IMAGE": "registry.test/trainer:1",
        "MUSICGEN_OPERATOR_GENERATOR_IMAGE": "registry.test/generator:1",
        "MUSICGEN_OPERATOR_STORAGE_SECRET": "storage-creds",
        "MUSICGEN_OPERATOR_PROGRESS_POLL_SECONDS": "0.3",
        "MUSICGEN_OPERATOR_METRICS_PORT": "0",
        "MUSICGEN_OPERATOR_JOB_TTL_SECONDS": "600",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # kopf logs in through the kubernetes package, which reads KUBECONFIG once at import time.
    import kubernetes.config.kube_config

    saved_location = kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(kubeconfig)
    operator_ready, operator_stop = threading.Event(), threading.Event()
    operator_thread = threading.Thread(
        target=_run_operator, args=(operator_ready, operator_stop, box), daemon=True
    )
    operator_thread.start()
    assert operator_ready.wait(20), "the operator did not start"
    if "error" in box:
        raise box["error"]
    logging.getLogger("kopf").setLevel(logging.INFO)
    cluster = Cluster(server.url, server.emulator, artifacts)
    try:
        yield cluster
    finally:
        operator_stop.set()
        operator_thread.join(20)
        server.stop()
        cluster.http.close()
        kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved_location
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(autouse=True)
def _delete_test_resources(request: pytest.FixtureRequest) -> Iterator[None]:
    """Delete the custom resources a test made, so their daemons stop polling."""
    yield
    if "cluster" not in request.fixturenames:
        return
    cluster: Cluster = request.getfixturevalue("cluster")
    for plural in ("generationrequests", "trainingjobs", "trainedmodels"):
        for obj in cluster.list(plural):
            cluster.delete(plural, obj["metadata"]["name"])
