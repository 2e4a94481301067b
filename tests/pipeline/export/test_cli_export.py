"""`musicgen-ops export` end to end (TorchScript only, to stay fast) and its error exit."""

from __future__ import annotations

from typer.testing import CliRunner

from musicgen_ops.cli import app


def test_cli_export_writes_requested_formats(checkpoint, tmp_path):
    out = tmp_path / "exported"
    result = CliRunner().invoke(
        app, ["export", "--checkpoint", str(checkpoint), "--output-dir", str(out), "--formats", "torchscript"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "torchscript" / "decoder_step.pt").is_file()
    assert (out / "export_manifest.json").is_file() and not (out / "onnx").exists()
    assert "tracing TorchScript parts" in result.output


def test_cli_export_bad_checkpoint_exits_with_message(tmp_path):
    result = CliRunner().invoke(
        app,
        ["export", "--checkpoint", str(tmp_path), "--output-dir", str(tmp_path / "o"), "--formats", "onnx"],
    )
    assert result.exit_code == 1
    assert "is not a checkpoint" in " ".join(result.output.split())
