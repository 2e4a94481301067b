"""`musicgen-ops demo` (what `make demo` runs) goes end to end and reports where its outputs are."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
from typer.testing import CliRunner

from musicgen_ops.cli import app

pytestmark = pytest.mark.slow


def test_demo_runs_every_step(tmp_path):
    result = CliRunner().invoke(
        app, ["demo", "--output-dir", str(tmp_path), "--epochs", "1", "--seconds", "1"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "preprocessed" / "manifest.json").is_file()
    assert (tmp_path / "checkpoints" / "final_model" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "checkpoints" / "loss_curve.png").is_file()
    assert (tmp_path / "exported" / "export_manifest.json").is_file()
    audio, rate = sf.read(tmp_path / "generated" / "track-0000.wav")
    assert rate == 32_000 and len(audio) == 32_000
    sidecar = json.loads((tmp_path / "generated" / "track-0000.json").read_text())
    assert sidecar["seed"] == 0
    assert "generated audio" in result.output and "track-0000.wav" in result.output.replace("\n", "")
