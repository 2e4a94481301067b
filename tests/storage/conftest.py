"""Real servers for the storage tests: moto's S3 server (in-process) and Azurite (Node.js).

The `store_root` fixture parametrises a test over the local, S3 and Azure backends; each test gets
its own bucket/container and a prefix below it, so tests do not see each other's objects.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
# The published, well-known key of Azurite's development account (not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
S3_KEY_ID = "AKIAMUSICGENTEST0001"
S3_SECRET = "s3-secret-0123456789-do-not-log"

_STORAGE_ENV = (
    "S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "MINIO_ENDPOINT",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "MINIO_SECURE",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_BLOB_ENDPOINT",
    "MUSICGEN_STORAGE_CREATE_BUCKET",
    "MUSICGEN_STORAGE_PART_SIZE_MB",
)


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def azurite_binary() -> Path:
    """The Azurite blob server; a missing install FAILS the Azure tests (CI runs `make install`)."""
    if not AZURITE_BIN.exists():
        pytest.fail(f"Azurite is not installed ({AZURITE_BIN} is missing): run `make install`", pytrace=False)
    return AZURITE_BIN


@pytest.fixture(autouse=True)
def _clean_storage_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials from the developer's shell; quick retries so failure paths stay fast."""
    for name in _STORAGE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MUSICGEN_STORAGE_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("MUSICGEN_STORAGE_BACKOFF_SECONDS", "0.05")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server in a thread on a free port; yields its http:// endpoint."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's blob service on a free port; yields the account's blob endpoint."""
    binary = azurite_binary()
    port = free_port()
    location = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen(
        [
            str(binary),
            "--location",
            str(location),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"Azurite did not start: {err.decode(errors='replace')[-500:]}", pytrace=False)
    yield f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def azurite_connection_string(endpoint: str, key: str = AZURITE_KEY) -> str:
    """A connection string for the development account at ``endpoint``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={key};BlobEndpoint={endpoint};"
    )


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    """Point the S3 backend at moto through the environment, as a user would point it at MinIO."""
    monkeypatch.setenv("S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return moto_endpoint


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, azurite_endpoint: str) -> str:
    """Point the Azure backend at Azurite through AZURE_STORAGE_CONNECTION_STRING."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string(azurite_endpoint))
    return azurite_endpoint


def unique_name(prefix: str) -> str:
    """A bucket/container name unique to one test (lowercase, valid for S3 and Azure)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Backend:
    """One backend under test: its root URI and how to give it wrong credentials."""

    name: str
    root: str
    monkeypatch: pytest.MonkeyPatch
    #: Secret values configured for this backend; they must never show up in messages or logs.
    secrets: list[str] = field(default_factory=list)
    break_credentials: Callable[[], contextlib.AbstractContextManager[None]] | None = None

    @property
    def remote(self) -> bool:
        return self.name != "file"


@contextlib.contextmanager
def _moto_wrong_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto checks keys only with IAM authentication on; turn it on and present unknown keys."""
    from moto.core.authorization import enable_iam_authentication

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-never-logged")
    with enable_iam_authentication():
        yield


@pytest.fixture(
    params=[
        "file",
        pytest.param("s3", marks=pytest.mark.s3),
        pytest.param("azure", marks=pytest.mark.azure),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """The same contract tests run against a local folder, S3 (moto) and Azure Blob (Azurite)."""
    monkeypatch.setenv("MUSICGEN_STORAGE_CREATE_BUCKET", "1")
    if request.param == "file":
        return Backend("file", (tmp_path / "store").as_uri(), monkeypatch)
    if request.param == "s3":
        request.getfixturevalue("s3_env")
        return Backend(
            "s3",
            f"s3://{unique_name('mg')}/team-a",
            monkeypatch,
            secrets=[S3_SECRET, "wrong-secret-value-never-logged"],
            break_credentials=lambda: _moto_wrong_credentials(monkeypatch),
        )
    endpoint = request.getfixturevalue("azure_env")
    wrong_key = "d3Jvbmcta2V5LW5ldmVyLWxvZ2dlZC0wMTIzNDU2Nzg5"

    @contextlib.contextmanager
    def wrong() -> Iterator[None]:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string(endpoint, wrong_key))
        yield

    return Backend(
        "azure",
        f"az://{unique_name('mg')}/team-a",
        monkeypatch,
        secrets=[wrong_key],
        break_credentials=wrong,
    )


@pytest.fixture
def store_root(backend: Backend) -> str:
    """Root URI of an empty store on the parametrised backend."""
    return backend.root


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model folder: an adapter, an exported format in a subfolder."""
    root = tmp_path / "model"
    (root / "adapter").mkdir(parents=True)
    (root / "adapter" / "adapter_config.json").write_text('{"r": 4}')
    (root / "adapter" / "adapter_model.safetensors").write_bytes(os.urandom(40_000))
    (root / "onnx").mkdir()
    (root / "onnx" / "decoder.onnx").write_bytes(os.urandom(70_000))
    return root
