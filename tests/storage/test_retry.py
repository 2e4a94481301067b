"""Transient failures: the retry helper, a server that starts late, an endpoint that never answers."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from musicgen_ops.storage import NotFoundError, StorageUnavailableError, open_store, retry
from tests.storage.conftest import (
    S3_KEY_ID,
    S3_SECRET,
    azurite_binary,
    azurite_connection_string,
    free_port,
    unique_name,
    wait_for_port,
)


def test_retry_backs_off_exponentially_then_succeeds() -> None:
    failures = iter([StorageUnavailableError("503"), StorageUnavailableError("reset")])
    sleeps: list[float] = []

    def operation() -> str:
        err = next(failures, None)
        if err is not None:
            raise err
        return "ok"

    assert retry(operation, what="put", attempts=3, base_delay=0.1, sleep=sleeps.append) == "ok"
    assert sleeps == [0.1, 0.2]


def test_retry_gives_up_and_does_not_retry_permanent_errors() -> None:
    calls: list[int] = []

    def unavailable() -> None:
        calls.append(1)
        raise StorageUnavailableError("down")

    with pytest.raises(StorageUnavailableError):
        retry(unavailable, what="get", attempts=3, base_delay=0, sleep=lambda _: None)
    assert len(calls) == 3

    def missing() -> None:
        calls.append(2)
        raise NotFoundError("gone")

    with pytest.raises(NotFoundError):
        retry(missing, what="get", attempts=3, base_delay=0, sleep=lambda _: None)
    assert calls.count(2) == 1


@pytest.fixture
def late_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3 endpoint whose server only starts 1.5 s after the test begins."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    timer = threading.Timer(1.5, server.start)
    monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    timer.start()
    yield f"http://127.0.0.1:{port}"
    timer.join()
    server.stop()


@pytest.mark.s3
def test_s3_survives_a_server_that_starts_late(late_moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib3 retries refused connections with 0, 0.4, 0.8, 1.6... s sleeps.
    monkeypatch.setenv("MUSICGEN_STORAGE_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("MUSICGEN_STORAGE_BACKOFF_SECONDS", "0.2")
    started = time.monotonic()
    store = open_store(f"s3://{unique_name('late')}/x", create_bucket=True)
    store.put_bytes("progress.json", b"{}")
    assert time.monotonic() - started >= 1.0, "the first request should have had to wait for the server"
    assert store.get_bytes("progress.json") == b"{}"


@pytest.mark.s3
def test_s3_unreachable_endpoint_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MUSICGEN_STORAGE_MAX_ATTEMPTS", "2")
    with pytest.raises(StorageUnavailableError) as info:
        open_store("s3://some-bucket/x").get_bytes("a.json")
    assert "cannot reach S3 endpoint http://127.0.0.1:" in str(info.value)
    assert "S3_ENDPOINT_URL" in str(info.value)


@pytest.mark.azure
def test_azure_survives_a_server_that_starts_late(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    binary = azurite_binary()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}/devstoreaccount1"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string(endpoint))
    monkeypatch.setenv("MUSICGEN_STORAGE_MAX_ATTEMPTS", "8")
    monkeypatch.setenv("MUSICGEN_STORAGE_BACKOFF_SECONDS", "0.2")
    command = [
        str(binary),
        "--location",
        str(tmp_path_factory.mktemp("azurite-late")),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--skipApiVersionCheck",
        "--silent",
    ]
    procs: list[subprocess.Popen[bytes]] = []
    timer = threading.Timer(1.0, lambda: procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL)))
    timer.start()
    try:
        started = time.monotonic()
        store = open_store(f"az://{unique_name('late')}/x", create_bucket=True)
        store.put_bytes("progress.json", b"{}")
        assert time.monotonic() - started >= 1.0
        assert store.get_bytes("progress.json") == b"{}"
    finally:
        timer.join()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
    assert procs, "the late server was never started"
    with pytest.raises(OSError):
        wait_for_port(port, timeout=0.3)


@pytest.mark.azure
def test_azure_unreachable_endpoint_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string(endpoint))
    monkeypatch.setenv("MUSICGEN_STORAGE_MAX_ATTEMPTS", "2")
    with pytest.raises(StorageUnavailableError, match="cannot reach Azure Blob endpoint http://127.0.0.1:"):
        open_store("az://some-container/x").get_bytes("a.json")
