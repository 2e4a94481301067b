"""What runs around the fast engine's decoder steps: text prompts in, codes out as audio, streaming.

:func:`encode_text` turns the prompts into the cross-attention states the steps read;
:func:`codes_to_audio` decodes codes with the engine's codec; :func:`stream_audio` drives
``FastGenerationEngine._run`` with a chunk size and decodes the codes complete so far each time a chunk
is done (``FastGenerationEngine.generate_stream`` calls it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.inference.decoders import AudioDecoder, decode_codes
from musicgen_ops.pipeline.inference.fast_config import FastEngineError, item_seeds

if TYPE_CHECKING:
    from musicgen_ops.pipeline.inference.fast_engine import FastGenerationEngine


def encode_text(
    model, processor, prompts: list[str], batch: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder states ``[2 * batch, T, hidden]`` (conditional rows, padding rows, then zeros for the
    unconditional half) and their attention mask, as ``generate()`` feeds cross-attention."""
    inputs = processor(text=prompts, padding=True, return_tensors="pt").to(device)
    attention = inputs["attention_mask"]
    states = model.text_encoder(input_ids=inputs["input_ids"], attention_mask=attention).last_hidden_state
    if getattr(model, "enc_to_dec_proj", None) is not None:
        states = model.enc_to_dec_proj(states)
    states = (states * attention[..., None]).to(dtype)
    rows, length = 2 * batch, states.shape[1]
    full = states.new_zeros((rows, length, states.shape[2]))
    full[: len(prompts)] = states
    full_mask = attention.new_zeros((rows, length))
    full_mask[: len(prompts)] = attention
    return full, full_mask


def codes_to_audio(
    decoder: AudioDecoder,
    codes: torch.Tensor,
    num_frames: int,
    seeds: Sequence[int],
    *,
    hop_length: int,
    audio_channels: int,
) -> np.ndarray:
    """``[B, K, frames]`` codes through ``decoder`` to float32 ``[B, samples]`` (mono) or
    ``[B, 2, samples]`` (stereo), ``num_frames * hop_length`` samples each."""
    values = decode_codes(decoder, codes, seeds)
    samples = num_frames * hop_length
    audio = values[:, :, :samples].cpu().numpy()
    audio = audio[:, 0] if audio_channels == 1 else audio
    if audio.shape[-1] != samples:
        raise RuntimeError(f"codec returned {audio.shape[-1]} samples, expected {samples}")
    return np.ascontiguousarray(audio, dtype=np.float32)


def stream_audio(
    engine: FastGenerationEngine,
    prompts: list[str],
    *,
    num_frames: int,
    sampling: SamplingParams,
    seeds: Sequence[int] | None,
    chunk_frames: int,
    lookahead_frames: int,
) -> Iterator[np.ndarray]:
    """Yield float32 audio ``[B, samples]`` while generating: about every ``chunk_frames`` frames.

    Each time ``chunk_frames`` more frames are complete, the codes so far are decoded and the audio
    up to ``lookahead_frames`` before the newest frame is yielded (the codec's convolutions look
    ahead, so the newest samples change once later frames exist); the last chunk ends the audio.
    Concatenated, the chunks equal ``generate()``'s audio for the same seeds (up to float rounding).
    """
    engine._validate(prompts, num_frames, sampling)
    largest = engine.config.batch_buckets[-1]
    if len(prompts) > largest:
        raise FastEngineError(
            f"{len(prompts)} prompts exceed the largest batch bucket ({largest}) "
            "for streaming; use generate() or fewer prompts"
        )
    if chunk_frames < 1 or lookahead_frames < 0:
        raise FastEngineError(
            f"need chunk_frames >= 1 and lookahead_frames >= 0, got {chunk_frames}, {lookahead_frames}"
        )
    seeds = list(seeds) if seeds is not None else item_seeds(sampling, len(prompts))
    if len(seeds) != len(prompts):
        raise FastEngineError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
    hop, emitted = engine.hop_length, 0
    for codes, timings in engine._run(prompts, seeds, num_frames, sampling, every=chunk_frames):
        done = codes.shape[-1]
        end = done if timings is not None else max(0, done - lookahead_frames)
        if end > emitted:
            audio = engine._decode_audio(codes[..., :done], done, seeds)
            yield audio[..., emitted * hop : end * hop]
            emitted = end
