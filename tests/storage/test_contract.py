"""One behavioural suite, run against the local backend, S3 (moto server) and Azure Blob (Azurite)."""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from musicgen_ops.storage import (
    AccessDeniedError,
    IntegrityError,
    NotFoundError,
    StorageError,
    download_model,
    list_models,
    model_uri,
    open_store,
    publish_model,
    read_manifest,
)
from tests.storage.conftest import Backend


def test_bytes_and_json_round_trip(store_root: str) -> None:
    store = open_store(store_root)
    store.put_bytes("jobs/run-1/log.txt", b"hello \x00 world")
    assert store.get_bytes("jobs/run-1/log.txt") == b"hello \x00 world"
    store.put_json("jobs/run-1/progress.json", {"epoch": 2, "step": 40, "loss": 1.25})
    assert store.get_json("jobs/run-1/progress.json") == {"epoch": 2, "step": 40, "loss": 1.25}
    assert store.exists("jobs/run-1/progress.json")
    assert not store.exists("jobs/run-1/other.json")
    assert store.uri("jobs/run-1/log.txt") == f"{store_root}/jobs/run-1/log.txt"


def test_large_file_streams_with_progress(
    store_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 11 MiB with 5 MiB parts: a real multipart upload on S3 and a block upload on Azure (> 8 MiB).
    monkeypatch.setenv("MUSICGEN_STORAGE_PART_SIZE_MB", "5")
    source = tmp_path / "big.bin"
    data = os.urandom(11 * 1024 * 1024 + 123)
    source.write_bytes(data)
    uploaded: list[int] = []
    downloaded: list[int] = []
    store = open_store(store_root)
    assert store.put_file(source, "datasets/big.bin", progress=uploaded.append) == len(data)
    assert sum(uploaded) == len(data)
    assert store.size("datasets/big.bin") == len(data)
    target = store.get_file("datasets/big.bin", tmp_path / "out" / "big.bin", progress=downloaded.append)
    assert sum(downloaded) == len(data)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert not [p for p in target.parent.iterdir() if p.name != "big.bin"], "temp files left behind"


def test_folder_round_trip(store_root: str, model_dir: Path, tmp_path: Path) -> None:
    store = open_store(store_root)
    keys = store.put_folder(model_dir, "checkpoints/ckpt-1")
    assert sorted(keys) == [
        "checkpoints/ckpt-1/adapter/adapter_config.json",
        "checkpoints/ckpt-1/adapter/adapter_model.safetensors",
        "checkpoints/ckpt-1/onnx/decoder.onnx",
    ]
    paths = store.get_folder("checkpoints/ckpt-1", tmp_path / "copy")
    assert len(paths) == 3
    for original in model_dir.rglob("*"):
        if original.is_file():
            copy = tmp_path / "copy" / original.relative_to(model_dir)
            assert copy.read_bytes() == original.read_bytes()
    assert store.folder_size("checkpoints/") == (3, sum(p.stat().st_size for p in paths))
    with pytest.raises(NotFoundError):
        store.get_folder("checkpoints/none", tmp_path / "empty")


def test_listing_with_prefixes(store_root: str) -> None:
    store = open_store(store_root)
    for key in ["a/1.wav", "a/2.wav", "a/sub/3.wav", "ab/4.wav", "b.txt"]:
        store.put_bytes(key, key.encode())
    assert [i.key for i in store.list()] == ["a/1.wav", "a/2.wav", "a/sub/3.wav", "ab/4.wav", "b.txt"]
    # A string prefix matches like S3's; a trailing '/' restricts to the folder.
    assert [i.key for i in store.list("a")] == ["a/1.wav", "a/2.wav", "a/sub/3.wav", "ab/4.wav"]
    assert [i.key for i in store.list("a/")] == ["a/1.wav", "a/2.wav", "a/sub/3.wav"]
    shallow = list(store.list("a/", recursive=False))
    assert [(i.key, i.is_dir) for i in shallow] == [("a/1.wav", False), ("a/2.wav", False), ("a/sub/", True)]
    assert {i.key: i.size for i in store.list("a/") if not i.is_dir}["a/1.wav"] == len(b"a/1.wav")
    assert list(store.list("zzz/")) == []
    # A child store sees keys relative to its own root.
    assert [i.key for i in store.child("a").list()] == ["1.wav", "2.wav", "sub/3.wav"]
    assert store.delete_prefix("a") == 3
    assert [i.key for i in store.list()] == ["ab/4.wav", "b.txt"]


def test_overwrite_replaces_object(store_root: str, model_dir: Path) -> None:
    store = open_store(store_root)
    store.put_bytes("x/config.json", b"old-content-long")
    store.put_bytes("x/config.json", b"new")
    assert store.get_bytes("x/config.json") == b"new"
    assert [(i.key, i.size) for i in store.list("x/")] == [("x/config.json", 3)]

    publish_model(model_dir, store_root, "m1", base_model="tiny-random", formats=["adapter"])
    with pytest.raises(StorageError, match="already exists.*overwrite=True"):
        publish_model(model_dir, store_root, "m1", base_model="tiny-random", formats=["adapter"])
    (model_dir / "onnx" / "decoder.onnx").unlink()
    manifest = publish_model(
        model_dir, store_root, "m1", base_model="tiny-random", formats=["adapter"], overwrite=True
    )
    assert [f.path for f in manifest.files] == [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    ]
    # The stale file of the previous version is gone.
    assert not store.exists("models/m1/onnx/decoder.onnx")


def test_missing_object_is_a_clear_not_found(store_root: str, tmp_path: Path) -> None:
    store = open_store(store_root)
    store.put_bytes("present.txt", b"x")
    for call in (
        lambda: store.get_bytes("nope/missing.bin"),
        lambda: store.get_file("nope/missing.bin", tmp_path / "missing.bin"),
        lambda: store.size("nope/missing.bin"),
        lambda: store.url("nope/missing.bin"),
    ):
        with pytest.raises(NotFoundError) as info:
            call()
        assert f"{store_root}/nope/missing.bin" in str(info.value)
    assert not (tmp_path / "missing.bin").exists()
    store.delete("nope/missing.bin")  # deleting a missing object is fine


def test_missing_bucket_names_the_flag(backend: Backend) -> None:
    if not backend.remote:
        pytest.skip("a local folder is created on first write")
    backend.monkeypatch.delenv("MUSICGEN_STORAGE_CREATE_BUCKET")
    store = open_store(backend.root)
    with pytest.raises(NotFoundError) as info:
        store.put_bytes("a.txt", b"x")
    bucket = backend.root.split("/")[2]
    assert repr(bucket) in str(info.value)
    assert "create_bucket=True" in str(info.value) and "MUSICGEN_STORAGE_CREATE_BUCKET=1" in str(info.value)
    with pytest.raises(NotFoundError, match="does not exist"):
        store.get_bytes("a.txt")
    created = open_store(backend.root, create_bucket=True)
    created.put_bytes("a.txt", b"x")
    assert store.get_bytes("a.txt") == b"x"


def test_shareable_url_fetches_without_credentials(backend: Backend, tmp_path: Path) -> None:
    store = open_store(backend.root)
    store.put_bytes("audio/clip.wav", b"RIFF-not-really-a-wav")
    url = store.url("audio/clip.wav", expires=timedelta(minutes=5))
    if backend.remote:
        assert url.startswith("http://127.0.0.1:")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING"):
            backend.monkeypatch.delenv(name, raising=False)
    else:
        assert url.startswith("file://")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - test-local server
        assert response.read() == b"RIFF-not-really-a-wav"


def test_publish_read_download_and_cache_hit(store_root: str, model_dir: Path, tmp_path: Path) -> None:
    manifest = publish_model(
        model_dir,
        store_root,
        "lofi-v1",
        base_model="facebook/musicgen-small",
        formats=["adapter", "onnx"],
        metadata={"epochs": 3, "dataset": "s3://data/lofi"},
    )
    assert manifest.base_model == "facebook/musicgen-small"
    assert {f.path: f.size for f in manifest.files}["onnx/decoder.onnx"] == 70_000
    assert read_manifest(store_root, "lofi-v1") == manifest
    assert read_manifest(store_root, "other") is None
    assert list_models(store_root) == ["lofi-v1"]
    assert model_uri(store_root, "lofi-v1") == f"{store_root}/models/lofi-v1"

    cache = tmp_path / "cache"
    path = download_model(store_root, "lofi-v1", cache)
    assert (path / "adapter" / "adapter_config.json").read_text() == '{"r": 4}'
    assert (path / "onnx" / "decoder.onnx").read_bytes() == (model_dir / "onnx" / "decoder.onnx").read_bytes()

    # Cache hit: remove every remote file except the manifest; a second download still works,
    # so it transferred no files.
    store = open_store(store_root)
    for entry in manifest.files:
        store.delete(f"models/lofi-v1/{entry.path}")
    assert download_model(store_root, "lofi-v1", cache) == path


def test_tampered_file_fails_sha256(store_root: str, model_dir: Path, tmp_path: Path) -> None:
    publish_model(model_dir, store_root, "m2", base_model="tiny-random", formats=["adapter"])
    store = open_store(store_root)
    original = (model_dir / "adapter" / "adapter_config.json").read_bytes()
    store.put_bytes("models/m2/adapter/adapter_config.json", original.replace(b"4", b"8"))  # same size
    with pytest.raises(IntegrityError, match=r"sha256 mismatch for adapter/adapter_config.json"):
        download_model(store_root, "m2", tmp_path / "cache")
    # Nothing usable was left in the cache.
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_interrupted_upload_leaves_no_manifest(
    store_root: str, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(store_root)
    real_put_file = store.put_file
    calls = {"n": 0}

    def flaky_put_file(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionResetError("network went away mid-upload")
        return real_put_file(*args, **kwargs)

    monkeypatch.setattr(store, "put_file", flaky_put_file)
    with pytest.raises(ConnectionResetError):
        publish_model(model_dir, store, "half", base_model="tiny-random", formats=["adapter"])
    assert [i.key for i in store.list("models/half/")] == ["models/half/adapter/adapter_config.json"]
    assert read_manifest(store_root, "half") is None
    assert list_models(store_root) == []
    with pytest.raises(NotFoundError, match="upload did not finish"):
        download_model(store_root, "half", tmp_path / "cache")


def test_wrong_credentials_are_a_clear_error_without_secrets(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    if backend.break_credentials is None:
        pytest.skip("a local folder has no credentials")
    open_store(backend.root).put_bytes("a.txt", b"x")
    caplog.set_level(logging.DEBUG)
    with backend.break_credentials(), pytest.raises(AccessDeniedError) as info:
        open_store(backend.root).get_bytes("a.txt")
    message = str(info.value)
    assert "refused the credentials" in message
    assert ("AWS_ACCESS_KEY_ID" if backend.name == "s3" else "AZURE_STORAGE_CONNECTION_STRING") in message
    for secret in backend.secrets:
        assert secret not in message
        assert secret not in caplog.text
