"""Tracks longer than the model's window, by windowed continuation (audiocraft's "extend").

MusicGen attends to at most 30 s (1500 frames). A longer track is generated window by window:
the first window generates ``min(total, window)``; each following window is conditioned on the
last ``context_seconds`` of the audio so far (passed as ``audio_prompt``, re-encoded by the codec)
and adds ``window - context`` seconds of new audio, until the requested length is reached. The
result is cut to exactly ``round(duration * sample_rate)`` samples.

Seeds: window ``w`` of a request with seed ``s`` samples with seed ``s + w * 0x9E3779B9`` (mod 2**63),
so window 0 uses ``s`` itself and every window is reproducible.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from musicgen_ops.pipeline.inference.base import GenerationOutput, SamplingParams
from musicgen_ops.pipeline.melody import melody_for_window

_GOLDEN = 0x9E3779B9
_SEED_MODULUS = 2**63 - 1


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


def _new_audio(out: GenerationOutput, prompt_samples: int, expected: int) -> np.ndarray:
    """The newly generated part of an engine's output (engines may or may not return the prompt)."""
    audio = np.asarray(out.audio, dtype=np.float32)
    if audio.ndim == 3 and audio.shape[1] == 1:  # [batch, 1, samples]: mono
        audio = audio[:, 0]
    if prompt_samples and audio.shape[-1] >= prompt_samples + expected:
        audio = audio[..., prompt_samples:]
    if audio.shape[-1] < expected:
        raise RuntimeError(f"engine returned {audio.shape[-1]} samples, expected at least {expected}")
    return audio[..., :expected]


def generate_windowed(
    engine: Any,
    prompts: list[str],
    *,
    num_samples: int,
    sampling: SamplingParams,
    seeds: Sequence[int],
    window_seconds: float = 30.0,
    context_seconds: float = 10.0,
    melody: Sequence[np.ndarray | None] | None = None,
) -> tuple[np.ndarray, int]:
    """Generate exactly ``num_samples`` samples per prompt, in as many windows as needed.

    Args:
        engine: a ``GenerationEngine``; per-prompt ``seeds`` are passed when it supports them,
            otherwise ``sampling.seed`` is set from ``seeds[0]`` (then give one prompt per call).
        prompts: conditioning texts (one per track; all tracks have the same length).
        num_samples: samples per track.
        sampling: guidance, temperature, top-k/top-p (its seed is ignored).
        seeds: one seed per prompt.
        window_seconds: longest audio one ``generate`` call produces (capped by the engine's window).
        context_seconds: audio each continuation window is conditioned on.
        melody: musicgen-melody engines: per prompt, mono audio (or None) the music follows; each
            window is conditioned on the part of the melody under it (looped when shorter).

    Returns:
        float32 ``[batch, num_samples]`` audio (``[batch, 2, num_samples]`` from a stereo model) and the
        number of windows used.
    """
    if len(seeds) != len(prompts):
        raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
    hop = engine.sample_rate // engine.frame_rate
    window_frames = max(1, int(window_seconds * engine.frame_rate))
    max_frames = getattr(engine, "max_frames", None)
    if isinstance(max_frames, int) and max_frames > 0:
        window_frames = min(window_frames, max_frames)
    context_frames = min(int(context_seconds * engine.frame_rate), window_frames - 1)
    total_frames = math.ceil(num_samples / hop)
    if getattr(engine, "audio_channels", 1) != 1 and total_frames > window_frames:
        raise ValueError(
            f"stereo tracks are generated in one window: at most {window_frames / engine.frame_rate:g} s "
            "(continuing a stereo track is not supported)"
        )
    per_item = supports_item_seeds(engine)
    if not per_item and len(set(seeds)) > 1:
        raise ValueError("this engine takes one seed per call: generate prompts with different seeds apart")

    def call(frames: int, window: int, audio_prompt: np.ndarray | None, start: int = 0) -> GenerationOutput:
        window_seeds = [window_seed(s, window) for s in seeds]
        extra: dict[str, Any] = {}
        if melody is not None:  # the melody under this window (audio prompt included)
            length = frames * hop + (0 if audio_prompt is None else audio_prompt.shape[1])
            extra["melody"] = [None if m is None else melody_for_window(m, start, length) for m in melody]
        if per_item:
            return engine.generate(
                prompts,
                num_frames=frames,
                sampling=sampling,
                audio_prompt=audio_prompt,
                seeds=window_seeds,
                **extra,
            )
        return engine.generate(
            prompts,
            num_frames=frames,
            sampling=replace(sampling, seed=window_seeds[0]),
            audio_prompt=audio_prompt,
            **extra,
        )

    first = min(total_frames, window_frames)
    pieces = [_new_audio(call(first, 0, None), 0, first * hop)]
    done, windows = first, 1
    while done < total_frames:
        new = min(window_frames - context_frames, total_frames - done)
        so_far = np.concatenate(pieces, axis=1) if len(pieces) > 1 else pieces[0]
        prompt = so_far[:, -context_frames * hop :] if context_frames > 0 else None
        try:
            start = (done - context_frames) * hop if prompt is not None else done * hop
            out = call(new, windows, prompt, start)
        except NotImplementedError as err:
            raise ValueError(
                f"{type(engine).__name__} cannot continue audio ({err}): tracks longer than one window "
                f"({window_frames / engine.frame_rate:g} s) need the torch engine"
            ) from err
        pieces = [so_far, _new_audio(out, 0 if prompt is None else prompt.shape[1], new * hop)]
        done += new
        windows += 1
    audio = np.concatenate(pieces, axis=-1) if len(pieces) > 1 else pieces[0]
    return np.ascontiguousarray(audio[..., :num_samples], dtype=np.float32), windows
