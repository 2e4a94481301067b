"""Storage deadlines: an endpoint that accepts connections and never answers fails fast, named."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from musicgen_ops.storage import InvalidURIError, StorageUnavailableError, open_store
from musicgen_ops.storage.deadlines import Timeouts
from tests.storage.conftest import S3_KEY_ID, S3_SECRET, azurite_connection_string


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback TCP server that accepts every connection, reads what is sent and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def short_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICGEN_STORAGE_CONNECT_TIMEOUT", "0.5")
    monkeypatch.setenv("MUSICGEN_STORAGE_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("MUSICGEN_STORAGE_DEADLINE_SECONDS", "1.5")
    monkeypatch.setenv("MUSICGEN_STORAGE_MAX_ATTEMPTS", "50")
    monkeypatch.setenv("MUSICGEN_STORAGE_BACKOFF_SECONDS", "0.05")


def test_s3_black_hole_fails_within_the_deadline(black_hole, short_limits, monkeypatch) -> None:
    monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{black_hole}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as info:
        open_store("s3://bucket/x").get_bytes("progress.json")
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 10.0, elapsed
    message = str(info.value)
    assert f"S3 endpoint http://127.0.0.1:{black_hole} did not answer within 1.5 s" in message
    assert "MUSICGEN_STORAGE_DEADLINE_SECONDS" in message


def test_azure_black_hole_fails_within_the_deadline(black_hole, short_limits, monkeypatch) -> None:
    endpoint = f"http://127.0.0.1:{black_hole}/devstoreaccount1"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string(endpoint))
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as info:
        open_store("az://container/x").get_bytes("progress.json")
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 10.0, elapsed
    assert f"cannot reach Azure Blob endpoint http://127.0.0.1:{black_hole}" in str(info.value)
    assert "within 1.5 s" in str(info.value)


def test_limits_come_from_the_environment(monkeypatch) -> None:
    assert Timeouts.from_env() == Timeouts(connect=10, read=30, deadline=60)
    monkeypatch.setenv("MUSICGEN_STORAGE_DEADLINE_SECONDS", "soon")
    with pytest.raises(InvalidURIError, match="MUSICGEN_STORAGE_DEADLINE_SECONDS='soon' is not a number"):
        Timeouts.from_env()
