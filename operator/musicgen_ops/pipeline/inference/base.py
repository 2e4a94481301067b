"""The one interface every generation engine implements (PyTorch, fast path, ONNX Runtime, TorchScript)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token. ``do_sample=False`` is greedy decoding (then temperature/top_k unused)."""

    guidance_scale: float = 3.0
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    do_sample: bool = True
    seed: int | None = None


@dataclass
class GenerationOutput:
    """Audio for a batch of prompts, plus the codes it was decoded from."""

    audio: np.ndarray  # float32 [batch, samples], mono at sample_rate
    sample_rate: int
    codes: np.ndarray | None = None  # int64 [batch, num_codebooks, frames]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, e.g. encode/decode/codec


@runtime_checkable
class GenerationEngine(Protocol):
    """Text (and optionally an audio prompt) to 32 kHz mono audio."""

    sample_rate: int
    frame_rate: int

    def generate(
        self,
        prompts: list[str],
        *,
        num_frames: int,
        sampling: SamplingParams = SamplingParams(),
        audio_prompt: np.ndarray | None = None,
    ) -> GenerationOutput:
        """Generate ``num_frames`` codec frames (``num_frames / frame_rate`` seconds) for each prompt.

        ``audio_prompt`` (float32 ``[batch, samples]`` at ``sample_rate``), when given, is continued
        rather than started from silence; engines that cannot do this raise ``NotImplementedError``.
        """
        ...
