"""Fixtures of the studio tests: a studio on a temporary root, tiny demo tracks, an authorised client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from musicgen_ops.studio.app import create_app
from musicgen_ops.studio.settings import StudioSettings

TOKEN = "test-token-0123456789abcdef"
#: Training recipe small enough for a 2-core CI machine (tiny-random model, fp32 on CPU).
TINY_TRAINING = {
    "base_model": "tiny-random",
    "lora": {"r": 4},
    "training": {"epochs": 2, "batch_size": 2, "learning_rate": 0.003, "precision": "fp32", "save_steps": 2},
    "export_formats": ["adapter"],
}


@pytest.fixture(scope="session")
def demo_tracks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three short real audio files (wav and flac, mixed rates) rendered by the demo data module."""
    from musicgen_ops.pipeline.demo_data import render_demo_dataset

    folder = render_demo_dataset(tmp_path_factory.mktemp("tracks"), num_tracks=3, seconds=2.0)
    return sorted(p for p in folder.iterdir() if p.suffix in (".wav", ".flac"))


def studio_settings(root: Path, **overrides: object) -> StudioSettings:
    """Settings of a test studio: CPU, a known token, fast polling."""
    values = {"root": root, "token": TOKEN, "device": "cpu", "poll_seconds": 0.2} | overrides
    return StudioSettings(**values)


@pytest.fixture(autouse=True)
def _one_thread_subprocesses(monkeypatch: pytest.MonkeyPatch) -> None:
    """train-job subprocesses inherit one intra-op thread (a small shared CPU)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[TestClient]:
    """A running studio (lifespan started) whose client sends the token on every call."""
    with TestClient(create_app(studio_settings(tmp_path / "studio"))) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.3) -> object:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def upload(
    client: TestClient, dataset: str, *paths: Path, prompt: str | None = None, name: str | None = None
):
    """POST tracks as multipart, each file under its own name (or ``name``)."""
    files = [("file", (name or p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    data = {"prompt": prompt} if prompt else {}
    return client.post(f"/api/v1/datasets/{dataset}/tracks", files=files, data=data)
