"""URI parsing, backend selection by scheme and settings from the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from musicgen_ops.storage import (
    AccessDeniedError,
    InvalidURIError,
    LocalStore,
    open_object,
    open_store,
    parse_uri,
    register_backend,
)
from musicgen_ops.storage.azure import AzureSettings
from musicgen_ops.storage.base import normalize_key
from musicgen_ops.storage.s3 import S3Settings, S3Store


@pytest.mark.parametrize(
    ("uri", "scheme", "bucket", "key"),
    [
        ("s3://bucket/a/b", "s3", "bucket", "a/b"),
        ("s3://bucket", "s3", "bucket", ""),
        ("s3://bucket/a//b/", "s3", "bucket", "a/b"),
        ("az://container/models/x", "az", "container", "models/x"),
        ("file:///tmp/store", "file", "", "/tmp/store"),
        ("file://localhost/tmp/x%20y", "file", "", "/tmp/x y"),
    ],
)
def test_parse_uri(uri: str, scheme: str, bucket: str, key: str) -> None:
    parsed = parse_uri(uri)
    assert (parsed.scheme, parsed.bucket, parsed.key) == (scheme, bucket, key)


def test_plain_paths_are_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_uri("rel/dir").key == str(tmp_path / "rel" / "dir")
    store = open_store(str(tmp_path / "s"))
    assert isinstance(store, LocalStore) and store.root == tmp_path / "s"
    assert open_store(tmp_path).root_uri == tmp_path.as_uri()


def test_unknown_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(InvalidURIError) as info:
        open_store("gs://bucket/x")
    assert "'gs'" in str(info.value)
    assert "az://, file://, s3://" in str(info.value)


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3:///key", "names no bucket"),
        ("s3://bucket/a/../b", "'..'"),
        ("file://host/x", "file:///absolute/path"),
        ("s3://bucket/k?versionId=1", "query"),
        ("", "empty"),
    ],
)
def test_bad_uris_are_refused(uri: str, reason: str) -> None:
    with pytest.raises(InvalidURIError, match=reason):
        parse_uri(uri)


def test_bad_keys_and_bucket_names() -> None:
    assert normalize_key("/a/./b/") == "a/b"
    for key in ("..", "a/../b", "a\\b", ""):
        with pytest.raises(InvalidURIError):
            normalize_key(key)
    with pytest.raises(InvalidURIError, match="invalid S3 bucket name 'x'"):
        S3Store("x", settings=S3Settings(), client=object())


def test_register_backend_adds_a_scheme(tmp_path: Path) -> None:
    register_backend("mem", lambda uri, create_bucket=None: LocalStore(tmp_path / uri.bucket))
    try:
        store = open_store("mem://box/x")
        assert isinstance(store, LocalStore) and store.root == tmp_path / "box"
    finally:
        from musicgen_ops.storage import uri as uri_module

        uri_module._FACTORIES.pop("mem")


def test_open_object_splits_store_and_key(tmp_path: Path) -> None:
    store, key = open_object(str(tmp_path / "dir" / "file.txt"))
    assert isinstance(store, LocalStore) and store.root == tmp_path / "dir" and key == "file.txt"


def test_s3_settings_from_env() -> None:
    settings = S3Settings.from_env(
        {
            "S3_ENDPOINT_URL": "http://minio.storage:9000",
            "AWS_ENDPOINT_URL": "https://ignored",
            "AWS_ACCESS_KEY_ID": "id",
            "AWS_SECRET_ACCESS_KEY": "secret-1",
            "AWS_SESSION_TOKEN": "tok",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
    )
    assert (settings.endpoint, settings.secure, settings.access_key) == ("minio.storage:9000", False, "id")
    assert (settings.secret_key, settings.session_token, settings.region) == ("secret-1", "tok", "eu-west-1")
    assert "secret-1" not in repr(settings) and "tok" not in repr(settings)
    # MinIO's own variable names are fallbacks; an endpoint without scheme is https.
    minio = S3Settings.from_env(
        {"MINIO_ENDPOINT": "minio:9000", "MINIO_ACCESS_KEY": "a", "MINIO_SECRET_KEY": "b"}
    )
    assert (minio.endpoint, minio.secure, minio.access_key, minio.secret_key) == (
        "minio:9000",
        True,
        "a",
        "b",
    )
    assert (
        S3Settings.from_env({"AWS_ENDPOINT_URL": "https://s3.example.com", "AWS_REGION": "x"}).region == "x"
    )
    assert S3Settings.from_env({}).endpoint_url == "https://s3.amazonaws.com"
    with pytest.raises(InvalidURIError, match="S3_ENDPOINT_URL"):
        S3Settings.from_env({"S3_ENDPOINT_URL": "ftp://x"})


def test_azure_settings_from_env() -> None:
    key_settings = AzureSettings.from_env(
        {
            "AZURE_STORAGE_ACCOUNT_NAME": "acct",
            "AZURE_STORAGE_ACCOUNT_KEY": "a2V5",
            "AZURE_STORAGE_BLOB_ENDPOINT": "",
        }
    )
    assert key_settings.account_url == "https://acct.blob.core.windows.net"
    assert "a2V5" not in repr(key_settings)
    sas = AzureSettings.from_env(
        {
            "AZURE_STORAGE_ACCOUNT_NAME": "acct",
            "AZURE_STORAGE_SAS_TOKEN": "?sv=2024&sig=abc",
            "AZURE_STORAGE_BLOB_ENDPOINT": "http://127.0.0.1:10000/acct/",
        }
    )
    assert sas.sas_token == "sv=2024&sig=abc" and sas.account_url == "http://127.0.0.1:10000/acct"
    with pytest.raises(AccessDeniedError, match="AZURE_STORAGE_CONNECTION_STRING"):
        AzureSettings.from_env({"AZURE_STORAGE_ACCOUNT_NAME": "acct"})


def test_malformed_connection_string_does_not_echo_it(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "AccountKey=c2VjcmV0LXZhbHVl"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", f"nonsense;{secret}")
    with pytest.raises(InvalidURIError) as info:
        open_store("az://container/x")
    assert "AZURE_STORAGE_CONNECTION_STRING is malformed" in str(info.value)
    assert "c2VjcmV0LXZhbHVl" not in str(info.value)


def test_importing_storage_loads_no_sdk() -> None:
    code = (
        "import sys, musicgen_ops.storage, musicgen_ops.storage.s3, musicgen_ops.storage.azure;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('minio', 'azure', 'torch', 'musicgen_ops')"
        " and not m.startswith(('musicgen_ops.storage', 'musicgen_ops.__init__', 'musicgen_ops.contracts'))"
        " and m != 'musicgen_ops'];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_azurite_fails_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.storage import conftest

    monkeypatch.setattr(conftest, "AZURITE_BIN", tmp_path / "no-azurite-blob")
    with pytest.raises(pytest.fail.Exception, match="run `make install`"):
        conftest.azurite_binary()
