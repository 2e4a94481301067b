"""The MultiBand Diffusion denoiser: a 1-D convolutional U-Net conditioned on the EnCodec latent.

Written from the paper ("From Discrete Tokens to High-Fidelity Audio Using Multi-Band Diffusion", San Roman
et al., 2023) and audiocraft's ``DiffusionUnet``, with the same module and parameter names so that the
published ``facebook/multiband-diffusion`` state dicts load key for key:

* ``encoders.{i}`` strided conv + GroupNorm + ReLU + dilated residual blocks, ``decoders.{i}`` the mirror
  with transposed convs; skip connections add encoder outputs to decoder inputs;
* ``embedding`` (and ``embeddings.{i}`` with ``emb_all_layers``): the diffusion step, added per layer;
* ``conv_codec``: a 1x1 conv taking the EnCodec latent to the bottleneck width, stretched to its length;
* the bottleneck: a post-norm ``transformer`` (6 layers, 8 heads, sinusoidal positions), a ``bilstm``, or
  nothing (then the bottleneck is zeroed, as in audiocraft).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

#: Fixed by audiocraft's ``DiffusionUnet`` (not part of the saved config).
TRANSFORMER_HEADS = 8
TRANSFORMER_LAYERS = 6
TRANSFORMER_FEEDFORWARD = 2048


@dataclass(frozen=True)
class UnetConfig:
    """``cfg.diffusion_unet`` of an MBD checkpoint: the denoiser's shape (names as audiocraft saves them)."""

    hidden: int = 48
    depth: int = 4
    growth: float = 4.0
    max_channels: int = 10_000
    kernel: int = 8
    stride: int = 4
    norm_groups: int = 4
    res_blocks: int = 1
    dropout: float = 0.0
    emb_all_layers: bool = True
    bilstm: bool = False
    transformer: bool = False
    cross_attention: bool = False
    codec_dim: int | None = None

    @classmethod
    def from_dict(cls, values: dict, where: str = "diffusion_unet") -> UnetConfig:
        """Build from a saved config; an unknown key is an error naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)


class ResBlock(nn.Module):
    """Pre-activation residual block of two dilated convs."""

    def __init__(self, channels: int, kernel: int = 3, norm_groups: int = 4, dilation: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel - 1) // 2
        self.norm1 = nn.GroupNorm(norm_groups, channels)
        self.conv1 = nn.Conv1d(channels, channels, kernel, 1, padding, dilation=dilation)
        self.norm2 = nn.GroupNorm(norm_groups, channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel, 1, padding, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.norm1(x)))
        h = self.conv2(F.relu(self.norm2(h)))
        return x + h


def _res_blocks(channels: int, count: int, norm_groups: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(channels, norm_groups=norm_groups, dilation=2**i) for i in range(count)])


class EncoderLayer(nn.Module):
    """Strided conv down by ``stride`` (input right-padded to a multiple), norm, ReLU, residual blocks."""

    def __init__(self, chin: int, chout: int, config: UnetConfig) -> None:
        super().__init__()
        padding = (config.kernel - config.stride) // 2
        self.conv = nn.Conv1d(chin, chout, config.kernel, config.stride, padding, bias=False)
        self.norm = nn.GroupNorm(config.norm_groups, chout)
        self.res_blocks = _res_blocks(chout, config.res_blocks, config.norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (stride,) = self.conv.stride
        x = F.pad(x, (0, (stride - x.shape[-1] % stride) % stride))
        return self.res_blocks(F.relu(self.norm(self.conv(x))))


class DecoderLayer(nn.Module):
    """Residual blocks, norm, ReLU, transposed conv up by ``stride``."""

    def __init__(self, chin: int, chout: int, config: UnetConfig) -> None:
        super().__init__()
        padding = (config.kernel - config.stride) // 2
        self.res_blocks = _res_blocks(chin, config.res_blocks, config.norm_groups)
        self.norm = nn.GroupNorm(config.norm_groups, chin)
        self.convtr = nn.ConvTranspose1d(chin, chout, config.kernel, config.stride, padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convtr(F.relu(self.norm(self.res_blocks(x))))


class BLSTM(nn.Module):
    """Two-layer bidirectional LSTM over time, projected back to the input width."""

    def __init__(self, dim: int, layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(bidirectional=True, num_layers=layers, hidden_size=dim, input_size=dim)
        self.linear = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(self.lstm(x.permute(2, 0, 1))[0])
        return out.permute(1, 2, 0)


def sin_embedding(length: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoidal positions ``(1, length, dim)``: cosines then sines, max period 10 000."""
    half = dim // 2
    positions = torch.arange(length, device=device, dtype=dtype).view(1, -1, 1)
    scale = torch.arange(half, device=device, dtype=dtype).view(1, 1, -1) / (half - 1)
    phase = positions / (10_000.0**scale)
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


