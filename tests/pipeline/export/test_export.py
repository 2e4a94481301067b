"""Export from a checkpoint: formats, manifest, merged weights, descriptor, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from musicgen_ops.pipeline.errors import ExportError


def test_all_formats_written_with_manifest(exported):
    root = exported.root
    names = {entry["path"] for entry in exported.manifest["files"]}
    for part in ("text_encoder", "decoder_init", "decoder_step", "audio_decoder"):
        assert f"onnx/{part}.onnx" in names and f"torchscript/{part}.pt" in names
    assert {"onnx/text_encoder.int8.onnx", "onnx/decoder_step.int8.onnx", "merged/model.safetensors"} <= names
    assert "onnx/tokenizer_config.json" in names and "onnx/descriptor.json" in names
    from musicgen_ops.pipeline.export.manifest import verify_manifest

    assert verify_manifest(root) == []
    on_disk = json.loads((root / "export_manifest.json").read_text())
    assert on_disk["formats"] == ["merged", "torchscript", "onnx", "onnx-int8"]
    assert on_disk["source"]["base_model"] == "tiny-random" and on_disk["source"]["merged_lora"] is True
    assert not [p for p in root.parent.iterdir() if ".partial-" in p.name]


def test_onnx_files_pass_checker_and_descriptor_holds_config(exported):
    import onnx

    from musicgen_ops.pipeline.export.descriptor import ExportDescriptor

    descriptor = ExportDescriptor.load(exported.root / "onnx")
    c = descriptor.constants
    assert (c.pad_token_id, c.bos_token_id, c.num_codebooks, c.frame_rate, c.sample_rate) == (
        2048,
        2048,
        4,
        50,
        32000,
    )
    assert descriptor.precisions() == ["fp32", "int8"] and descriptor.opset == 17
    step = descriptor.parts["decoder_step"]
    assert step.input_names[:3] == ["input_ids", "encoder_attention_mask", "past.0.self.key"]
    for spec in descriptor.parts.values():
        for file in set(spec.files.values()):
            model = onnx.load(str(exported.root / "onnx" / file))
            onnx.checker.check_model(model)
            graph_inputs = [i.name for i in model.graph.input]
            assert graph_inputs == spec.input_names
            first_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
            assert first_dim.dim_param == "batch"  # dynamic batch axis


def test_merged_weights_equal_peft_model_and_reload(exported, lora_model, merged_model):
    import torch

    from musicgen_ops.pipeline.models import load_base_model

    reloaded = load_base_model(str(exported.root / "merged")).model
    assert not any("lora" in name for name, _ in reloaded.named_modules())
    inputs = lora_model.processor(text=["piano"], return_tensors="pt")
    start = torch.full((4, 1), 2048)
    with torch.no_grad():
        want = lora_model.peft(**inputs, decoder_input_ids=start).logits
        merged = merged_model(**inputs, decoder_input_ids=start).logits
        got = reloaded(**inputs, decoder_input_ids=start).logits
        with lora_model.peft.disable_adapter():
            base = lora_model.peft(**inputs, decoder_input_ids=start).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(merged, want, atol=1e-4, rtol=1e-4)
    assert (base - want).abs().max() > 1e-2  # the adapter matters
    assert any("lora_" in n for n, _ in lora_model.peft.named_parameters())  # the caller's model is intact


@pytest.mark.parametrize("opset", [9, 21, "17"])
def test_unsupported_opset_is_rejected(checkpoint, tmp_path, opset):
    from musicgen_ops.pipeline.export.exporter import export_trained_model_from_checkpoint

    with pytest.raises(ExportError, match="opset"):
        export_trained_model_from_checkpoint(checkpoint, tmp_path / "out", ["onnx"], opset_version=opset)
    assert not (tmp_path / "out").exists()


def test_not_a_checkpoint(tmp_path):
    from musicgen_ops.pipeline.export.exporter import export_trained_model_from_checkpoint

    with pytest.raises(ExportError, match="does not exist"):
        export_trained_model_from_checkpoint(tmp_path / "missing", tmp_path / "out", ["onnx"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="is not a checkpoint: expected adapter_config.json"):
        export_trained_model_from_checkpoint(tmp_path / "empty", tmp_path / "out", ["onnx"])
    assert not (tmp_path / "out").exists()


def test_missing_processor_and_metadata(checkpoint, tmp_path):
    from musicgen_ops.pipeline.export.exporter import load_checkpoint

    no_processor = tmp_path / "no_processor"
    no_processor.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors", "training_metadata.json"):
        shutil.copy(checkpoint / name, no_processor / name)
    with pytest.raises(ExportError, match="holds no processor"):
        load_checkpoint(no_processor)
    no_metadata = tmp_path / "no_metadata"
    shutil.copytree(checkpoint, no_metadata)
    (no_metadata / "training_metadata.json").unlink()
    with pytest.raises(ExportError, match="base_model"):
        load_checkpoint(no_metadata)


def test_bad_formats_and_exporter_arguments(lora_model):
    from musicgen_ops.pipeline.export.exporter import MusicGenExporter, parse_formats

    assert parse_formats("onnx-int8, merged") == ["merged", "onnx-int8"]
    with pytest.raises(ExportError, match="unknown export format"):
        parse_formats("onnx,tflite")
    with pytest.raises(ExportError, match="no export format"):
        parse_formats("")
    with pytest.raises(ExportError, match="processor is required"):
        MusicGenExporter(lora_model.peft, None)


def test_failed_export_leaves_nothing(checkpoint, tmp_path, monkeypatch):
    from musicgen_ops.pipeline.export import exporter as exporter_module

    def boom(self, folder, *args, **kwargs):
        raise exporter_module.ExportError("simulated failure")

    monkeypatch.setattr(exporter_module.MusicGenExporter, "_write_torchscript", boom)
    with pytest.raises(ExportError, match="simulated"):
        exporter_module.export_trained_model_from_checkpoint(
            checkpoint, tmp_path / "out", ["merged", "torchscript"]
        )
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_unrelated_folder(tmp_path):
    from musicgen_ops.pipeline.export.manifest import staged_directory

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"), staged_directory(tmp_path / "out"):
        pass
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_torchscript_exporter_api_on_peft_model(lora_model, merged_model, tmp_path):
    """MusicGenExporter straight from a PEFT model (no checkpoint); traced parts equal the eager ones."""
    import torch

    from musicgen_ops.pipeline.export.exporter import MusicGenExporter

    exporter = MusicGenExporter(lora_model.peft, lora_model.processor)
    descriptor = exporter.export_to_torchscript(tmp_path / "ts")
    assert descriptor.runtime == "torchscript" and (tmp_path / "ts" / "descriptor.json").is_file()
    codes = torch.randint(0, 2048, (1, 4, 6))
    traced = torch.jit.load(str(tmp_path / "ts" / "audio_decoder.pt"))
    with torch.no_grad():
        want = merged_model.audio_encoder.decode(codes[None], [None]).audio_values[:, 0]
        np.testing.assert_allclose(traced(codes).numpy(), want.numpy(), atol=1e-5)
