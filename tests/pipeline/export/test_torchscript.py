"""TorchScript parts load in a fresh interpreter without musicgen_ops, and drive the same generation."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from musicgen_ops.pipeline.inference.base import SamplingParams

from .conftest import PROMPTS, hf_generate

FRESH_PROCESS = textwrap.dedent(
    """
    import sys, numpy as np, torch
    folder, inputs, outputs = sys.argv[1:4]
    data = np.load(inputs)
    t = {k: torch.from_numpy(data[k]) for k in data.files}
    load = lambda name: torch.jit.load(f"{folder}/{name}.pt")
    with torch.no_grad():
        hidden = load("text_encoder")(t["ids"], t["mask"])
        init = load("decoder_init")(t["start"], hidden, t["mask"])
        step = load("decoder_step")(t["next"], t["mask"], *init[1:])
        audio = load("audio_decoder")(t["codes"])
    assert "musicgen_ops" not in sys.modules and "transformers" not in sys.modules
    np.savez(outputs, hidden=hidden.numpy(), init_logits=init[0].numpy(), step_logits=step[0].numpy(),
             audio=audio.numpy())
    """
)


def test_parts_load_in_fresh_process_and_match(exported, merged_model, lora_model, tmp_path):
    import torch

    from musicgen_ops.pipeline.export.parts import build_parts

    tokens = lora_model.processor(text=PROMPTS, padding=True, return_tensors="np")
    feeds = {
        "ids": tokens["input_ids"].astype(np.int64),
        "mask": tokens["attention_mask"].astype(np.int64),
        "start": np.full((2, 4, 1), 2048, dtype=np.int64),
        "next": np.random.default_rng(0).integers(0, 2048, (2, 4, 1)),
        "codes": np.random.default_rng(1).integers(0, 2048, (2, 4, 5)),
    }
    np.savez(tmp_path / "in.npz", **feeds)
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(exported.root / "torchscript"), str(tmp_path / "in.npz"),
         str(tmp_path / "out.npz")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    parts = build_parts(merged_model)
    t = {k: torch.from_numpy(v) for k, v in feeds.items()}
    with torch.no_grad():
        hidden = parts["text_encoder"](t["ids"], t["mask"])
        init = parts["decoder_init"](t["start"], hidden, t["mask"])
        step = parts["decoder_step"](t["next"], t["mask"], *init[1:])
        audio = parts["audio_decoder"](t["codes"])
    np.testing.assert_allclose(got["hidden"], hidden.numpy(), atol=1e-5)
    np.testing.assert_allclose(got["init_logits"], init[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(got["step_logits"], step[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(got["audio"], audio.numpy(), atol=1e-5)


def test_torchscript_engine_matches_transformers(exported, merged_model, lora_model):
    from musicgen_ops.pipeline.inference.torchscript_engine import TorchScriptInferenceEngine

    engine = TorchScriptInferenceEngine(exported.root)
    codes, audio = hf_generate(merged_model, lora_model.processor, PROMPTS, 10, 3.0)
    out = engine.generate(PROMPTS, num_frames=codes.shape[-1], sampling=SamplingParams(do_sample=False))
    np.testing.assert_array_equal(out.codes, codes)
    np.testing.assert_allclose(out.audio, audio, atol=1e-4)
