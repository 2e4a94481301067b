"""`musicgen-ops generate` (batch/Job mode) and `serve --help`, through typer's runner."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
from typer.testing import CliRunner

from musicgen_ops.cli import app

runner = CliRunner()


@pytest.fixture
def shared_engine(monkeypatch, tiny_engine):
    """Make `--model tiny-random` reuse the warm session engine instead of building a new model."""
    from musicgen_ops.pipeline.inference import loader

    real = loader.open_engine
    monkeypatch.setattr(
        loader,
        "open_engine",
        lambda ref, *a, **k: tiny_engine if ref == "tiny-random" else real(ref, *a, **k),
    )


def test_generate_one_track(shared_engine, tmp_path):
    out = tmp_path / "song.flac"
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            "tiny-random",
            "--prompt",
            "rock",
            "--duration",
            "0.3",
            "--seed",
            "4",
            "--output",
            str(out),
            "--window-seconds",
            "0.2",
            "--stride-seconds",
            "0.1",
            "--style",
            "punk",
        ],
    )
    assert result.exit_code == 0, result.output
    audio, rate = sf.read(out)
    assert (len(audio), rate) == (9600, 32_000)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["seed"] == 4 and sidecar["windows"] == 2 and sidecar["output_format"] == "flac"
    assert sidecar["conditioning_text"] == "punk, rock"


def test_generate_from_requests_file(shared_engine, tiny_engine, tmp_path):
    requests = tmp_path / "requests.jsonl"
    lines = [{"prompt": f"song {i}", "duration_seconds": 0.05, "seed": i} for i in range(3)]
    lines.append({"prompt": "longer", "duration_seconds": 0.1})
    requests.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    before = len(tiny_engine.batch_sizes)
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            "tiny-random",
            "--requests-file",
            str(requests),
            "--output-dir",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(tiny_engine.batch_sizes[before:]) == [1, 3]  # same length and settings: one batch
    sidecars = [json.loads((tmp_path / "o" / f"track-{i:04d}.json").read_text()) for i in range(4)]
    assert [s["seed"] for s in sidecars[:3]] == [0, 1, 2]
    assert [s["batch_size"] for s in sidecars] == [3, 3, 3, 1]


def test_generate_reports_bad_input_clearly(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "temperature": 7}\n')
    result = runner.invoke(app, ["generate", "--model", "tiny-random", "--requests-file", str(bad)])
    assert result.exit_code == 1 and "temperature" in result.output
    bad.write_text("not json\n")
    result = runner.invoke(app, ["generate", "--requests-file", str(bad)])
    assert result.exit_code == 1 and "bad.jsonl:1" in result.output
    result = runner.invoke(app, ["generate"])
    assert result.exit_code == 1 and "--prompt or --requests-file" in result.output


def test_serve_help():
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--model", "--warmup"):
        assert option in result.output


def test_generate_with_a_decoder_per_request(tmp_path):
    requests = tmp_path / "requests.jsonl"
    lines = [
        {"prompt": "a", "duration_seconds": 0.05, "seed": 3, "decoder": "mbd", "output_format": "ogg"},
        {"prompt": "a", "duration_seconds": 0.05, "seed": 3},
    ]
    requests.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    args = ["generate", "--model", "tiny-random", "--device", "cpu", "--requests-file", str(requests)]
    args += ["--output-dir", str(tmp_path / "o"), "--mbd-weights", "tiny-random", "--mbd-steps", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    diffused, plain = (json.loads((tmp_path / "o" / f"track-{i:04d}.json").read_text()) for i in range(2))
    assert (diffused["decoder"], plain["decoder"]) == ("mbd", "encodec")
    assert diffused["num_samples"] == plain["num_samples"] == 1600
    assert sf.info(str(tmp_path / "o" / "track-0000.ogg")).samplerate == 32_000


def test_generate_refuses_missing_mbd_weights_in_one_line(tmp_path):
    args = ["generate", "--model", "tiny-random", "--device", "cpu", "--prompt", "a", "--duration", "0.05"]
    args += ["--decoder", "mbd", "--mbd-weights", str(tmp_path), "--output", str(tmp_path / "a.wav")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "--decoder mbd" in result.output and "--mbd-weights" in result.output
    assert "Traceback" not in result.output
