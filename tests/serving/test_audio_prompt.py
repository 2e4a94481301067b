"""A user's audio prompt through the CLI (`--audio-prompt`), HTTP (`audio_prompt_uri` in the server's
artifact store only) and the generate-job (downloaded through storage)."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from musicgen_ops.cli import app as cli_app
from musicgen_ops.pipeline.errors import InvalidParametersError
from musicgen_ops.serving.app import create_app

runner = CliRunner()


def write_clip(path, seconds=0.1, rate=48_000, channels=2):
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, np.stack([tone] * channels, axis=1), rate)
    return path


@pytest.fixture
def shared_engine(monkeypatch, tiny_engine):
    """`--model tiny-random` reuses the warm session engine."""
    from musicgen_ops.pipeline.inference import loader

    real = loader.open_engine
    monkeypatch.setattr(
        loader,
        "open_engine",
        lambda ref, *a, **k: tiny_engine if ref == "tiny-random" else real(ref, *a, **k),
    )


def test_cli_audio_prompt(shared_engine, tmp_path):
    clip = write_clip(tmp_path / "intro.wav")
    out = tmp_path / "song.wav"
    args = ["generate", "--model", "tiny-random", "--prompt", "rock", "--duration", "0.4", "--seed", "1"]
    args += ["--output", str(out), "--window-seconds", "0.2", "--stride-seconds", "0.12"]
    result = runner.invoke(cli_app, [*args, "--audio-prompt", str(clip)])
    assert result.exit_code == 0, result.output
    audio, rate = sf.read(out)
    assert (len(audio), rate) == (12_800, 32_000)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["parameters"]["audio_prompt_uri"] == str(clip.resolve()) and sidecar["windows"] == 3
    missing = runner.invoke(cli_app, [*args, "--audio-prompt", str(tmp_path / "nope.wav")])
    assert missing.exit_code == 1 and "--audio-prompt" in missing.output and "no such file" in missing.output
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    bad = runner.invoke(cli_app, [*args, "--audio-prompt", str(tmp_path / "bad.wav")])
    assert bad.exit_code == 1 and "audio_prompt_uri: cannot decode" in bad.output
    assert "Traceback" not in bad.output


@pytest.fixture
async def client(settings, engine_factory, tmp_path):
    store = tmp_path / "store"
    (store / "prompts").mkdir(parents=True)
    settings.models_uri = f"file://{store}"
    app = create_app(settings, engine_factory=engine_factory)
    await app.state.service.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=120) as client:
        yield client, store
    await app.state.service.close()


async def test_http_audio_prompt_from_the_artifact_store(client):
    client, store = client
    clip = write_clip(store / "prompts" / "intro.flac")
    body = {"prompt": "jazz", "duration_seconds": 0.4, "random_seed": 2, "audio_prompt_uri": f"file://{clip}"}
    response = await client.post("/v1/generate", json=body)
    assert response.status_code == 200, response.text
    audio, rate = sf.read(io.BytesIO(response.content), dtype="float32")
    assert (rate, len(audio)) == (32_000, 12_800)


async def test_http_inline_audio_prompt(client, tmp_path):
    client, store = client
    clip = base64.b64encode(write_clip(tmp_path / "intro.wav").read_bytes()).decode()
    body = {"prompt": "jazz", "duration_seconds": 0.4, "random_seed": 2, "audio_prompt_base64": clip}
    response = await client.post("/v1/generate", json=body)
    assert response.status_code == 200, response.text
    assert len(sf.read(io.BytesIO(response.content))[0]) == 12_800
    both = {**body, "audio_prompt_uri": f"file://{store}/prompts/x.wav"}
    for bad, reason in ((both, "not both"), ({**body, "audio_prompt_base64": "%%%%"}, "not valid base64")):
        response = await client.post("/v1/generate", json=bad)
        assert response.status_code == 422 and reason in response.text, response.text


@pytest.mark.parametrize(
    "uri",
    ["/etc/passwd", "file:///etc/hostname", "file://{store}/../outside.wav", "s3://other-bucket/x.wav"],
    ids=["path", "file-uri", "dot-dot", "other-store"],
)
async def test_http_never_reads_files_outside_the_artifact_store(client, uri):
    client, store = client
    write_clip(store.parent / "outside.wav")
    body = {"prompt": "x", "duration_seconds": 0.4, "audio_prompt_uri": uri.format(store=store)}
    response = await client.post("/v1/generate", json=body)
    assert response.status_code == 422, response.text
    assert "audio_prompt_uri" in response.text and "artifact store" in response.text


async def test_http_bad_prompts_are_422(client):
    client, store = client
    (store / "prompts" / "bad.wav").write_bytes(b"garbage")
    write_clip(store / "prompts" / "long.wav", seconds=1.0)
    cases = {"bad.wav": "cannot decode", "long.wav": "shorter than duration_seconds", "gone.wav": "no such"}
    for name, reason in cases.items():
        uri = f"file://{store}/prompts/{name}"
        response = await client.post(
            "/v1/generate", json={"prompt": "x", "duration_seconds": 0.4, "audio_prompt_uri": uri}
        )
        assert response.status_code == 422 and reason in response.text, (name, response.text)


def test_generate_job_downloads_the_prompt(tmp_path):
    from musicgen_ops.jobs.generate_job import fetch_audio_prompt

    clip = write_clip(tmp_path / "intro.wav")
    local = fetch_audio_prompt(f"file://{clip}", tmp_path / "scratch")
    assert local.parent == tmp_path / "scratch" and local.read_bytes() == clip.read_bytes()
    with pytest.raises(InvalidParametersError, match="audio_prompt_uri: .*no such object"):
        fetch_audio_prompt(f"file://{tmp_path}/missing.wav", tmp_path / "scratch")


def test_the_studio_refuses_audio_prompts_at_its_edge():
    """The studio would read the clip on its own machine: it takes none (as with melody_uri)."""
    from pydantic import ValidationError

    from musicgen_ops.studio.schemas import GenerationCreate

    body = {"base_model": "tiny-random", "parameters": {"prompt": "p", "audio_prompt_uri": "/etc/hostname"}}
    with pytest.raises(ValidationError, match="audio_prompt_uri is not accepted by the studio"):
        GenerationCreate.model_validate(body)
