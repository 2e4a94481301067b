"""Truncated artifacts fail with one clear error naming the file, never a traceback from deep inside."""

from __future__ import annotations

import pytest

from musicgen_ops.pipeline.errors import ExportError, ModelNotAvailableError
from musicgen_ops.pipeline.export.manifest import file_entries, verify_export
from musicgen_ops.pipeline.inference.loader import load_checkpoint, open_engine


def _fake_export(root):
    """An export folder whose manifest matches its files (contents need not be a real model)."""
    import json

    (root / "onnx").mkdir(parents=True)
    (root / "onnx" / "decoder.onnx").write_bytes(b"x" * 4096)
    (root / "onnx" / "text_encoder.onnx").write_bytes(b"y" * 1024)
    manifest = {"format": "musicgen-ops-export", "files": file_entries(root)}
    (root / "export_manifest.json").write_text(json.dumps(manifest))
    return root


def test_truncated_onnx_is_refused_before_loading(tmp_path):
    root = _fake_export(tmp_path / "export")
    verify_export(root / "onnx")  # intact: no error
    (root / "onnx" / "decoder.onnx").write_bytes(b"x" * 100)
    with pytest.raises(ExportError, match=r"onnx/decoder.onnx missing or not matching the size/sha256"):
        open_engine(root / "onnx", engine="onnx", device="cpu")
    (root / "onnx" / "text_encoder.onnx").unlink()
    with pytest.raises(ExportError, match=r"decoder.onnx, onnx/text_encoder.onnx missing"):
        verify_export(root / "onnx" / "decoder.onnx")


def test_truncated_adapter_weights_name_the_checkpoint(trained_model_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_model_dir, broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(
        ModelNotAvailableError, match=r"cannot apply the LoRA adapter in .*broken.*SafetensorError"
    ):
        load_checkpoint(broken)


def test_export_of_a_truncated_checkpoint_is_one_error(trained_model_dir, tmp_path, capsys):
    import shutil

    from musicgen_ops.cli import run

    broken = tmp_path / "broken"
    shutil.copytree(trained_model_dir, broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert run(["export", "--checkpoint", str(broken), "--output-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "error: cannot apply the LoRA adapter in" in err and "Traceback" not in err
