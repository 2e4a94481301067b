"""A Kubernetes API emulator for tests: kopf, the operator's client and the real ``kubectl`` talk to it
over HTTP on a loopback port.

It serves the built-in kinds the chart and operator use plus every kind a CRD defines (CRDs loaded from
``crds/`` or created through the API), with the API server's rules: server-owned metadata, generation,
the status subresource, strict JSON, name validation, CRD structural schemas and ``self == oldSelf``
rules, RBAC for ServiceAccount tokens (TokenRequest), RFC 7386 merge-patch, JSON-patch guards (422),
watches that resume from a resourceVersion, garbage collection by owner references, defaulting of
Deployments, Jobs and Services, Tables from printer columns and /openapi/v3.

Not emulated: controllers (no Job, Deployment or kubelet behaviour; tests play them), authentication
(any other token is cluster-admin), field ownership in server-side apply (an apply creates or
merge-patches), strategic-merge list semantics (treated as merge-patch), defaulting of other built-in
kinds, CEL rules other than ``self == oldSelf`` (accepted, not evaluated), protobuf bodies of kinds other
than Namespace, Secret, ConfigMap and ServiceAccount (415; ``kubectl apply`` sends JSON).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import TracebackType

import yaml
from aiohttp import web

from tests.kube_emulator.emulator import KubeEmulator, Recorded
from tests.kube_emulator.server import Routes, make_app

__all__ = ["EmulatorThread", "KubeEmulator", "Recorded", "write_kubeconfig"]


class EmulatorThread:
    """Serve a :class:`KubeEmulator` on 127.0.0.1 from a thread with its own event loop."""

    def __init__(self, emulator: KubeEmulator | None = None, port: int = 0) -> None:
        self.emulator = emulator or KubeEmulator()
        self.port = port
        self.url = ""
        self.routes: Routes | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app, self.routes = make_app(self.emulator)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", self.port)
            loop.run_until_complete(site.start())
            port = runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
        except BaseException as err:  # surfaced in start()
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def start(self) -> EmulatorThread:
        """Start serving; returns once the port is open."""
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"the Kubernetes API emulator did not start: {self._error}")
        return self

    def stop(self) -> None:
        """End the watches and the server."""
        if self._loop is None or not self._thread.is_alive():
            return
        assert self.routes is not None
        self._loop.call_soon_threadsafe(self.routes.stopping.set)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def write_kubeconfig(path: Path, url: str, namespace: str = "default", token: str = "test-token") -> Path:
    """A kubeconfig whose current context points at ``url`` (token auth, no TLS); the default token is
    the test's cluster-admin, a TokenRequest token acts as its ServiceAccount."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "emulator",
                "clusters": [{"name": "emulator", "cluster": {"server": url}}],
                "users": [{"name": "tester", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "emulator",
                        "context": {"cluster": "emulator", "user": "tester", "namespace": namespace},
                    }
                ],
            }
        )
    )
    return path
