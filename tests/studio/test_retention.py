"""The lifecycle of the local studio's files: deleting a generation, failed creations, the sweep."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from musicgen_ops.storage import publish_model
from musicgen_ops.studio.app import create_app
from musicgen_ops.studio.generation_inputs import inputs_store
from musicgen_ops.studio.local.backend import LocalBackend
from musicgen_ops.studio.retention import utc_now
from musicgen_ops.studio.uploads import StagedFile
from tests.studio.conftest import TOKEN, studio_settings, wait_for
from tests.studio.test_generation_inputs import clip_bytes, finished, post

PARAMS = {"prompt": "rock", "duration_seconds": 0.3}


def input_folder(root: Path, uri: str) -> Path:
    """The local folder of an uploaded input's URI."""
    return Path(uri.removeprefix("file://")).parent


def age(path: Path, days: float) -> None:
    """Make a file or folder look ``days`` old."""
    stamp = (utc_now() - timedelta(days=days)).timestamp()
    for item in [path, *path.rglob("*")]:
        os.utime(item, (stamp, stamp))


@pytest.fixture
def tuned(studio, trained_model_dir) -> str:
    """A published fine-tuned model in the studio's artifact store (A/B needs one)."""
    publish_model(
        trained_model_dir,
        studio.app.state.settings.artifacts_uri,
        "tuned",
        base_model="tiny-random",
        formats=["adapter"],
    )
    return "tuned"


def ab_pair(studio, model_id: str) -> tuple[dict, dict]:
    """An A/B generation with an uploaded clip, both finished."""
    request = {"model_id": model_id, "parameters": PARAMS, "compare_with_base": True}
    answer = post(studio, request, audio_prompt=clip_bytes(seconds=0.1))
    assert answer.status_code == 202, answer.text
    main = wait_for(lambda: finished(studio, answer.json()["id"]), 120, "the fine-tuned generation")
    twin = wait_for(lambda: finished(studio, answer.json()["compare_id"]), 120, "the base generation")
    assert main["state"] == twin["state"] == "completed", (main["error"], twin["error"])
    return main, twin


def test_deleting_a_generation_deletes_its_twin_audio_and_inputs(studio, tuned):
    root = studio.app.state.settings.root
    main, twin = ab_pair(studio, tuned)
    inputs = input_folder(root, main["parameters"]["audio_prompt_uri"])
    outputs = [root / "generations" / main["id"], root / "generations" / twin["id"]]
    assert inputs.is_dir() and all(folder.is_dir() for folder in outputs)

    deleted = studio.delete(f"/api/v1/generations/{main['id']}")
    assert deleted.status_code == 200, deleted.text
    for generation_id in (main["id"], twin["id"]):
        assert studio.get(f"/api/v1/generations/{generation_id}").status_code == 404
    assert not inputs.exists() and not any(folder.exists() for folder in outputs)
    assert studio.get("/api/v1/generations").json()["count"] == 0
    again = studio.delete(f"/api/v1/generations/{main['id']}")
    assert again.status_code == 404 and again.json()["detail"].startswith("error: no generation")

    # A base twin deleted alone: its partner keeps the shared clip and no longer names a twin.
    main, twin = ab_pair(studio, tuned)
    inputs = input_folder(root, main["parameters"]["audio_prompt_uri"])
    assert studio.delete(f"/api/v1/generations/{twin['id']}").status_code == 200
    assert inputs.is_dir() and not (root / "generations" / twin["id"]).exists()
    left = studio.get(f"/api/v1/generations/{main['id']}").json()
    assert left["compare_id"] is None and studio.get(left["audio_url"]).status_code == 200
    assert studio.delete(f"/api/v1/generations/{main['id']}").status_code == 200
    assert not inputs.exists()


def test_a_generation_that_cannot_be_created_leaves_no_inputs(tmp_path, monkeypatch):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    settings = studio_settings(tmp_path / "studio", mbd_weights=str(empty))
    with TestClient(create_app(settings)) as studio:
        studio.headers["Authorization"] = f"Bearer {TOKEN}"
        request = {"base_model": "tiny-random", "parameters": {**PARAMS, "decoder": "mbd"}}
        refused = post(studio, request, audio_prompt=clip_bytes())
        assert refused.status_code == 503, refused.text  # refused before the clip was stored
        assert not (settings.root / "generation-inputs").exists()

        # The state write fails after the clip was stored: the clip goes at once, and no row stays.
        backend = studio.app.state.backend
        clip = tmp_path / "audio_prompt.wav"
        clip.write_bytes(clip_bytes())
        calls = []

        def broken_insert(*args: object) -> str:
            calls.append(args)
            if len(calls) == 2:
                raise OSError("disk full")
            return original(*args)

        original = backend._insert_generation
        monkeypatch.setattr(backend, "_insert_generation", broken_insert)
        from musicgen_ops.studio.schemas import GenerationCreate

        backend.create_generation(GenerationCreate(base_model="tiny-random", parameters=PARAMS))
        with pytest.raises(OSError, match="disk full"):
            backend.create_generation(
                GenerationCreate(base_model="tiny-random", parameters=PARAMS),
                [StagedFile("audio_prompt", clip, clip.stat().st_size)],
            )
        folders = settings.root / "generation-inputs"
        assert not folders.exists() or list(folders.iterdir()) == []
        assert len(backend.state.select("generations")) == 1  # only the first, successful one


def test_the_sweep_deletes_only_orphans_older_than_the_retention(tmp_path):
    settings = studio_settings(tmp_path / "studio", retention_days=7)
    backend = LocalBackend(settings)  # not started: no sweep of its own runs beside these
    try:
        store = inputs_store(settings.artifacts_uri)
        for folder in ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"):
            store.put_bytes(f"{folder}/audio_prompt.wav", b"RIFF")
        store.put_bytes("default/dddddddddddd/melody.wav", b"RIFF")  # a Kubernetes studio's: not ours
        named = {**PARAMS, "audio_prompt_uri": store.uri("aaaaaaaaaaaa/audio_prompt.wav")}
        backend._insert_generation("tiny-random", "tiny-random", True, named_params(named), None)
        outputs = settings.root / "generations"
        (outputs / "gen-0000dead").mkdir(parents=True)  # no row names it
        folders = settings.root / "generation-inputs"
        for path in (folders / "aaaaaaaaaaaa", folders / "bbbbbbbbbbbb", folders / "default"):
            age(path, 10)
        age(outputs / "gen-0000dead", 10)

        backend.sweep()
        assert sorted(p.name for p in folders.iterdir()) == ["aaaaaaaaaaaa", "cccccccccccc", "default"]
        assert not (outputs / "gen-0000dead").exists()
        backend.sweep(now=utc_now() + timedelta(days=6))  # the fresh orphan is not old enough yet
        assert (folders / "cccccccccccc").is_dir()
        backend.sweep(now=utc_now() + timedelta(days=8))
        assert sorted(p.name for p in folders.iterdir()) == ["aaaaaaaaaaaa", "default"]
    finally:
        backend.state.close()


def named_params(values: dict):
    from musicgen_ops.contracts.generation import GenerationParameters

    return GenerationParameters.model_validate(values)
