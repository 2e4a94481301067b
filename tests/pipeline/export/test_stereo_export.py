"""A stereo checkpoint (tiny-stereo-random + LoRA) exports to every format and generates two channels
on the ONNX and TorchScript engines with the same codes as the torch engine on the merged model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from musicgen_ops.pipeline.inference.base import SamplingParams

from .conftest import LORA_TARGETS, PROMPTS

GREEDY = SamplingParams(do_sample=False)
FRAMES = 7


@pytest.fixture(scope="module")
def stereo_export(tmp_path_factory) -> SimpleNamespace:
    import torch
    from peft import LoraConfig, get_peft_model

    from musicgen_ops.pipeline.export.exporter import export_trained_model_from_checkpoint
    from musicgen_ops.pipeline.export.merge import merge_lora
    from musicgen_ops.pipeline.presets import build_random_musicgen

    loaded = build_random_musicgen("tiny-stereo-random")
    peft_model = get_peft_model(loaded.model, LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS))
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    checkpoint = tmp_path_factory.mktemp("stereo-train") / "final_model"
    peft_model.save_pretrained(checkpoint)
    loaded.processor.save_pretrained(checkpoint)
    (checkpoint / "training_metadata.json").write_text(json.dumps({"base_model": "tiny-stereo-random"}))
    root = tmp_path_factory.mktemp("stereo-export") / "exported"
    export_trained_model_from_checkpoint(checkpoint, root, ["merged", "torchscript", "onnx", "onnx-int8"])
    merged = SimpleNamespace(model=merge_lora(peft_model.eval()), processor=loaded.processor)
    return SimpleNamespace(root=root, merged=merged)


@pytest.fixture(scope="module")
def reference(stereo_export):
    """Greedy codes and audio of the torch engine on the merged stereo model."""
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine
    from musicgen_ops.pipeline.models import LoadedModel

    merged = stereo_export.merged
    engine = TorchEngine(LoadedModel(merged.model, merged.processor, "merged"))
    return engine.generate(PROMPTS, num_frames=FRAMES, sampling=GREEDY)


def test_descriptors_record_two_channels_and_eight_codebooks(stereo_export):
    for runtime in ("onnx", "torchscript"):
        descriptor = json.loads((Path(stereo_export.root) / runtime / "descriptor.json").read_text())
        assert descriptor["constants"]["audio_channels"] == 2
        assert descriptor["constants"]["num_codebooks"] == 8
        (audio,) = descriptor["parts"]["audio_decoder"]["outputs"]
        assert audio["shape"] == ["batch", 2, "samples"]
    assert (Path(stereo_export.root) / "onnx" / "audio_decoder.int8.onnx").is_file()


@pytest.mark.parametrize("runtime", ["onnx", "torchscript"])
def test_exported_engines_generate_two_channels_with_the_same_codes(runtime, stereo_export, reference):
    from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine
    from musicgen_ops.pipeline.inference.torchscript_engine import TorchScriptInferenceEngine

    engine_class = ONNXInferenceEngine if runtime == "onnx" else TorchScriptInferenceEngine
    engine = engine_class(stereo_export.root)
    out = engine.generate(PROMPTS, num_frames=FRAMES, sampling=GREEDY)
    assert out.audio.shape == (2, 2, FRAMES * 640)
    np.testing.assert_array_equal(out.codes, reference.codes)
    np.testing.assert_allclose(out.audio, reference.audio, atol=1e-4)


def test_int8_engine_generates_two_channels(stereo_export):
    from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine

    engine = ONNXInferenceEngine(stereo_export.root, precision="int8")
    out = engine.generate(PROMPTS[:1], num_frames=FRAMES, sampling=GREEDY)
    assert out.audio.shape == (1, 2, FRAMES * 640) and np.isfinite(out.audio).all()
