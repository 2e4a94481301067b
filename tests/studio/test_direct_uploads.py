"""Presigned uploads through the studio API: a real HTTP PUT to S3 (moto) or Azure (Azurite), complete."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from musicgen_ops.storage import open_store
from musicgen_ops.studio import direct_uploads
from musicgen_ops.studio.app import create_app
from tests.storage.conftest import (  # noqa: F401  (pytest fixtures, imported to be used here)
    _clean_storage_env,
    azure_env,
    azurite_endpoint,
    moto_endpoint,
    s3_env,
    unique_name,
)
from tests.studio.conftest import TOKEN, studio_settings

LIMIT = 200_000


@pytest.fixture(
    params=[pytest.param("s3", marks=pytest.mark.s3), pytest.param("azure", marks=pytest.mark.azure)]
)
def artifacts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty artifact root in S3 (moto) or Azure Blob (Azurite)."""
    monkeypatch.setenv("MUSICGEN_STORAGE_CREATE_BUCKET", "1")
    request.getfixturevalue(f"{request.param}_env")
    scheme = "s3" if request.param == "s3" else "az"
    return f"{scheme}://{unique_name('studio')}/team"


def client_for(tmp_path, artifacts: str) -> TestClient:
    settings = studio_settings(
        tmp_path / "studio", artifacts=artifacts, max_upload_bytes=LIMIT, direct_upload_min_bytes=1000
    )
    client = TestClient(create_app(settings))
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return client


@pytest.fixture
def studio_on(tmp_path, artifacts) -> Iterator[TestClient]:
    with client_for(tmp_path, artifacts) as client:
        assert client.post("/api/v1/datasets", json={"name": "big"}).status_code == 201
        yield client


def put(upload: dict, data: bytes) -> int:
    """The browser's part: PUT the bytes to the presigned URL, with no studio token."""
    return httpx.put(upload["url"], content=data, headers=upload["headers"]).status_code


def ask(client: TestClient, filename: str, size: int, dataset: str = "big"):
    return client.post(f"/api/v1/datasets/{dataset}/uploads", json={"filename": filename, "size": size})


def leftovers(artifacts: str) -> list[str]:
    return [info.key for info in open_store(artifacts).list("uploads/")]


def test_a_put_straight_to_storage_is_decoded_and_stored(studio_on, artifacts, demo_tracks, tmp_path):
    track = demo_tracks[0]
    page = studio_on.get(f"/?token={TOKEN}")
    assert '<meta name="studio-direct-upload-bytes" content="1000">' in page.text
    origin = "http://127.0.0.1:"
    assert f"connect-src 'self' {origin}" in page.headers["content-security-policy"]

    answer = ask(studio_on, track.name, track.stat().st_size)
    assert answer.status_code == 201, answer.text
    upload = answer.json()
    assert upload["method"] == "PUT" and upload["max_bytes"] == LIMIT and upload["url"].startswith(origin)
    assert put(upload, track.read_bytes()) in (200, 201)
    done = studio_on.post(
        f"/api/v1/datasets/big/uploads/{upload['upload_id']}/complete", json={"prompt": "warm pads"}
    )
    assert done.status_code == 201, done.text
    assert done.json()["prompt"] == "warm pads" and done.json()["duration_seconds"] == pytest.approx(2.0)
    tracks = studio_on.get("/api/v1/datasets/big").json()["tracks"]
    assert [(t["file"], t["size"]) for t in tracks] == [(track.name, track.stat().st_size)]
    assert leftovers(artifacts) == []  # the staged object and its ticket are gone
    again = studio_on.post(f"/api/v1/datasets/big/uploads/{upload['upload_id']}/complete", json={})
    assert again.status_code == 404  # a ticket is used once

    # Not audio: a clear error, nothing kept anywhere.
    bad = ask(studio_on, "noise.wav", 500).json()
    assert put(bad, b"this is not audio\n" * 20) in (200, 201)
    refused = studio_on.post(f"/api/v1/datasets/big/uploads/{bad['upload_id']}/complete", json={})
    assert refused.status_code == 400
    assert "error: file 'noise.wav' is not usable audio" in refused.json()["detail"]
    assert [t["file"] for t in studio_on.get("/api/v1/datasets/big").json()["tracks"]] == [track.name]
    assert leftovers(artifacts) == []


