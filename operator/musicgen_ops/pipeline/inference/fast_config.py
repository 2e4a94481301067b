"""Settings and errors of the fast engine, and the small helpers it shares with its callers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from musicgen_ops.pipeline.errors import PipelineError
from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.inference.static_decoder import ATTENTION_IMPLS

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SEED_MODULUS = 2**63 - 1
#: ``torch.compile`` modes of the fused step (the engine captures CUDA graphs itself).
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")


class FastEngineError(PipelineError, ValueError):
    """A request or model the fast engine cannot serve (too long, too many prompt tokens, bad settings)."""


@dataclass(frozen=True)
class FastEngineConfig:
    """Shape buckets and switches of :class:`FastGenerationEngine`.

    Args:
        batch_buckets (`tuple[int, ...]`): batch sizes graphs are captured for; larger requests are split.
        length_buckets_s (`tuple[float, ...]`): audio lengths (seconds) graphs are captured for; the
            longest is the longest request served. Each is also an attention window.
        text_buckets (`tuple[int, ...]`): prompt lengths (tokens) graphs are captured for; the longest
            is the longest prompt accepted.
        noise_window (`int`): steps of sampling noise drawn per refill (one launch per prompt each time).
        cuda_graphs (`bool | None`): capture CUDA graphs; ``None`` means "when the device is CUDA".
        attention (`str`): ``sdpa`` (``F.scaled_dot_product_attention``) or ``math`` (matmul + softmax).
        top_k_candidates (`int`): requests with ``0 < top_k <=`` this rank only that many scores
            (``torch.topk``, fixed shape) instead of sorting the vocabulary (same tokens); 0: always sort.
            The default covers MusicGen's usual ``top_k=250``; with graphs, warm-up captures both samplers.
        compile_step (`bool`): fuse the decode step with ``torch.compile`` (inductor, ``fullgraph``,
            static shapes), one compilation per (batch, window, prompt, sampler) bucket made by
            ``warmup()`` before the graph captures, so the graphs replay the fused kernels. Off by
            default: compiling takes tens of seconds per bucket (see docs/performance.md). Without a
            C compiler, or when compiling fails, the engine logs why and runs the step unfused.
        compile_mode (`str`): ``torch.compile`` mode: ``default`` or ``max-autotune-no-cudagraphs``
            (never a CUDA-graph mode: the engine captures its own graphs).
    """

    batch_buckets: tuple[int, ...] = (1, 2, 4, 8, 16)
    length_buckets_s: tuple[float, ...] = (10.0, 20.0, 30.0)
    text_buckets: tuple[int, ...] = (32, 128)
    noise_window: int = 32
    cuda_graphs: bool | None = None
    attention: str = "sdpa"
    top_k_candidates: int = 256
    compile_step: bool = False
    compile_mode: str = "default"

    def __post_init__(self) -> None:
        for name in ("batch_buckets", "length_buckets_s", "text_buckets"):
            values = getattr(self, name)
            if not values or any(v <= 0 for v in values):
                raise FastEngineError(f"FastEngineConfig.{name} must be non-empty and positive, got {values}")
            object.__setattr__(self, name, tuple(sorted(set(values))))
        if self.noise_window < 1:
            raise FastEngineError(f"FastEngineConfig.noise_window must be >= 1, got {self.noise_window}")
        if self.top_k_candidates < 0:
            raise FastEngineError(
                f"FastEngineConfig.top_k_candidates must be >= 0 (0: always sort), "
                f"got {self.top_k_candidates}"
            )
        if self.compile_mode not in COMPILE_MODES:
            raise FastEngineError(
                f"FastEngineConfig.compile_mode must be one of {', '.join(COMPILE_MODES)}, "
                f"got {self.compile_mode!r}"
            )
        if self.attention not in ATTENTION_IMPLS:
            raise FastEngineError(
                f"FastEngineConfig.attention must be one of {', '.join(ATTENTION_IMPLS)}, "
                f"got {self.attention!r}"
            )


def plain_musicgen(model):
    """The ``MusicgenForConditionalGeneration`` to serve: a ``PeftModel`` is merged and unwrapped."""
    from transformers import MusicgenForConditionalGeneration

    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is in the pipeline extra
        PeftModel = ()  # noqa: N806
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    if not isinstance(model, MusicgenForConditionalGeneration):
        raise FastEngineError(
            f"the fast engine serves MusicgenForConditionalGeneration models, got {type(model).__name__}"
        )
    channels, codebooks = int(model.config.decoder.audio_channels), int(model.config.decoder.num_codebooks)
    if channels not in (1, 2) or codebooks % channels:
        raise FastEngineError(
            f"the fast engine serves mono or stereo MusicGen, got audio_channels={channels} with "
            f"{codebooks} codebooks"
        )
    return model.eval()


def torch_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The decoder dtype: a name or dtype as given, else bfloat16 on CUDA and float32 elsewhere."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise FastEngineError(f"unknown dtype {dtype!r}; choose one of {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def item_seeds(sampling: SamplingParams, batch: int) -> list[int]:
    """Per-prompt seeds: ``seed + i`` for prompt ``i``, or fresh random seeds when unset."""
    if sampling.seed is None:
        return [int(s) for s in np.random.SeedSequence().generate_state(batch, dtype=np.uint64) >> 1]
    return [(int(sampling.seed) + i) % SEED_MODULUS for i in range(batch)]


def validate_request(
    prompts: list[str],
    num_frames: int,
    sampling: SamplingParams,
    *,
    capacity: int,
    longest_s: float,
    prefix_frames: int = 0,
) -> None:
    """Refuse a request the engine cannot serve, naming the setting at fault.

    Args:
        capacity: most new frames that fit the longest length bucket after ``prefix_frames``.
        longest_s: the longest length bucket (seconds), for the message.
    """
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise FastEngineError("prompts must be a non-empty list of strings")
    if num_frames < 1 or num_frames > capacity:
        raise FastEngineError(
            f"num_frames={num_frames} is outside 1..{capacity} (the longest length bucket, "
            f"{longest_s} s, less {prefix_frames} prefix frames); "
            "raise FastEngineConfig.length_buckets_s"
        )
    if sampling.do_sample and sampling.temperature <= 0:
        raise FastEngineError(f"sampling.temperature must be > 0 when sampling, got {sampling.temperature}")
    if sampling.top_k < 0:
        raise FastEngineError(f"sampling.top_k must be >= 0 (0 disables it), got {sampling.top_k}")
    if not 0.0 <= sampling.top_p <= 1.0:
        raise FastEngineError(f"sampling.top_p must be in [0, 1] (0 or 1 disable it), got {sampling.top_p}")


def warmup_sampling(sampler: int | None) -> SamplingParams:
    """Settings whose steps run ``sampler`` (a top-k within the candidates, or no top-k: a full sort)."""
    return SamplingParams(do_sample=True, guidance_scale=3.0, top_k=sampler or 0)
