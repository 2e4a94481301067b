"""TorchScript parts hold no device constant: they run wherever ``map_location`` puts them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from musicgen_ops.pipeline.inference.base import SamplingParams

from .conftest import PROMPTS

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("name", ["text_encoder", "decoder_init", "decoder_step", "audio_decoder"])
def test_saved_parts_hold_no_device_constant(exported, name):
    from musicgen_ops.pipeline.export.torchscript import device_constants

    module = torch.jit.load(str(exported.root / "torchscript" / f"{name}.pt"), map_location="cpu")
    assert device_constants(module) == []
    code = module.code + "".join(m.code for m in module.modules() if hasattr(m, "code"))
    assert 'torch.device("cpu")' not in code and "torch.device(" not in code


def test_tracing_alone_would_fix_the_cpu(merged_model):
    """The rewrite is what removes them: a plain trace of the decoder step holds the tracing device."""
    from musicgen_ops.pipeline.export.descriptor import constants_from_model
    from musicgen_ops.pipeline.export.onnx import example_inputs
    from musicgen_ops.pipeline.export.parts import build_parts
    from musicgen_ops.pipeline.export.torchscript import device_constants, device_from_inputs

    parts = build_parts(merged_model)
    example = example_inputs(parts, constants_from_model(merged_model))["decoder_step"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(parts["decoder_step"], example, check_trace=False)
    assert device_constants(traced)
    assert device_from_inputs(traced) >= 1 and device_constants(traced) == []


@pytest.mark.parametrize("device", DEVICES)
def test_same_codes_after_loading_onto_a_device(exported, device):
    from musicgen_ops.pipeline.inference.torchscript_engine import TorchScriptInferenceEngine

    greedy = SamplingParams(do_sample=False)
    on_cpu = TorchScriptInferenceEngine(exported.root).generate(PROMPTS, num_frames=6, sampling=greedy)
    engine = TorchScriptInferenceEngine(exported.root, use_gpu=device == "cuda")
    assert engine.device.type == device
    out = engine.generate(PROMPTS, num_frames=6, sampling=greedy)
    np.testing.assert_array_equal(out.codes, on_cpu.codes)
    np.testing.assert_allclose(out.audio, on_cpu.audio, atol=1e-3)
