"""An audio prompt as codes: EnCodec-encode a clip once, to be continued as a generation's code prefix.

audiocraft's ``generate_continuation`` encodes the prompt with the compression model and hands the
codes to the language model as its prompt tokens; Hugging Face's ``generate(input_values=...)`` does
the same with ``audio_encoder.encode``. Here both the torch and the fast engine share this encoder,
so a prompt becomes the same codes on either, and long tracks continue codes, never re-encoded audio.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def encode_audio_prompt(
    audio_encoder: Any, audio: np.ndarray, *, hop_length: int, num_codebooks: int, device: torch.device
) -> np.ndarray:
    """Mono float32 ``[batch, samples]`` at the codec's rate -> int64 ``[batch, num_codebooks, frames]``.

    The clip is cut to whole codec frames (at most ``hop_length - 1`` samples dropped from its end).
    A stereo model (twice the codec's codebooks, interleaved left/right) gets the mono clip on both
    channels.

    Raises:
        ValueError: not ``[batch, samples]``, or shorter than one codec frame.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] < 1:
        raise ValueError(f"an audio prompt must be float32 [batch, samples], got shape {audio.shape}")
    frames = audio.shape[1] // hop_length
    if frames < 1:
        raise ValueError(
            f"the audio prompt is shorter than one codec frame ({audio.shape[1]} < {hop_length} samples)"
        )
    values = torch.from_numpy(np.ascontiguousarray(audio[:, : frames * hop_length]))[:, None].to(device)
    with torch.inference_mode():
        codes = audio_encoder.encode(values, return_dict=True).audio_codes[0]  # [batch, codec books, frames]
    if codes.shape[1] * 2 == num_codebooks:  # stereo: left and right codebooks interleaved
        codes = torch.stack([codes, codes], dim=2).flatten(1, 2)
    if codes.shape[1] != num_codebooks:
        raise ValueError(f"the codec gave {codes.shape[1]} codebooks, the model predicts {num_codebooks}")
    return codes[..., :frames].long().cpu().numpy()
