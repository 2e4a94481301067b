"""The codebook delay pattern and its inverse."""

from __future__ import annotations

import torch

from musicgen_ops.pipeline.codes import apply_delay_pattern, delay_pattern_mask, revert_delay_pattern


def test_delay_then_revert_is_identity():
    codes = torch.randint(0, 2048, (2, 4, 7))
    delayed = apply_delay_pattern(codes, pad_token_id=2048)
    assert delayed.shape == (2, 4, 10)
    assert torch.equal(revert_delay_pattern(delayed), codes)


def test_codebook_k_is_shifted_by_k():
    codes = torch.arange(12).reshape(1, 4, 3)
    delayed = apply_delay_pattern(codes, pad_token_id=-1)
    assert delayed[0, 2].tolist() == [-1, -1, 6, 7, 8, -1]
    assert torch.equal(delay_pattern_mask(4, 6)[2], torch.tensor([False, False, True, True, True, True]))
