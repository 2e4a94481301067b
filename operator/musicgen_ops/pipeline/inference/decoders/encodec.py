"""EnCodec decoders: transformers' ``EncodecModel.decode`` and the exported ``audio_decoder`` part."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def _check_codes(codes: torch.Tensor, num_codebooks: int | None) -> None:
    if codes.ndim != 3:
        raise ValueError(f"codes must be (batch, num_codebooks, frames), got shape {tuple(codes.shape)}")
    if num_codebooks is not None and codes.shape[1] != num_codebooks:
        raise ValueError(f"codes have {codes.shape[1]} codebooks, this decoder expects {num_codebooks}")
    if codes.shape[2] < 1:
        raise ValueError("codes hold no frame")


class EncodecDecoder:
    """transformers' EnCodec (``audio_encoder`` of a MusicGen) decoding codes on its own device.

    Stereo MusicGen interleaves the codebooks of the two channels (left on even, right on odd rows);
    each half is decoded separately and the channels concatenated, as ``generate()`` does.

    Args:
        audio_encoder: the ``EncodecModel``.
        num_codebooks: codebooks per frame the decoder model emits (all channels together).
        channels: 1 (mono) or 2 (stereo, interleaved codebooks).
    """

    name = "encodec"

    def __init__(self, audio_encoder: torch.nn.Module, num_codebooks: int, channels: int = 1) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        self.audio_encoder = audio_encoder
        self.num_codebooks = num_codebooks
        self.channels = channels
        self.sample_rate = int(audio_encoder.config.sampling_rate)

    @classmethod
    def from_musicgen(cls, model: Any) -> EncodecDecoder:
        """The codec of a ``MusicgenForConditionalGeneration`` (plain or with a merged adapter)."""
        decoder_config = model.config.decoder
        return cls(
            model.audio_encoder,
            num_codebooks=int(decoder_config.num_codebooks),
            channels=int(getattr(decoder_config, "audio_channels", 1)),
        )

    def decode(self, codes: torch.LongTensor) -> torch.FloatTensor:
        _check_codes(codes, self.num_codebooks)
        device = next(self.audio_encoder.parameters()).device
        codes = codes.to(device)
        with torch.inference_mode():
            if self.channels == 1:
                audio = self._decode(codes)
            else:
                audio = torch.cat([self._decode(codes[:, 0::2]), self._decode(codes[:, 1::2])], dim=1)
        return audio.float()

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        # audio_scales [None]: MusicGen's codec is not normalised (generate() passes Nones too).
        return self.audio_encoder.decode(codes[None], [None]).audio_values


class ExportedEncodecDecoder:
    """The exported ``audio_decoder`` part (ONNX Runtime or TorchScript), numpy in and out.

    Args:
        run: codes int64 ``[batch, K, frames]`` -> waveform ``[batch, samples]`` (mono) or
            ``[batch, 2, samples]`` (stereo), the part's signature.
        sample_rate: the codec's sample rate.
        num_codebooks: codebooks per frame.
        runtime: ``onnx`` or ``torchscript`` (for logs and ``name``).
        channels: 1 (mono) or 2 (stereo, as the export's descriptor records).
    """

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        sample_rate: int,
        num_codebooks: int,
        runtime: str = "onnx",
        channels: int = 1,
    ) -> None:
        self.run = run
        self.channels = int(channels)
        self.sample_rate = int(sample_rate)
        self.num_codebooks = int(num_codebooks)
        self.name = f"encodec-{runtime}"

    def decode(self, codes: torch.LongTensor) -> torch.FloatTensor:
        _check_codes(codes, self.num_codebooks)
        array = np.ascontiguousarray(codes.detach().cpu().numpy(), dtype=np.int64)
        audio = np.asarray(self.run(array), dtype=np.float32)
        audio = audio[:, None, :] if audio.ndim == 2 else audio
        if audio.shape[1] != self.channels:
            raise ValueError(
                f"the audio decoder part returned {audio.shape[1]} channels, expected {self.channels}"
            )
        return torch.from_numpy(np.ascontiguousarray(audio))
