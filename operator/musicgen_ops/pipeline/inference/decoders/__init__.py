"""The one seam between generated codes and audio: every engine decodes through an :class:`AudioDecoder`.

A decoder takes undelayed codes ``(batch, num_codebooks, frames)`` (int64) and returns float32 audio
``(batch, channels, samples)`` at its ``sample_rate``. Built in:

* ``encodec``: transformers' EnCodec ``audio_encoder.decode`` of a loaded MusicGen (torch and fast engines);
* the exported EnCodec part (``audio_decoder`` of an ONNX or TorchScript export), built by those engines
  with :class:`ExportedEncodecDecoder`.

Other decoders (e.g. MultiBand Diffusion) register a factory with :func:`register_decoder` and are chosen
by name with :func:`build_decoder`; a factory takes keyword arguments ``model`` (the loaded
``MusicgenForConditionalGeneration``, or ``None`` for exported engines), ``device`` and its own options.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch

from musicgen_ops.pipeline.inference.decoders.encodec import EncodecDecoder, ExportedEncodecDecoder

__all__ = [
    "DEFAULT_DECODER",
    "AudioDecoder",
    "DecoderFactory",
    "EncodecDecoder",
    "ExportedEncodecDecoder",
    "available_decoders",
    "build_decoder",
    "decode_codes",
    "register_decoder",
    "with_decoder",
]

DEFAULT_DECODER = "encodec"


@runtime_checkable
class AudioDecoder(Protocol):
    """Codes to waveform: what every generation engine calls once its codes are complete."""

    name: str
    sample_rate: int
    channels: int

    def decode(self, codes: torch.LongTensor) -> torch.FloatTensor:
        """Undelayed codes ``(batch, num_codebooks, frames)`` -> float32 ``(batch, channels, samples)``."""
        ...


def decode_codes(
    decoder: AudioDecoder, codes: torch.LongTensor, seeds: Sequence[int] | None = None
) -> torch.FloatTensor:
    """``decoder.decode(codes)``, with one seed per item for decoders that sample (``seeded = True``,
    e.g. MBD), so a request's seed fixes its audio whatever else is in the batch."""
    if seeds is not None and getattr(decoder, "seeded", False):
        return decoder.decode(codes, seeds=list(seeds))  # type: ignore[call-arg]
    return decoder.decode(codes)


_Engine = TypeVar("_Engine")


def with_decoder(engine: _Engine, decoder: AudioDecoder) -> _Engine:
    """A view of ``engine`` decoding with ``decoder``: a shallow copy sharing every loaded tensor (weights,
    text encoder, codec, caches, CUDA graphs) and lock, differing only in its ``decoder`` attribute.

    The decoder runs after generation (outside any graph), so views of one engine generate alike; a
    view costs only the decoder's own memory (``decoder.memory_bytes``).

    Raises:
        ValueError: the decoder makes audio at another rate than the engine's codes.
    """
    rate = int(engine.sample_rate)  # type: ignore[attr-defined]
    if decoder.sample_rate != rate:
        raise ValueError(
            f"decoder {decoder.name!r} makes {decoder.sample_rate} Hz audio, "
            f"the model's codes are for {rate} Hz"
        )
    view = copy.copy(engine)
    view.decoder = decoder  # type: ignore[attr-defined]
    return view


DecoderFactory = Callable[..., AudioDecoder]
_FACTORIES: dict[str, DecoderFactory] = {}


def register_decoder(name: str, factory: DecoderFactory) -> None:
    """Make ``build_decoder(name, ...)`` call ``factory(model=..., device=..., **options)``."""
    if not name or not isinstance(name, str):
        raise ValueError(f"a decoder name must be a non-empty string, got {name!r}")
    _FACTORIES[name] = factory


def available_decoders() -> list[str]:
    """Registered decoder names, sorted."""
    return sorted(_FACTORIES)


def build_decoder(name: str, *, model: Any = None, device: str | torch.device = "cpu", **options: Any):
    """The decoder registered as ``name``, built for ``model`` on ``device``.

    Raises:
        ValueError: no decoder has that name (the message lists the registered ones), or the factory
            cannot work with what it was given (e.g. ``encodec`` without a torch model).
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown audio decoder {name!r}; choose one of {', '.join(available_decoders())}")
    decoder = factory(model=model, device=device, **options)
    if not isinstance(decoder, AudioDecoder):
        raise TypeError(f"decoder factory {name!r} returned {type(decoder).__name__}, not an AudioDecoder")
    return decoder


def _encodec_factory(
    *, model: Any = None, device: str | torch.device = "cpu", **options: Any
) -> EncodecDecoder:
    if model is None:
        raise ValueError(
            "decoder 'encodec' needs the loaded MusicGen model (model=...); exported engines use their own "
            "audio_decoder part"
        )
    if options:
        raise ValueError(f"decoder 'encodec' takes no options, got {', '.join(sorted(options))}")
    return EncodecDecoder.from_musicgen(model)


register_decoder(DEFAULT_DECODER, _encodec_factory)


def _mbd_factory(*, model: Any = None, device: str | torch.device = "cpu", **options: Any) -> AudioDecoder:
    """MultiBand Diffusion (imported on first use: it needs julius and omegaconf)."""
    from musicgen_ops.pipeline.inference.decoders.mbd import mbd_decoder_factory

    return mbd_decoder_factory(model=model, device=device, **options)


register_decoder("mbd", _mbd_factory)
