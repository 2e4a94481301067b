"""Which engine serves a request, and how the server opens one: one model load, one view per audio decoder.

A request names its ``decoder`` (``encodec``, ``mbd``) or gets the server's (``MUSICGEN_SERVE_DECODER``).
The model is loaded once, with the server's decoder; another decoder gets a *view* of that engine
(``engine_for_decoder``: the same weights, text encoder and codec on the device, only the decoder built
anew), so its memory is the decoder's own. Engines that cannot share (ONNX, TorchScript) are opened
again for that decoder. :class:`EngineKey` names the pair: requests with different decoders never share
a batch. MultiBand Diffusion's checkpoint (``MUSICGEN_SERVE_MBD_WEIGHTS``: hub id, folder, file or mirrored
artifact URI, resolved like a base model) is found before the model is loaded; when it cannot be, the
answer is :class:`DecoderNotAvailableError` (HTTP 503) naming the setting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.serving.errors import DecoderNotAvailableError
from musicgen_ops.storage.base_models import resolve_base_model

__all__ = [
    "DecoderOptions",
    "EngineFactory",
    "EngineKey",
    "decoder_options",
    "decoder_unavailable",
    "engine_variant",
    "open_served_engine",
]

#: ``reference -> engine`` with the server's decoder; called ``factory(reference, decoder=name)`` for another
#: decoder only when the loaded engine cannot share its weights with a view (exports).
EngineFactory = Callable[..., Any]


class EngineKey(NamedTuple):
    """Cache key of a loaded engine: the model and the audio decoder it decodes with."""

    model: str
    decoder: str

    def __str__(self) -> str:
        return f"{self.model} (decoder {self.decoder})"


def decoder_unavailable(
    settings: ServeEnvironment, decoder: str, err: BaseException
) -> DecoderNotAvailableError:
    """The 503 answer for a decoder whose weights cannot be found or read."""
    variable = ServeEnvironment.variable_names()["mbd_weights"]
    return DecoderNotAvailableError(
        f"decoder {decoder!r} is not available on this server: its weights "
        f"({variable}={settings.mbd_weights}) could not be loaded ({err}); "
        f"use decoder 'encodec' or set {variable}"
    )


def decoder_options(settings: ServeEnvironment, decoder: str) -> dict[str, Any] | None:
    """Factory options of ``decoder``: MBD's checkpoint file (found before any model is loaded, so
    missing weights cost no model load) and its sampling steps; None for the other decoders."""
    from musicgen_ops.pipeline.inference.decoders.mbd_checkpoint import TINY_RANDOM, resolve_mbd_file

    if decoder != "mbd":
        return None
    try:
        weights = resolve_base_model(settings.mbd_weights)
        weights = weights if weights == TINY_RANDOM else str(resolve_mbd_file(weights))
    except Exception as err:  # missing file, hub or storage errors: one answer naming the setting
        raise decoder_unavailable(settings, decoder, err) from err
    return {"weights": weights, "sampling_steps": settings.mbd_sampling_steps}


class DecoderOptions:
    """:func:`decoder_options` per decoder, found once (in a worker thread) and remembered when found."""

    def __init__(self, settings: ServeEnvironment) -> None:
        self.settings = settings
        self._found: dict[str, dict[str, Any] | None] = {}

    async def options(self, decoder: str) -> dict[str, Any] | None:
        """The factory options of ``decoder`` (``DecoderNotAvailableError`` when its weights are missing)."""
        if decoder not in self._found:
            self._found[decoder] = await asyncio.to_thread(decoder_options, self.settings, decoder)
        return self._found[decoder]


def engine_variant(
    engine: Any, decoder: str, options: dict[str, Any] | None, open_separately: Callable[[], Any]
) -> tuple[Any, int]:
    """``engine`` decoding with ``decoder`` and the bytes that adds: a view sharing its weights (the
    decoder's own bytes, e.g. MBD's bands), or for engines that cannot share, a separately opened engine
    (all its bytes)."""
    from musicgen_ops.pipeline.inference.loader import engine_for_decoder
    from musicgen_ops.serving.cache import engine_memory

    view = engine_for_decoder(engine, decoder, options)
    if view is not None:
        return view, int(getattr(view.decoder, "memory_bytes", 0) or 0)
    separate = open_separately()
    return separate, engine_memory(separate)


def open_served_engine(settings: ServeEnvironment, reference: str, decoder: str | None = None) -> Any:
    """``open_engine`` with the server's engine, device, dtype and format, decoding with ``decoder``."""
    from musicgen_ops.pipeline.inference.loader import open_engine

    decoder = decoder or settings.decoder
    return open_engine(
        reference,
        settings.engine,
        settings.device,
        dtype=settings.dtype,
        model_format=settings.model_format,
        decoder=decoder,
        decoder_options=decoder_options(settings, decoder),
    )
