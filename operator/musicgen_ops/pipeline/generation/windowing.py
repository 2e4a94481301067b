"""Tracks longer than the model's window, by token-level continuation (audiocraft's "extend").

MusicGen attends to at most 30 s (1500 frames). A longer track is generated window by window, as
audiocraft's ``_generate_tokens`` does: each window holds at most ``window`` frames; the first starts
from the audio prompt's codes (or from nothing); each next window starts ``stride`` frames later and
keeps the last ``window - stride`` frames of codes of the previous one as its code prefix (18 s of
30 s by default: 12 s of context, 18 s of new audio per window). The codes are never turned into
audio and back; the whole track's codes are decoded once at the end and cut to exactly
``round(duration * sample_rate)`` samples.

An audio prompt's codes are the start of the track: the result holds the prompt (as the codec
reproduces it) followed by the continuation, ``duration`` seconds in all, as audiocraft's
``generate_continuation`` returns it.

Seeds: window ``w`` of a request with seed ``s`` samples with seed ``s + w * 0x9E3779B9`` (mod 2**63),
so window 0 uses ``s`` itself and every window is reproducible.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from musicgen_ops.pipeline.errors import InvalidParametersError
from musicgen_ops.pipeline.inference.base import GenerationOutput, SamplingParams
from musicgen_ops.pipeline.melody import melody_for_window

logger = logging.getLogger(__name__)

_GOLDEN = 0x9E3779B9
_SEED_MODULUS = 2**63 - 1
#: audiocraft's ``extend_stride``: seconds each continuation window moves on, in a 30 s window.
DEFAULT_STRIDE_SECONDS = 18.0
DEFAULT_WINDOW_SECONDS = 30.0


def window_seed(seed: int, window: int) -> int:
    """The seed window ``window`` of a request seeded ``seed`` samples with."""
    return (int(seed) + window * _GOLDEN) % _SEED_MODULUS


def supports_item_seeds(engine: Any) -> bool:
    """True when ``engine.generate`` takes one seed per prompt (results independent of the batch)."""
    if getattr(engine, "supports_item_seeds", False):
        return True
    try:
        return "seeds" in inspect.signature(engine.generate).parameters
    except (TypeError, ValueError):
        return False


def num_samples_for(duration_seconds: float, sample_rate: int) -> int:
    """Samples in a track of ``duration_seconds`` (the exact length every result has)."""
    return max(1, int(round(duration_seconds * sample_rate)))


def window_frames_for(engine: Any, window_seconds: float, stride_seconds: float) -> tuple[int, int]:
    """``(window, stride)`` in frames: ``window_seconds`` capped by the engine's ``max_frames``; when the
    engine's window is shorter, the stride shrinks by the same factor (audiocraft's 18 of 30 s stays 60 %).

    Raises:
        ValueError: a stride that is not shorter than the window (windows would not overlap).
    """
    if not 0 < stride_seconds < window_seconds:
        raise ValueError(
            f"stride_seconds ({stride_seconds:g}) must be within (0, window_seconds = {window_seconds:g}): "
            "each window keeps window - stride seconds of the previous one as context"
        )
    wanted = max(2, int(window_seconds * engine.frame_rate))
    window = _window_frames(engine, window_seconds)
    stride = int(round(stride_seconds * engine.frame_rate * window / wanted))
    return window, min(max(1, stride), window - 1)


def _window_frames(engine: Any, window_seconds: float) -> int:
    """Frames one ``generate`` call may hold: ``window_seconds``, capped by the engine's ``max_frames``."""
    window = max(2, int(window_seconds * engine.frame_rate))
    max_frames = getattr(engine, "max_frames", None)
    return max_frames if isinstance(max_frames, int) and 1 < max_frames < window else window


