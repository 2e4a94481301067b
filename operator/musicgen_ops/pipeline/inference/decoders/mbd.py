"""MultiBand Diffusion (MBD): EnCodec codes -> waveform through four per-band diffusion models.

The decoder MusicGen's authors released for its 32 kHz EnCodec (San Roman et al., 2023; weights
``facebook/multiband-diffusion``, file ``mbd_musicgen_32khz.th``). For each request:

1. codes ``(batch, 4, frames)`` -> the codec's continuous latent ``(batch, D, frames)`` (quantizer decode);
2. each band's diffusion model (bands split on the mel scale at training: 4 bands, cutoffs ~847, 2719 and
   6856 Hz at 32 kHz) denoises Gaussian noise into its band, conditioned on the latent, in 20 steps of the
   power noise schedule; the bands are summed;
3. the sum is equalised to the EnCodec decoding over 32 mel bands (audiocraft's ``tokens_to_wav``).

The output has exactly ``frames * hop`` samples (hop 640 at 32 kHz). Noise comes from one
``torch.Generator`` per batch item seeded from the request seed, so a seed gives the same audio whatever
else is in the batch (the equaliser is per item too; audiocraft pools it over the batch).

Weights: the published checkpoint (hub id, folder or file, read by :mod:`.mbd_checkpoint`) or ``tiny-random``
(random bands built in code, for tests and benchmarks).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from musicgen_ops.pipeline.inference.decoders.mbd_checkpoint import (
    MBD_HUB_ID,
    TINY_RANDOM,
    DiffusionBand,
    bands_from_checkpoint,
    build_random_bands,
    load_mbd_checkpoint,
)
from musicgen_ops.pipeline.inference.decoders.mbd_schedule import (
    DEFAULT_SAMPLING_STEPS,
    sample_band,
    step_list,
)

__all__ = ["DEFAULT_EQ_BANDS", "MultiBandDiffusionDecoder", "mbd_decoder_factory"]

#: Bands of the EnCodec-matching equaliser applied after diffusion (0 turns it off).
DEFAULT_EQ_BANDS = 32


class MultiBandDiffusionDecoder:
    """An ``AudioDecoder``: undelayed codes ``(batch, K, frames)`` -> float32 ``(batch, 1, frames * hop)``.

    Args:
        bands: the diffusion bands (4 for the published model).
        audio_encoder: the MusicGen's EnCodec (transformers ``EncodecModel``): latent and equaliser reference.
        num_codebooks: codebooks per frame.
        sampling_steps: network calls per band (20 as published; fewer is faster and rougher).
        eq_bands: mel bands of the equaliser matching the EnCodec decoding; 0 turns it off.
    """

    name = "mbd"
    channels = 1
    #: ``decode`` takes ``seeds=`` (one per item): engines pass the request seeds (see ``decode_codes``).
    seeded = True

    def __init__(
        self,
        bands: Sequence[DiffusionBand],
        audio_encoder: nn.Module,
        num_codebooks: int,
        sampling_steps: int = DEFAULT_SAMPLING_STEPS,
        eq_bands: int = DEFAULT_EQ_BANDS,
    ) -> None:
        if not bands:
            raise ValueError("MBD needs at least one diffusion band")
        if eq_bands < 0:
            raise ValueError(f"eq_bands must be 0 (off) or more, got {eq_bands}")
        codec_config = audio_encoder.config
        self.sample_rate = int(codec_config.sampling_rate)
        self.hop_length = int(torch.tensor(codec_config.upsampling_ratios).prod())
        self.bands = list(bands)
        self.audio_encoder = audio_encoder
        self.num_codebooks = int(num_codebooks)
        self.eq_bands = int(eq_bands)
        self.steps = step_list(self.bands[0].schedule.num_steps, sampling_steps)
        self.device = next(audio_encoder.parameters()).device
        for band in self.bands:
            band.model.to(self.device).eval()
            band.processor.to(self.device)

    @classmethod
    def from_musicgen(
        cls,
        model: Any,
        weights: str | Path = MBD_HUB_ID,
        *,
        sampling_steps: int = DEFAULT_SAMPLING_STEPS,
        eq_bands: int = DEFAULT_EQ_BANDS,
        local_files_only: bool | None = None,
    ) -> MultiBandDiffusionDecoder:
        """MBD over a loaded MusicGen's codec; ``weights``: hub id, folder, file or ``tiny-random``."""
        decoder_config = model.config.decoder
        if int(getattr(decoder_config, "audio_channels", 1)) != 1:
            raise ValueError(
                "decoder 'mbd': MultiBand Diffusion decodes mono MusicGen only (this model is stereo)"
            )
        codec = model.audio_encoder
        if str(weights) == TINY_RANDOM:
            bands = build_random_bands(codec_dim=int(codec.config.codebook_dim), sample_rate=_rate(codec))
        else:
            checkpoint, where = load_mbd_checkpoint(weights, local_files_only=local_files_only)
            bands = bands_from_checkpoint(checkpoint, where, expected_sample_rate=_rate(codec))
        return cls(bands, codec, int(decoder_config.num_codebooks), sampling_steps, eq_bands)

    @torch.inference_mode()
    def latent(self, codes: torch.Tensor) -> torch.Tensor:
        """The codec's continuous latent ``(batch, D, frames)``: the sum of the codebook entries."""
        return self.audio_encoder.quantizer.decode(codes.to(self.device).transpose(0, 1))

    @torch.inference_mode()
    def decode(
        self, codes: torch.LongTensor, seeds: int | Sequence[int | None] | None = None
    ) -> torch.FloatTensor:
        """Diffusion-decode ``codes``; ``seeds`` (one per item, or one int for item ``b`` -> ``seed + b``)."""
        if codes.ndim != 3 or codes.shape[1] != self.num_codebooks or codes.shape[2] < 1:
            raise ValueError(
                f"codes must be (batch, {self.num_codebooks}, frames>=1), got shape {tuple(codes.shape)}"
            )
        self._follow_codec()
        batch, _, frames = codes.shape
        generators = _generators(batch, seeds)
        condition = self.latent(codes).float()
        shape = (batch, self.channels, frames * self.hop_length)
        audio = torch.zeros(shape, device=self.device)
        for band in self.bands:
            audio += sample_band(
                band.model, band.schedule, band.processor, condition, shape, generators, self.steps
            )
        if self.eq_bands:
            audio = self.equalise(audio, self._encodec_reference(codes, shape[-1]))
        return audio.float()

    @property
    def memory_bytes(self) -> int:
        """Bytes of the diffusion bands (the codec belongs to the engine's model)."""
        tensors = [
            t for band in self.bands for m in (band.model, band.processor) for t in m.state_dict().values()
        ]
        return sum(t.numel() * t.element_size() for t in tensors)

    def _follow_codec(self) -> None:
        """Move the bands to the codec's device (an engine may move the codec after building this)."""
        device = next(self.audio_encoder.parameters()).device
        if device != self.device:
            for band in self.bands:
                band.model.to(device)
                band.processor.to(device)
            self.device = device

    @torch.inference_mode()
    def _encodec_reference(self, codes: torch.Tensor, samples: int) -> torch.Tensor:
        reference = self.audio_encoder.decode(codes.to(self.device)[None], [None]).audio_values
        reference = reference[..., :samples].float()  # the codec may run in half precision
        return nn.functional.pad(reference, (0, samples - reference.shape[-1]))

    def equalise(
        self, audio: torch.Tensor, reference: torch.Tensor, n_bands: int | None = None
    ) -> torch.Tensor:
        """Match each mel band's level (standard deviation, per item) to ``reference``'s."""
        import julius

        n_bands = n_bands or self.eq_bands or DEFAULT_EQ_BANDS
        split = julius.SplitBands(self.sample_rate, n_bands=n_bands).to(audio.device)
        bands, reference_bands = split(audio), split(reference)
        gains = reference_bands.std(dim=(2, 3), keepdim=True) / bands.std(dim=(2, 3), keepdim=True).clamp(
            min=1e-12
        )
        return (bands * gains).sum(dim=0)


