"""A melody through every entry point: CLI --melody, HTTP (inline / artifact store), generate-job."""

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
from musicgen_ops.contracts.environment import GenerateJobEnvironment
from musicgen_ops.contracts.generation import GenerationParameters

RATE = 32_000


def hum(path, freq=440.0, seconds=1.0, fmt="WAV"):
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE, format=fmt)
    return path


@pytest.fixture(scope="module")
def melody_engine():
    from musicgen_ops.pipeline.inference.loader import open_engine

    return open_engine("tiny-random-melody", "auto", "cpu")


def test_cli_generate_with_melody(monkeypatch, melody_engine, tmp_path):
    from musicgen_ops.pipeline.inference import loader

    monkeypatch.setattr(loader, "open_engine", lambda ref, *a, **k: melody_engine)
    melody = hum(tmp_path / "hum.wav")
    args = ["generate", "-m", "tiny-random-melody", "-p", "folk", "-d", "0.2", "--seed", "5"]
    with_melody = tmp_path / "with.wav"
    result = CliRunner().invoke(cli_app, [*args, "--melody", str(melody), "-o", str(with_melody)])
    assert result.exit_code == 0, result.output
    sidecar = json.loads(with_melody.with_suffix(".json").read_text())
    assert sidecar["parameters"]["melody_uri"] == str(melody)
    plain = tmp_path / "plain.wav"
    assert CliRunner().invoke(cli_app, [*args, "-o", str(plain)]).exit_code == 0
    assert not np.array_equal(sf.read(with_melody)[0], sf.read(plain)[0])

    missing = CliRunner().invoke(cli_app, [*args, "--melody", str(tmp_path / "nope.wav"), "-o", str(plain)])
    assert missing.exit_code != 0 and "error: --melody" in missing.output and "no such file" in missing.output
    assert "Traceback" not in missing.output


@pytest.fixture
async def client(settings, engine_factory, melody_engine, tmp_path):
    from musicgen_ops.serving.app import create_app

    store = tmp_path / "store"
    settings.models_uri = store.as_uri()
    settings.max_body_bytes = 1024 * 1024

    def factory(reference):
        return melody_engine if reference == "tiny-random-melody" else engine_factory(reference)

    application = create_app(settings, engine_factory=factory)
    await application.state.service.start()
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=120) as http:
        yield http, store
    await application.state.service.close()


async def test_http_melody_inline_and_from_the_artifact_store(client, tmp_path):
    http, store = client
    body = {"trained_model_id": "tiny-random-melody", "prompt": "folk", "duration_seconds": 0.1, "seed": 2}
    flac = hum(tmp_path / "hum.flac", fmt="FLAC")
    inline = base64.b64encode(flac.read_bytes()).decode()
    plain = await http.post("/v1/generate", json=body)
    assert plain.status_code == 200, plain.text
    with_melody = await http.post("/v1/generate", json={**body, "melody_base64": inline})
    assert with_melody.status_code == 200, with_melody.text
    assert with_melody.content != plain.content

    (store / "melodies").mkdir(parents=True)
    stored = flac.rename(store / "melodies" / "hum.flac")
    from_store = await http.post("/v1/generate", json={**body, "melody_uri": stored.as_uri()})
    assert from_store.status_code == 200, from_store.text
    decoded = [sf.read(io.BytesIO(r.content))[0] for r in (with_melody, from_store)]
    np.testing.assert_array_equal(*decoded)

    models = (await http.get("/v1/models")).json()["models"]
    listed = {m["model_id"]: m for m in models if m["loaded"]}
    assert listed["tiny-random-melody"]["family"] == "musicgen-melody"
    assert listed["tiny-random-melody"]["melody"] is True


async def test_http_never_reads_caller_chosen_files(client, tmp_path):
    http, store = client
    secret = hum(tmp_path / "secret.wav")
    body = {"trained_model_id": "tiny-random-melody", "prompt": "folk", "duration_seconds": 0.1}
    for uri in (secret.as_uri(), str(secret), f"{store.as_uri()}/../secret.wav"):
        answer = await http.post("/v1/generate", json={**body, "melody_uri": uri})
        assert answer.status_code == 422, (uri, answer.text)
        assert "melody_uri: this server reads melodies only from its artifact store" in answer.text
    bad = await http.post("/v1/generate", json={**body, "melody_base64": "bm90IGF1ZGlv"})
    assert bad.status_code == 422 and "melody_base64: not decodable audio" in bad.text
    text_only = await http.post(
        "/v1/generate", json={"prompt": "x", "duration_seconds": 0.1, "melody_base64": "AAAA"}
    )
    assert text_only.status_code == 422 and "is a musicgen model" in text_only.text


def test_generate_job_downloads_the_melody(tmp_path):
    """A GenerationRequest's melodyUri: the Job fetches it through storage and conditions on it."""
    from musicgen_ops.jobs import generate_job
    from musicgen_ops.pipeline.models import load_base_model
    from musicgen_ops.storage import publish_model

    loaded = load_base_model("tiny-random-melody")
    folder = tmp_path / "melody-model"
    loaded.model.save_pretrained(folder)
    loaded.processor.save_pretrained(folder)
    root = (tmp_path / "artifacts").as_uri()
    publish_model(folder, root, "hummer", base_model="tiny-random-melody", formats=["merged"])
    (tmp_path / "artifacts" / "melodies").mkdir()
    melody = hum(tmp_path / "artifacts" / "melodies" / "hum.wav")

    def run(name, **extra):
        settings = GenerateJobEnvironment(
            model_id="hummer",
            model_uri=f"{root}/models/hummer",
            parameters=GenerationParameters(prompt="folk", duration_seconds=0.2, random_seed=1, **extra),
            output_uri=(tmp_path / f"{name}.wav").as_uri(),
            result_uri=(tmp_path / f"{name}.json").as_uri(),
            cache_dir=tmp_path / "cache",
            device="cpu",
        )
        generate_job.generate(settings)
        return sf.read(tmp_path / f"{name}.wav")[0]

    assert not np.array_equal(run("with", melody_uri=melody.as_uri()), run("plain"))


def test_studio_refuses_melody_paths():
    """The studio reads files on its own machine: a melody_uri there is refused at the API's edge."""
    from pydantic import ValidationError

    from musicgen_ops.studio.schemas import GenerationCreate

    with pytest.raises(ValidationError, match="melody_uri is not accepted by the studio"):
        GenerationCreate.model_validate({"parameters": {"prompt": "x", "melody_uri": "/etc/passwd"}})
    assert GenerationCreate.model_validate({"parameters": {"prompt": "x"}}).parameters.melody_uri is None