class _Attention(nn.Module):
    """torch's multi-head attention under the name ``mha`` (the published keys are ``self_attn.mha.*``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, bias=False, batch_first=True)

    def forward(self, query: torch.Tensor, key_value: torch.Tensor) -> torch.Tensor:
        return self.mha(query, key_value, key_value, need_weights=False)[0]


class TransformerLayer(nn.Module):
    """Post-norm transformer layer (self-attention, optional cross-attention, ReLU feed-forward)."""

    def __init__(self, dim: int, cross_attention: bool) -> None:
        super().__init__()
        self.self_attn = _Attention(dim, TRANSFORMER_HEADS)
        self.linear1 = nn.Linear(dim, TRANSFORMER_FEEDFORWARD, bias=False)
        self.linear2 = nn.Linear(TRANSFORMER_FEEDFORWARD, dim, bias=False)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.cross_attention = _Attention(dim, TRANSFORMER_HEADS) if cross_attention else None
        self.norm_cross = nn.LayerNorm(dim, eps=1e-5) if cross_attention else None

    def forward(self, src: torch.Tensor, cross_source: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(src + self.self_attn(src, src))
        if self.cross_attention is not None and self.norm_cross is not None:
            # audiocraft's post-norm layer queries the cross-attention with the layer's input.
            x = self.norm_cross(x + self.cross_attention(src, cross_source))
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class BottleneckTransformer(nn.Module):
    """Sinusoidal positions then :data:`TRANSFORMER_LAYERS` post-norm layers, ``(batch, time, dim)``."""

    def __init__(self, dim: int, cross_attention: bool) -> None:
        super().__init__()
        if dim % TRANSFORMER_HEADS:
            raise ValueError(
                f"diffusion_unet: bottleneck width {dim} is not divisible by {TRANSFORMER_HEADS}"
            )
        self.layers = nn.ModuleList(TransformerLayer(dim, cross_attention) for _ in range(TRANSFORMER_LAYERS))

    def forward(self, x: torch.Tensor, cross_source: torch.Tensor | None = None) -> torch.Tensor:
        x = x + sin_embedding(x.shape[1], x.shape[2], x.device, x.dtype)
        for layer in self.layers:
            x = layer(x, cross_source)
        return x


class DiffusionUnet(nn.Module):
    """Predicts the noise in a band's noisy waveform ``(batch, channels, samples)`` at a diffusion step.

    Args:
        channels: audio channels (1 for MusicGen's MBD).
        num_steps: diffusion steps of the schedule (size of the step embedding).
        config: the ``diffusion_unet`` block of the checkpoint's config.
    """

    def __init__(self, channels: int, num_steps: int, config: UnetConfig) -> None:
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.embedding = nn.Embedding(num_steps, config.hidden)
        self.embeddings = nn.ModuleList() if config.emb_all_layers else None
        chin, hidden = channels, config.hidden
        for depth in range(config.depth):
            self.encoders.append(EncoderLayer(chin, hidden, config))
            self.decoders.insert(0, DecoderLayer(hidden, chin, config))
            if self.embeddings is not None and depth > 0:
                self.embeddings.append(nn.Embedding(num_steps, hidden))
            chin, hidden = hidden, min(int(hidden * config.growth), config.max_channels)
        self.bilstm = BLSTM(chin) if config.bilstm else None
        self.transformer = BottleneckTransformer(chin, config.cross_attention) if config.transformer else None
        self.conv_codec = nn.Conv1d(config.codec_dim, chin, 1) if config.codec_dim is not None else None

    @property
    def downsampling(self) -> int:
        """Samples per bottleneck step."""
        return self.config.stride**self.config.depth

    def forward(self, x: torch.Tensor, step: int, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Noise in ``x`` at diffusion ``step``, given the codec latent ``(batch, codec_dim, frames)``."""
        batch = x.shape[0]
        steps = torch.full((batch,), step, device=x.device, dtype=torch.long)
        skips = []
        z = x
        for index, encoder in enumerate(self.encoders):
            z = encoder(z)
            if index == 0:
                z = z + self.embedding(steps)[:, :, None]
            elif self.embeddings is not None:
                z = z + self.embeddings[index - 1](steps)[:, :, None]
            skips.append(z)
        cross_source = None
        if self.conv_codec is not None:
            if condition is None:
                raise ValueError("this diffusion model is conditional: pass the codec latent")
            condition_emb = self.conv_codec(condition)
            if condition_emb.shape[-1] > 2 * z.shape[-1]:
                raise ValueError(
                    f"codec latent ({condition_emb.shape[-1]} frames) is longer than twice the bottleneck "
                    f"({z.shape[-1]} steps): the U-Net downsamples more than the codec"
                )
            if self.config.cross_attention:
                cross_source = condition_emb.permute(0, 2, 1)
                cross_source = cross_source + sin_embedding(
                    cross_source.shape[1], cross_source.shape[2], x.device, x.dtype
                )
            else:
                z = z + F.interpolate(condition_emb, z.shape[-1])
                # audiocraft adds in place, so the deepest skip connection carries the condition too.
                skips[-1] = z
        if self.transformer is not None:
            z = self.transformer(z.permute(0, 2, 1), cross_source).permute(0, 2, 1)
        elif self.bilstm is not None:
            z = self.bilstm(z)
        else:
            z = torch.zeros_like(z)
        for decoder in self.decoders:
            skip = skips.pop()
            z = decoder(z[:, :, : skip.shape[-1]] + skip)
        return z[:, :, : x.shape[-1]]

    def load_published_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a published state dict strictly; older files name attention weights without ``mha.``."""
        renamed = {}
        for key, value in state.items():
            for attention in (".self_attn.", ".cross_attention."):
                if attention in key and ".mha." not in key:
                    key = key.replace(attention, f"{attention}mha.")
            renamed[key] = value
        result = self.load_state_dict(renamed, strict=False)
        problems = []
        if result.missing_keys:
            problems.append(f"missing {_sample(result.missing_keys)}")
        if result.unexpected_keys:
            problems.append(f"unexpected {_sample(result.unexpected_keys)}")
        if problems:
            raise KeyError("; ".join(problems))


def _sample(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} key(s): {shown}" + (", ..." if len(keys) > limit else "")


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (for logs)."""
    return sum(p.numel() for p in module.parameters())