def _rate(codec: nn.Module) -> int:
    return int(codec.config.sampling_rate)


def _generators(batch: int, seeds: int | Sequence[int | None] | None) -> list[torch.Generator]:
    if seeds is None or isinstance(seeds, int):
        seeds = [None if seeds is None else seeds + index for index in range(batch)]
    if len(seeds) != batch:
        raise ValueError(f"got {len(seeds)} seeds for a batch of {batch}")
    generators = []
    for seed in seeds:
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        generators.append(generator)
    return generators


def mbd_decoder_factory(
    *,
    model: Any = None,
    device: str | torch.device = "cpu",
    weights: str | Path = MBD_HUB_ID,
    sampling_steps: int = DEFAULT_SAMPLING_STEPS,
    eq_bands: int = DEFAULT_EQ_BANDS,
    local_files_only: bool | None = None,
) -> MultiBandDiffusionDecoder:
    """``register_decoder("mbd", mbd_decoder_factory)``: MBD over the loaded MusicGen's codec.

    ``device`` is where the codec already lives (the decoder follows the codec's device).
    """
    if model is None:
        raise ValueError(
            "decoder 'mbd' needs the loaded MusicGen model (its EnCodec gives the latent); exported engines "
            "(onnx, torchscript) decode with EnCodec only"
        )
    return MultiBandDiffusionDecoder.from_musicgen(
        model, weights, sampling_steps=sampling_steps, eq_bands=eq_bands, local_files_only=local_files_only
    )
