"""The other ways a Kubernetes Secret can configure a backend, each against the real server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from musicgen_ops.storage import open_store
from tests.storage.conftest import AZURITE_ACCOUNT, AZURITE_KEY, S3_KEY_ID, S3_SECRET, unique_name


@pytest.mark.s3
def test_s3_from_minio_variable_names(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # MinIO's names, an endpoint given as host:port, insecure via MINIO_SECURE=0.
    monkeypatch.setenv("MINIO_ENDPOINT", moto_endpoint.removeprefix("http://"))
    monkeypatch.setenv("MINIO_SECURE", "0")
    monkeypatch.setenv("MINIO_ACCESS_KEY", S3_KEY_ID)
    monkeypatch.setenv("MINIO_SECRET_KEY", S3_SECRET)
    store = open_store(f"s3://{unique_name('minio')}/p", create_bucket=True)
    store.put_bytes("a.txt", b"minio")
    assert store.get_bytes("a.txt") == b"minio"
    assert store.settings.access_key == S3_KEY_ID  # type: ignore[attr-defined]


@pytest.mark.azure
def test_azure_account_name_and_key(azurite_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    monkeypatch.setenv("AZURE_STORAGE_BLOB_ENDPOINT", azurite_endpoint)
    store = open_store(f"az://{unique_name('key')}/p", create_bucket=True)
    store.put_bytes("a.txt", b"key")
    assert store.get_bytes("a.txt") == b"key"


@pytest.mark.azure
def test_azure_sas_token(azurite_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    sas = generate_account_sas(
        account_name=AZURITE_ACCOUNT,
        account_key=AZURITE_KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, delete=True, create=True),
        expiry=datetime.now(timezone.utc) + timedelta(minutes=10),
    )
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    monkeypatch.setenv("AZURE_STORAGE_BLOB_ENDPOINT", azurite_endpoint)
    store = open_store(f"az://{unique_name('sas')}/p", create_bucket=True)
    store.put_bytes("a.txt", b"sas")
    assert store.get_bytes("a.txt") == b"sas"
    assert [i.key for i in store.list()] == ["a.txt"]
    # The shareable URL of a SAS-only configuration carries that token.
    url = store.url("a.txt")
    assert url.startswith(f"{azurite_endpoint}/") and "sig=" in url
