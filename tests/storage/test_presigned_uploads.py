"""Presigned uploads: a URL that takes one PUT without credentials (S3/MinIO, Azure SAS; none for file://)."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest

from musicgen_ops.storage import PresignedUploadsUnsupportedError, open_store
from tests.storage.conftest import Backend


def test_a_plain_http_put_to_the_url_stores_the_object_and_nothing_else(backend: Backend) -> None:
    store = open_store(backend.root).child("uploads")
    if not backend.remote:
        with pytest.raises(PresignedUploadsUnsupportedError, match="file:// stores take no presigned"):
            store.upload_url("a/track.wav")
        return
    upload = store.upload_url("a/track.wav", expires=timedelta(minutes=5))
    assert upload.method == "PUT" and upload.url.startswith("http://127.0.0.1")
    for secret in backend.secrets:
        assert secret not in upload.url
    answer = httpx.put(upload.url, content=b"RIFF-bytes", headers=upload.headers)
    assert answer.status_code in (200, 201), answer.text
    assert store.get_bytes("a/track.wav") == b"RIFF-bytes"
    if backend.name == "s3":
        return  # moto checks no signatures (without IAM emulation); Azurite checks every SAS
    # The signature covers one key: the same URL cannot write another one.
    elsewhere = upload.url.replace("a/track.wav", "a/other.wav")
    assert httpx.put(elsewhere, content=b"x", headers=upload.headers).status_code == 403
    assert not store.exists("a/other.wav")


@pytest.mark.parametrize("backend", [pytest.param("azure", marks=pytest.mark.azure)], indirect=True)
def test_an_expired_url_is_refused(backend: Backend) -> None:
    store = open_store(backend.root)
    upload = store.upload_url("late.wav", expires=timedelta(seconds=1))
    time.sleep(1.5)
    assert httpx.put(upload.url, content=b"x", headers=upload.headers).status_code == 403
    assert not store.exists("late.wav")


def test_azure_without_an_account_key_cannot_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    from musicgen_ops.storage.azure import AzureBlobStore, AzureSettings

    settings = AzureSettings(blob_endpoint="http://127.0.0.1:9/devstoreaccount1", sas_token="sv=x&sig=y")
    store = AzureBlobStore("box", settings=settings, create_bucket=False)
    with pytest.raises(PresignedUploadsUnsupportedError, match="without the storage account key"):
        store.upload_url("a.wav")
