"""One conformance table over every generation engine (peft-style): each row opens an engine the way the
CLI, the generate-job and the server do (``open_engine``), and every engine must pass the same checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from musicgen_ops.pipeline.generation.windowing import generate_windowed, num_samples_for
from musicgen_ops.pipeline.inference.base import GenerationEngine, SamplingParams


@dataclass(frozen=True)
class Case:
    """An engine under test: which artifact it loads and with which backend."""

    name: str
    source: str  # "checkpoint" (the trained adapter) or "export" (the export root)
    engine: str
    model_format: str = "auto"


CASES = [
    Case("torch", "checkpoint", "torch"),
    Case("fast", "checkpoint", "fast"),
    Case("onnx", "export", "onnx", "onnx"),
    Case("onnx-int8", "export", "onnx", "onnx-int8"),
    Case("torchscript", "export", "torchscript"),
]
SAMPLING = SamplingParams(guidance_scale=3.0, temperature=1.0, top_k=50)


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case.name)
def engine(request, checkpoint, exported):
    from musicgen_ops.pipeline.inference.loader import open_engine

    case: Case = request.param
    source = checkpoint if case.source == "checkpoint" else exported.root
    return open_engine(source, case.engine, "cpu", model_format=case.model_format)


def generate(engine, prompts: list[str], frames: int, seed: int) -> np.ndarray:
    """One call with per-prompt seeds where the engine takes them, else one seed for the call."""
    if getattr(engine, "supports_item_seeds", False):
        return engine.generate(
            prompts, num_frames=frames, sampling=SAMPLING, seeds=[seed] * len(prompts)
        ).audio
    return engine.generate(
        prompts, num_frames=frames, sampling=SamplingParams(**{**SAMPLING.__dict__, "seed": seed})
    ).audio


def test_protocol(engine):
    assert isinstance(engine, GenerationEngine)
    assert engine.sample_rate == 32_000 and engine.frame_rate == 50


def test_exact_length_and_shape(engine):
    hop = engine.sample_rate // engine.frame_rate
    audio = generate(engine, ["calm piano", "fast drums"], frames=6, seed=1)
    assert audio.dtype == np.float32 and audio.shape == (2, 6 * hop)
    assert np.isfinite(audio).all()
    # Through the pipeline's windowing: an exact sample count that is not a whole number of frames.
    samples = num_samples_for(0.1234, engine.sample_rate)
    track, windows = generate_windowed(
        engine, ["calm piano"], num_samples=samples, sampling=SAMPLING, seeds=[3], window_seconds=30
    )
    assert track.shape == (1, samples) and windows == 1


def test_seeded_determinism(engine):
    first = generate(engine, ["calm piano"], frames=8, seed=42)
    again = generate(engine, ["calm piano"], frames=8, seed=42)
    other = generate(engine, ["calm piano"], frames=8, seed=43)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(
    ("prompts", "frames"),
    [([], 4), (["calm piano"], 0), (["calm piano"], -3)],
    ids=["no-prompts", "zero-frames", "negative-frames"],
)
def test_bad_input_is_a_clear_value_error(engine, prompts, frames):
    with pytest.raises(ValueError, match="prompt|frame"):
        generate(engine, prompts, frames=frames, seed=0)


GREEDY = SamplingParams(guidance_scale=3.0, do_sample=False)


def test_code_prefix_continues_exactly(engine):
    """Greedy: continuing the first 5 frames of a generation regenerates its next 4 frames exactly."""
    kwargs = {"seeds": [0]} if getattr(engine, "supports_item_seeds", False) else {}
    whole = engine.generate(["calm piano"], num_frames=9, sampling=GREEDY, **kwargs)
    cont = engine.generate(
        ["calm piano"], num_frames=4, sampling=GREEDY, prefix_codes=whole.codes[..., :5], **kwargs
    )
    assert cont.codes.shape == (1, whole.codes.shape[1], 4)
    assert np.array_equal(cont.codes, whole.codes[..., 5:])
    assert cont.audio.shape == (1, 4 * engine.sample_rate // engine.frame_rate)


def test_long_track_spans_windows_with_exact_length(engine):
    samples = num_samples_for(0.5, engine.sample_rate) + 7  # not a whole number of frames
    track, windows = generate_windowed(
        engine, ["calm piano"], num_samples=samples, sampling=SAMPLING, seeds=[3],
        window_seconds=0.2, stride_seconds=0.12,
    )  # fmt: skip
    assert track.shape == (1, samples) and windows == 4 and np.isfinite(track).all()
