"""The synchronous generation path shared by the CLI, the generate-job and the generator server.

``prepare`` turns validated parameters into a ``PreparedRequest`` (conditioning text, seed, length,
sampling); ``batch_key`` says which requests may share one batched forward pass; ``run_batch``
generates a batch; ``generate_to_files`` does all of it for a list of requests (the CLI's
``generate`` and the Kubernetes generate-job call it).

Batching and seeds: requests are batched only when their model, length and sampling settings
(guidance, temperature, top-k, top-p) match. Each request keeps its own seed: with the PyTorch
engine every request samples from its own generator, so a seeded request gives the same audio
alone or in any batch. Engines without per-request seeds are never batched across requests.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import ValidationError

from musicgen_ops.contracts.base import describe_validation_error
from musicgen_ops.contracts.generation import GenerationParameters, GenerationResult
from musicgen_ops.pipeline.audio_output import DeliveryOptions
from musicgen_ops.pipeline.errors import InvalidParametersError
from musicgen_ops.pipeline.generation.prompt_audio import encode_prompt, read_audio_prompt
from musicgen_ops.pipeline.generation.windowing import (
    DEFAULT_STRIDE_SECONDS,
    DEFAULT_WINDOW_SECONDS,
    generate_windowed,
    num_samples_for,
    supports_item_seeds,
)
from musicgen_ops.pipeline.generation.writer import write_result
from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.melody import read_melody, require_melody_support
from musicgen_ops.pipeline.prompting import compose_prompt

logger = logging.getLogger(__name__)

P = TypeVar("P", bound=GenerationParameters)


@dataclass
class PreparedRequest:
    """Validated parameters turned into what the engine needs."""

    params: GenerationParameters
    conditioning_text: str
    seed: int
    num_samples: int
    sampling: SamplingParams
    request_id: str = field(default_factory=lambda: secrets.token_hex(6))
    #: musicgen-melody: the decoded melody (mono, model rate) the track follows.
    melody: np.ndarray | None = None
    #: The decoded ``audio_prompt_uri`` (mono, model rate): the clip the track continues.
    prompt_audio: np.ndarray | None = None


def validate_parameters(
    params: P | dict[str, Any],
    *,
    model: type[P] = GenerationParameters,  # type: ignore[assignment]
    max_duration_seconds: float | None = None,
) -> P:
    """Validated parameters (``model`` or a subclass of it, e.g. an HTTP body); every bad field is
    listed in one ``InvalidParametersError``."""
    if not isinstance(params, model):
        try:
            params = model.model_validate(params)
        except ValidationError as err:
            fields = describe_validation_error(err)
            raise InvalidParametersError(
                f"{len(fields)} invalid parameter(s): " + "; ".join(fields), fields=fields
            ) from err
    try:  # a format this libsndfile cannot write is refused before any generation
        DeliveryOptions.for_parameters(params)
    except ValueError as err:
        line = (
            str(err).replace("format: ", "output_format: ", 1)
            if str(err).startswith("format: ")
            else str(err)
        )
        raise InvalidParametersError(f"1 invalid parameter(s): {line}", fields=[line]) from err
    if max_duration_seconds is not None and params.duration_seconds > max_duration_seconds:
        line = (
            f"duration_seconds: at most {max_duration_seconds:g} s on this server "
            f"(got {params.duration_seconds})"
        )
        raise InvalidParametersError(f"1 invalid parameter(s): {line}", fields=[line])
    return params


def prepare(
    params: GenerationParameters,
    sample_rate: int,
    *,
    melody: np.ndarray | None = None,
    prompt_audio: np.ndarray | None = None,
) -> PreparedRequest:
    """Fold structured fields into the prompt, pick the seed, compute the exact length; ``melody`` is
    the decoded ``melody_uri`` (see ``pipeline.melody.read_melody``), ``prompt_audio`` the decoded
    ``audio_prompt_uri``, shorter than ``duration_seconds``, which includes it."""
    total = num_samples_for(params.duration_seconds, sample_rate)
    if prompt_audio is not None and prompt_audio.shape[-1] >= total:
        line = (
            f"audio_prompt_uri: the clip ({prompt_audio.shape[-1] / sample_rate:.2f} s) must be shorter than "
            f"duration_seconds ({params.duration_seconds:g} s), which includes it"
        )
        raise InvalidParametersError(line, fields=[line])
    try:
        text = compose_prompt(
            params.prompt, style=params.style, bpm=params.target_bpm, key=params.key, scale=params.scale
        )
    except ValueError as err:
        raise InvalidParametersError(str(err), fields=[str(err)]) from err
    seed = params.random_seed if params.random_seed is not None else secrets.randbelow(2**32)
    sampling = SamplingParams(
        guidance_scale=params.guidance_scale,
        temperature=params.temperature,
        top_k=params.top_k,
        top_p=params.top_p,
        do_sample=params.temperature > 0,
        seed=seed,
    )
    return PreparedRequest(
        params=params,
        conditioning_text=text,
        seed=seed,
        num_samples=total,
        sampling=sampling,
        melody=melody,
        prompt_audio=prompt_audio,
    )


def decoder_name(engine: Any) -> str:
    """The name of the audio decoder an engine decodes with (``encodec`` when it does not say)."""
    return str(getattr(getattr(engine, "decoder", None), "name", None) or "encodec")


def batch_key(model_key: str, request: PreparedRequest, engine: Any) -> Hashable:
    """Requests with equal keys may be generated in one batch."""
    s = request.sampling
    key: tuple = (
        model_key,
        decoder_name(engine),  # requests with different decoders never share a batch
        request.num_samples,
        s.guidance_scale,
        s.temperature,
        s.top_k,
        s.top_p,
        s.do_sample,
    )
    if not supports_item_seeds(engine) or request.melody is not None or request.prompt_audio is not None:
        key += (request.request_id,)  # one seed, melody or audio prompt per call: never share a batch
    return key


def run_batch(
    engine: Any,
    requests: Sequence[PreparedRequest],
    *,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    stride_seconds: float = DEFAULT_STRIDE_SECONDS,
) -> tuple[np.ndarray, int]:
    """Generate one batch (all with the same ``batch_key``); returns ``[batch, samples]`` and windows."""
    first = requests[0]
    prompt_codes = None
    if first.prompt_audio is not None:  # a request with an audio prompt is a batch of its own
        prompt_codes = encode_prompt(engine, first.prompt_audio)
    return generate_windowed(
        engine,
        [r.conditioning_text for r in requests],
        num_samples=first.num_samples,
        sampling=first.sampling,
        seeds=[r.seed for r in requests],
        window_seconds=window_seconds,
        stride_seconds=stride_seconds,
        prompt_codes=prompt_codes,
        melody=[r.melody for r in requests] if any(r.melody is not None for r in requests) else None,
    )


def generate_to_files(
    params_list: Sequence[GenerationParameters | dict[str, Any]],
    model_ref: str | Path | Any,
    output_dir: str | Path,
    *,
    engine: str = "auto",
    device: str = "cpu",
    dtype: str | None = None,
    model_format: str = "auto",
    decoder: str = "encodec",
    decoder_options: Mapping[str, Mapping[str, Any]] | None = None,
    audio_paths: Sequence[str | Path] | None = None,
    max_batch_size: int = 8,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    stride_seconds: float = DEFAULT_STRIDE_SECONDS,
    spectrogram: bool = False,
    model_id: str | None = None,
    fetch_melody: Callable[[str], Path] | None = None,
    fetch_audio_prompt: Callable[[str], Path] | None = None,
) -> list[GenerationResult]:
    """Generate every request with one model and write each result's files (batch/Job mode).

    Args:
        params_list: the tracks to generate, all with ``model_ref``.
        model_ref: base model, checkpoint folder or ONNX export for ``open_engine``, or an open engine.
        output_dir: where ``track-<n>.<format>`` (+ ``.json``, ``.png``) go unless ``audio_paths``.
        engine, device, dtype, model_format: passed to ``open_engine``.
        decoder: audio decoder of the requests that name none (a request's ``decoder`` wins; one engine
            is opened per decoder used).
        decoder_options: factory options per decoder name (``{"mbd": {"weights": ...}}``).
        audio_paths: explicit audio file path per request.
        max_batch_size: requests generated together (same length and sampling settings only).
        window_seconds, stride_seconds: token-level continuation beyond the model's window.
        spectrogram: also write spectrogram PNGs.
        model_id: name recorded in the sidecars (default: ``model_ref``).
        fetch_melody: maps a ``melody_uri`` to a local file (the jobs download through storage);
            default: local paths and ``file://`` URIs only.
        fetch_audio_prompt: maps an ``audio_prompt_uri`` to a local file (the CLI and the generate-job
            download through storage); without it a request with ``audio_prompt_uri`` is refused: the
            caller alone knows what it may read, this function never opens a path a request names.

    Returns:
        One result per request, in input order.
    """
    validated = [validate_parameters(p) for p in params_list]
    if audio_paths is not None and len(audio_paths) != len(validated):
        raise ValueError(f"got {len(audio_paths)} audio paths for {len(validated)} requests")
    engines: dict[str, Any] = {}

    def engine_for(name: str) -> Any:
        if name not in engines:
            if not isinstance(model_ref, (str, Path)):
                if decoder_name(model_ref) != name:
                    raise ValueError(
                        f"the open engine decodes with {decoder_name(model_ref)!r}, not {name!r}"
                    )
                engines[name] = model_ref
            else:
                from musicgen_ops.pipeline.inference.loader import open_engine

                options = (decoder_options or {}).get(name)
                engines[name] = open_engine(
                    model_ref,
                    engine,
                    device,
                    dtype=dtype,
                    model_format=model_format,
                    decoder=name,
                    decoder_options=options,
                )
        return engines[name]

    if isinstance(model_ref, (str, Path)):
        model_id = model_id or str(model_ref)
    else:
        decoder = decoder_name(model_ref)
        model_id = model_id or str(getattr(model_ref, "name", "engine"))
    output_dir = Path(output_dir)
    decoders = [p.decoder or decoder for p in validated]
    prepared = []
    for request, name in zip(validated, decoders, strict=True):
        gen = engine_for(name)
        require_melody_support(gen, model_id, bool(request.melody_uri))
        melody = read_melody(request.melody_uri, gen.sample_rate, fetch_melody)
        prompt = read_audio_prompt(request.audio_prompt_uri, gen.sample_rate, fetch_audio_prompt)
        prepared.append(prepare(request, gen.sample_rate, melody=melody, prompt_audio=prompt))
    groups: dict[Hashable, list[int]] = {}
    for index, request in enumerate(prepared):
        gen = engine_for(decoders[index])
        groups.setdefault(batch_key(model_id, request, gen), []).append(index)
    results: dict[int, GenerationResult] = {}
    for indices in groups.values():
        gen = engine_for(decoders[indices[0]])
        for start in range(0, len(indices), max_batch_size):
            chunk = indices[start : start + max_batch_size]
            started = time.perf_counter()
            audio, windows = run_batch(
                gen,
                [prepared[i] for i in chunk],
                window_seconds=window_seconds,
                stride_seconds=stride_seconds,
            )
            for row, index in enumerate(chunk):
                request = prepared[index]
                fmt = request.params.output_format
                path = Path(audio_paths[index]) if audio_paths else output_dir / f"track-{index:04d}.{fmt}"
                results[index] = write_result(
                    path,
                    audio[row],
                    sample_rate=gen.sample_rate,
                    result_id=path.stem,
                    model_id=model_id,
                    conditioning_text=request.conditioning_text,
                    parameters=GenerationParameters.pick(request.params),
                    seed=request.seed,
                    output_format=fmt,
                    windows=windows,
                    batch_size=len(chunk),
                    started=started,
                    clock=time.perf_counter,
                    spectrogram=spectrogram,
                    decoder=decoder_name(gen),
                )
                logger.info("wrote %s (%.2f s, seed %d)", path, results[index].duration_seconds, request.seed)
    return [results[i] for i in range(len(prepared))]
