"""MusicGen's codebook delay pattern, shared by training (labels) and every generation engine.

MusicGen predicts K EnCodec codebooks in parallel, codebook ``k`` delayed by ``k`` steps, so that step
``t`` sees codebook 0 of frame ``t`` together with codebook ``k`` of frame ``t - k``. Positions outside a
codebook's frames hold the pad token (2048 in every MusicGen checkpoint), which the loss ignores.
"""

from __future__ import annotations

import torch


def apply_delay_pattern(codes: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Delay codebook ``k`` by ``k`` steps.

    Args:
        codes: integer codes shaped ``[batch, num_codebooks, frames]``.
        pad_token_id: the value written where a codebook has no frame.

    Returns:
        ``[batch, num_codebooks, frames + num_codebooks - 1]``.
    """
    batch, num_codebooks, frames = codes.shape
    delayed = codes.new_full((batch, num_codebooks, frames + num_codebooks - 1), pad_token_id)
    for k in range(num_codebooks):
        delayed[:, k, k : k + frames] = codes[:, k]
    return delayed


def revert_delay_pattern(delayed: torch.Tensor) -> torch.Tensor:
    """Undo :func:`apply_delay_pattern`: ``[B, K, S]`` delayed steps -> ``[B, K, S - K + 1]`` frames."""
    batch, num_codebooks, steps = delayed.shape
    frames = steps - num_codebooks + 1
    if frames < 1:
        raise ValueError(f"{steps} delayed steps hold no complete frame for {num_codebooks} codebooks")
    return torch.stack([delayed[:, k, k : k + frames] for k in range(num_codebooks)], dim=1)


def delay_pattern_mask(num_codebooks: int, steps: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean ``[K, steps]``: True where codebook ``k`` is inside its frames at step ``t`` (``t >= k``)."""
    k = torch.arange(num_codebooks, device=device)[:, None]
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