def decode_track(engine: Any, codes: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """A track's codes ``[batch, K, frames]`` through the engine's decoder: float32 ``[batch, samples]``
    (mono) or ``[batch, 2, samples]`` (stereo), one row at a time with its own seed (a sampling decoder
    such as MBD), so a 300 s batch never holds every row's decoder activations at once."""
    import torch

    from musicgen_ops.pipeline.inference.decoders import decode_codes

    decoder = getattr(engine, "decoder", None)
    if decoder is None:
        raise TypeError(f"{type(engine).__name__} has no decoder to turn codes into audio")
    rows = []
    for row, seed in zip(np.asarray(codes, dtype=np.int64), seeds, strict=True):
        with torch.inference_mode():
            values = decode_codes(decoder, torch.from_numpy(row[None]), [seed])
        values = values[0].float().cpu().numpy()  # [channels, samples]
        rows.append(values[0] if values.shape[0] == 1 else values)
    return np.stack(rows).astype(np.float32, copy=False)


def generate_windowed(
    engine: Any,
    prompts: list[str],
    *,
    num_samples: int,
    sampling: SamplingParams,
    seeds: Sequence[int],
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    stride_seconds: float = DEFAULT_STRIDE_SECONDS,
    prompt_codes: np.ndarray | None = None,
    melody: Sequence[np.ndarray | None] | None = None,
) -> tuple[np.ndarray, int]:
    """Generate exactly ``num_samples`` samples per prompt, in as many windows as needed.

    Args:
        engine: a ``GenerationEngine``; per-prompt ``seeds`` are passed when it supports them,
            otherwise ``sampling.seed`` is set from ``seeds[0]`` (then give one prompt per call).
        prompts: conditioning texts (one per track; all tracks have the same length).
        num_samples: samples per track (audio prompt included).
        sampling: guidance, temperature, top-k/top-p (its seed is ignored).
        seeds: one seed per prompt.
        window_seconds: most audio one ``generate`` call holds, prefix included (capped by the engine's
            ``max_frames``).
        stride_seconds: how far each next window starts after the previous one (audiocraft's
            ``extend_stride``); the rest of the window is the previous window's codes.
        prompt_codes: int64 ``[batch, K, frames]`` codes of an audio prompt: the track starts with them.
        melody: musicgen-melody engines: per prompt, mono audio (or None) the music follows; each
            window is conditioned on the part of the melody under it (looped when shorter).

    Returns:
        float32 ``[batch, num_samples]`` audio (``[batch, 2, num_samples]`` from a stereo model) and the
        number of windows used.
    """
    if len(seeds) != len(prompts):
        raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
    hop = engine.sample_rate // engine.frame_rate
    total_frames = math.ceil(num_samples / hop)
    per_item = supports_item_seeds(engine)
    if not per_item and len(set(seeds)) > 1:
        raise ValueError("this engine takes one seed per call: generate prompts with different seeds apart")
    window_frames = _window_frames(engine, window_seconds)
    context = None if prompt_codes is None else np.asarray(prompt_codes, dtype=np.int64)
    if context is not None:
        _check_prompt(context, len(prompts), total_frames, window_frames, engine.frame_rate)

    def call(
        frames: int, window: int, prefix: np.ndarray | None, decode: bool, start: int
    ) -> GenerationOutput:
        """One window: ``frames`` new frames after ``prefix``, the window starting at frame ``start``."""
        window_seeds = [window_seed(s, window) for s in seeds]
        kwargs: dict[str, Any] = {"num_frames": frames}  # extras only when used: simple engines still fit
        if melody is not None:  # the melody under this window (its code prefix included)
            held = 0 if prefix is None else prefix.shape[-1]
            under = (start * hop, (held + frames) * hop)
            kwargs["melody"] = [None if m is None else melody_for_window(m, *under) for m in melody]
        if not decode:
            kwargs["decode"] = False
        if prefix is not None:
            kwargs["prefix_codes"] = prefix
        if per_item:
            return engine.generate(prompts, sampling=sampling, seeds=window_seeds, **kwargs)
        return engine.generate(prompts, sampling=replace(sampling, seed=window_seeds[0]), **kwargs)

    if context is None and total_frames <= window_frames:  # one window: the engine decodes its own codes
        audio = _audio(call(total_frames, 0, None, True, 0), total_frames * hop)
        return np.ascontiguousarray(audio[..., :num_samples]), 1
    pieces = [] if context is None else [context]
    offset, windows = 0, 0  # offset: the frame the current window starts at
    while True:
        held = 0 if context is None else context.shape[-1]
        span = min(total_frames - offset, window_frames)
        new = _codes(call(span - held, windows, context, False, offset), span - held)
        pieces.append(new)
        windows += 1
        if offset + span >= total_frames:
            break
        if windows == 1:  # a second window is needed: only now must the stride fit the window
            window_frames, stride_frames = window_frames_for(engine, window_seconds, stride_seconds)
        frames = new if context is None else np.concatenate([context, new], axis=-1)
        context = frames[..., stride_frames:]  # the codes the next window continues
        offset += stride_frames
    codes = np.concatenate(pieces, axis=-1)
    audio = decode_track(engine, codes, seeds)
    if audio.shape[-1] < num_samples:
        raise RuntimeError(f"decoder returned {audio.shape[-1]} samples, expected {num_samples}")
    return np.ascontiguousarray(audio[..., :num_samples]), windows


def _check_prompt(codes: np.ndarray, batch: int, total: int, window: int, frame_rate: int) -> None:
    """Refuse an audio prompt that leaves nothing to generate or that no window can hold."""
    if codes.ndim != 3 or codes.shape[0] != batch or codes.shape[-1] < 1:
        raise ValueError(f"prompt_codes must be [batch={batch}, codebooks, frames >= 1], got {codes.shape}")
    frames = codes.shape[-1]
    reason = None
    if frames >= total:
        reason = f"the requested duration ({total / frame_rate:g} s), which includes it"
    elif frames >= window:
        reason = f"the model's window ({window / frame_rate:g} s)"
    if reason:
        line = f"audio_prompt_uri: the clip ({frames / frame_rate:g} s) must be shorter than {reason}"
        raise InvalidParametersError(line, fields=[line])


def _codes(out: GenerationOutput, expected: int) -> np.ndarray:
    """The new codes of one window (exactly ``expected`` frames)."""
    if out.codes is None or out.codes.shape[-1] < expected:
        got = None if out.codes is None else out.codes.shape[-1]
        raise RuntimeError(f"engine returned {got} new frames of codes, expected {expected}")
    return np.asarray(out.codes[..., :expected], dtype=np.int64)


def _audio(out: GenerationOutput, expected: int) -> np.ndarray:
    """An engine's audio ``[batch, samples]`` (mono) or ``[batch, 2, samples]`` (at least ``expected``)."""
    audio = np.asarray(out.audio, dtype=np.float32)
    if audio.ndim == 3 and audio.shape[1] == 1:  # [batch, 1, samples]: mono
        audio = audio[:, 0]
    if audio.shape[-1] < expected:
        raise RuntimeError(f"engine returned {audio.shape[-1]} samples, expected at least {expected}")
    return audio
