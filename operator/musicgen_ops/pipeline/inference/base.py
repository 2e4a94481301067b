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
    """Text (and optionally a code prefix to continue) to 32 kHz mono audio."""

    sample_rate: int
    frame_rate: int

    def generate(
        self,
        prompts: list[str],
        *,
        num_frames: int,
        sampling: SamplingParams = SamplingParams(),
        prefix_codes: np.ndarray | None = None,
        decode: bool = True,
    ) -> GenerationOutput:
        """Generate ``num_frames`` new codec frames (``num_frames / frame_rate`` seconds) for each prompt.

        ``prefix_codes`` (int64 ``[batch, num_codebooks, frames]``, codes before the delay pattern), when
        given, are continued rather than starting from silence: the model attends to them as it would to
        codes it generated itself (audiocraft's prompt tokens, Hugging Face's ``decoder_input_ids``).
        ``codes`` and ``audio`` of the output hold the new frames only; ``decode=False`` skips the codec
        (``audio`` is then empty) for callers that decode many windows' codes at once.
        """
        ...