@pytest.mark.parametrize("artifacts", [pytest.param("s3", marks=pytest.mark.s3)], indirect=True)
def test_names_sizes_datasets_and_deadlines_are_checked(studio_on, artifacts, demo_tracks, monkeypatch):
    assert ask(studio_on, "../escape.wav", 10).status_code == 400
    assert ask(studio_on, "tool.exe", 10).status_code == 400
    assert ask(studio_on, "huge.wav", LIMIT + 1).status_code == 413
    assert ask(studio_on, "a.wav", 10, dataset="nope").status_code == 404
    assert studio_on.post("/api/v1/datasets/big/uploads/0123/complete", json={}).status_code == 404

    # Declared small, uploaded large: refused on complete and deleted.
    liar = ask(studio_on, "liar.wav", 100).json()
    assert put(liar, b"\0" * (LIMIT + 1)) in (200, 201)
    over = studio_on.post(f"/api/v1/datasets/big/uploads/{liar['upload_id']}/complete", json={})
    assert over.status_code == 413 and "it was deleted" in over.json()["detail"]
    assert leftovers(artifacts) == []

    # An upload issued for one dataset cannot be completed into another.
    assert studio_on.post("/api/v1/datasets", json={"name": "other"}).status_code == 201
    track = demo_tracks[1]
    upload = ask(studio_on, track.name, track.stat().st_size).json()
    foreign = studio_on.post(f"/api/v1/datasets/other/uploads/{upload['upload_id']}/complete", json={})
    assert foreign.status_code == 400 and "issued for dataset 'big'" in foreign.json()["detail"]
    nothing_yet = studio_on.post(f"/api/v1/datasets/big/uploads/{upload['upload_id']}/complete", json={})
    assert nothing_yet.status_code == 400 and "PUT the file" in nothing_yet.json()["detail"]

    # Past its deadline (URL lifetime, then as long again to complete), the upload is refused and deleted.
    assert put(upload, track.read_bytes()) in (200, 201)
    later = direct_uploads.utc_now() + timedelta(seconds=2 * 900 + 1)
    monkeypatch.setattr(direct_uploads, "utc_now", lambda: later)
    expired = studio_on.post(f"/api/v1/datasets/big/uploads/{upload['upload_id']}/complete", json={})
    assert expired.status_code == 400 and "expired" in expired.json()["detail"]
    assert leftovers(artifacts) == [] and studio_on.get("/api/v1/datasets/big").json()["tracks"] == []


def test_a_local_store_offers_none_and_the_page_says_so(tmp_path):
    with client_for(tmp_path, f"file://{tmp_path / 'artifacts'}") as client:
        page = client.get(f"/?token={TOKEN}")
        assert '<meta name="studio-direct-upload-bytes" content="0">' in page.text
        assert "connect-src 'self';" in page.headers["content-security-policy"]
        client.post("/api/v1/datasets", json={"name": "local"})
        answer = ask(client, "a.wav", 10, dataset="local")
        assert answer.status_code == 501 and "offers no presigned uploads" in answer.json()["detail"]


def test_the_sweep_deletes_abandoned_uploads_once_their_ticket_expired(studio_on, artifacts, demo_tracks):
    track = demo_tracks[0]
    put_only = ask(studio_on, track.name, track.stat().st_size).json()
    assert put(put_only, track.read_bytes()) in (200, 201)  # PUT, never completed
    asked_only = ask(studio_on, "later.wav", 100).json()  # never PUT
    stray = f"{'f' * 32}/stray.wav"  # an object without a ticket
    open_store(artifacts).child("uploads").put_bytes(stray, b"RIFF")
    uploads = direct_uploads.DirectUploads(artifacts, LIMIT, 900)
    now = direct_uploads.utc_now()
    assert uploads.sweep(now + timedelta(seconds=1000)) == []  # the URLs are dead, completing is not yet
    assert len(leftovers(artifacts)) == 4
    swept = uploads.sweep(now + timedelta(seconds=2 * 900 + 60))
    assert sorted(swept) == sorted([put_only["upload_id"], asked_only["upload_id"], "f" * 32])
    assert leftovers(artifacts) == []
    late = studio_on.post(f"/api/v1/datasets/big/uploads/{put_only['upload_id']}/complete", json={})
    assert late.status_code == 404
