"""MusicGen's codebook delay pattern, shared by training (labels) and every generation engine.

MusicGen predicts K EnCodec codebooks in parallel, codebook ``k`` delayed by ``k`` steps, so that step
``t`` sees codebook 0 of frame ``t`` together with codebook ``k`` of frame ``t - k``. Positions outside a
codebook's frames hold the pad token (2048 in every MusicGen checkpoint), which the loss ignores.

Stereo checkpoints interleave the two channels' codebooks (left on even rows, right on odd rows) and
delay each pair together: codebook ``k`` is delayed by ``k // 2`` steps, as transformers'
``build_delay_pattern_mask`` does for ``audio_channels == 2``. ``channels`` selects the pattern.
"""

from __future__ import annotations

import torch


def codebook_delays(num_codebooks: int, channels: int = 1) -> list[int]:
    """The delay (in steps) of each codebook: ``k`` for mono, ``k // 2`` for stereo."""
    if channels < 1 or num_codebooks % channels:
        raise ValueError(f"{num_codebooks} codebooks cannot be split into {channels} channels")
    return [k // channels for k in range(num_codebooks)]


def delay_span(num_codebooks: int, channels: int = 1) -> int:
    """Steps beyond the frames that a delayed sequence needs (``K - 1`` mono, ``K / 2 - 1`` stereo)."""
    return max(codebook_delays(num_codebooks, channels))


def apply_delay_pattern(codes: torch.Tensor, pad_token_id: int, channels: int = 1) -> torch.Tensor:
    """Delay codebook ``k`` by its delay (``k`` steps mono, ``k // 2`` stereo).

    Args:
        codes: integer codes shaped ``[batch, num_codebooks, frames]``.
        pad_token_id: the value written where a codebook has no frame.
        channels: 1 (mono) or 2 (stereo, interleaved codebooks).

    Returns:
        ``[batch, num_codebooks, frames + delay_span]``.
    """
    batch, num_codebooks, frames = codes.shape
    delays = codebook_delays(num_codebooks, channels)
    delayed = codes.new_full((batch, num_codebooks, frames + max(delays)), pad_token_id)
    for k, delay in enumerate(delays):
        delayed[:, k, delay : delay + frames] = codes[:, k]
    return delayed


def revert_delay_pattern(delayed: torch.Tensor, channels: int = 1) -> torch.Tensor:
    """Undo :func:`apply_delay_pattern`: ``[B, K, S]`` delayed steps -> ``[B, K, S - span]`` frames."""
    batch, num_codebooks, steps = delayed.shape
    delays = codebook_delays(num_codebooks, channels)
    frames = steps - max(delays)
    if frames < 1:
        raise ValueError(f"{steps} delayed steps hold no complete frame for {num_codebooks} codebooks")
    return torch.stack([delayed[:, k, d : d + frames] for k, d in enumerate(delays)], dim=1)


def delay_pattern_mask(
    num_codebooks: int, steps: int, device: torch.device | None = None, channels: int = 1
) -> torch.Tensor:
    """Boolean ``[K, steps]``: True where codebook ``k`` is past its delay at step ``t``."""
    k = torch.tensor(codebook_delays(num_codebooks, channels), device=device)[:, None]
    t = torch.arange(steps, device=device)[None, :]
    return t >= k


def check_prefix_codes(prefix: object, *, batch: int, num_codebooks: int, vocab_size: int) -> torch.Tensor:
    """A code prefix (codes a generation continues) as int64 ``[batch, num_codebooks, frames]``.

    Raises:
        ValueError: wrong shape, no frame, or a code outside ``0..vocab_size - 1``.
    """
    codes = torch.as_tensor(prefix).detach().cpu()
    if codes.ndim != 3 or codes.shape[0] != batch or codes.shape[1] != num_codebooks:
        raise ValueError(
            f"prefix_codes must be [batch={batch}, codebooks={num_codebooks}, frames], "
            f"got {tuple(codes.shape)}"
        )
    if codes.shape[2] < 1:
        raise ValueError("prefix_codes holds no frame")
    if codes.is_floating_point() or codes.is_complex():
        raise ValueError(f"prefix_codes must be integer codes, got {codes.dtype}")
    codes = codes.long()
    if int(codes.min()) < 0 or int(codes.max()) >= vocab_size:
        raise ValueError(f"prefix_codes must lie within 0..{vocab_size - 1}")
    return codes
