"""One emulator (loaded from crds/) per module, and an HTTP client for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.kube_emulator import EmulatorThread, KubeEmulator

CRDS = Path(__file__).resolve().parents[2] / "crds"
TJ = "/apis/musicgen.io/v1alpha1/namespaces/default/trainingjobs"
SERVICES = "/api/v1/namespaces/default/services"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorThread]:
    with EmulatorThread(KubeEmulator(crds=CRDS)) as running:
        yield running


@pytest.fixture(scope="module")
def api(server: EmulatorThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def training_job(name: str, **spec: object) -> dict:
    """A valid TrainingJob body."""
    return {
        "apiVersion": "musicgen.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {"datasetUri": "s3://datasets/piano", **spec},
    }


def post_json(api: httpx.Client, path: str, body: dict, **params: str) -> httpx.Response:
    """POST ``body`` as JSON (with query ``params``)."""
    return api.post(
        path, content=json.dumps(body), params=params, headers={"Content-Type": "application/json"}
    )


def patch_json(api: httpx.Client, path: str, body: object, headers: dict = MERGE) -> httpx.Response:
    """PATCH with ``body`` (a merge-patch unless ``headers`` say otherwise)."""
    return api.patch(path, content=json.dumps(body), headers=headers)
