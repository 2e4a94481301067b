"""Chroma features of a melody and the melody processor (tokenizer + chroma), without torchaudio.

Transformers' ``MusicgenMelodyFeatureExtractor`` needs ``torchaudio``; :class:`ChromaExtractor` computes the
same features with ``torch.stft`` (the same Hann window, reflect padding, window normalisation and
librosa chroma filter bank) and reads and writes the ``preprocessor_config.json`` of a real checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

FEATURE_EXTRACTOR_TYPE = "MusicgenMelodyFeatureExtractor"
PROCESSOR_CLASS = "MusicgenMelodyProcessor"


@dataclass
class ChromaExtractor:
    """Chroma features (``[batch, frames, num_chroma]``, one-hot per frame) of 32 kHz mono audio.

    The fields are those of ``MusicgenMelodyFeatureExtractor``'s ``preprocessor_config.json``.
    """

    sampling_rate: int = 32_000
    n_fft: int = 16_384
    hop_length: int = 4096
    chunk_length: int = 30
    num_chroma: int = 12
    padding_value: float = 0.0

    @property
    def n_samples(self) -> int:
        """Longest input in samples; longer audio is cut (``chunk_length`` seconds)."""
        return self.chunk_length * self.sampling_rate

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ChromaExtractor:
        """From a ``preprocessor_config.json`` (unknown keys ignored)."""
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        """The ``preprocessor_config.json`` transformers' melody feature extractor reads."""
        return {
            "feature_extractor_type": FEATURE_EXTRACTOR_TYPE,
            "processor_class": PROCESSOR_CLASS,
            "feature_size": self.num_chroma,
            "sampling_rate": self.sampling_rate,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "chunk_length": self.chunk_length,
            "num_chroma": self.num_chroma,
            "padding_value": self.padding_value,
            "padding_side": "right",
            "return_attention_mask": False,
            "stem_indices": [3, 2],
        }

    def __call__(self, audio: list[np.ndarray]) -> torch.Tensor:
        """Chroma of each mono waveform (at ``sampling_rate``), zero-padded to the longest and cut to
        ``chunk_length`` seconds, as transformers' extractor does."""
        import torch
        from transformers.audio_utils import chroma_filter_bank

        if not audio:
            raise ValueError("no melody audio given")
        clips = [np.asarray(a, dtype=np.float32).reshape(-1)[: self.n_samples] for a in audio]
        length = max(len(c) for c in clips)
        batch = torch.full((len(clips), length), float(self.padding_value))
        for row, clip in enumerate(clips):
            batch[row, : len(clip)] = torch.from_numpy(clip)
        if length < self.n_fft:  # too short for one window: centre it in zeros
            pad = self.n_fft - length
            batch = torch.nn.functional.pad(batch, (pad // 2, pad - pad // 2))
        window = torch.hann_window(self.n_fft)
        spec = torch.stft(
            batch,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        spec = (spec / window.pow(2).sum().sqrt()).abs().pow(2)  # torchaudio's normalized=True, power 2
        filters = torch.from_numpy(
            chroma_filter_bank(
                sampling_rate=self.sampling_rate,
                num_frequency_bins=self.n_fft,
                tuning=0,
                num_chroma=self.num_chroma,
            )
        ).float()
        raw = torch.einsum("cf,...ft->...ct", filters, spec)
        norm = torch.nn.functional.normalize(raw, p=float("inf"), dim=-2, eps=1e-6).transpose(1, 2)
        one_hot = torch.zeros_like(norm)
        one_hot.scatter_(-1, norm.argmax(-1, keepdim=True), 1.0)
        return one_hot


class MelodyProcessor:
    """Tokenizer + :class:`ChromaExtractor`: what ``MusicgenMelodyProcessor`` does, without torchaudio.

    ``processor(text=[...], melody=[...])`` gives ``input_ids``, ``attention_mask`` and, with melodies,
    ``input_features``; ``save_pretrained`` writes files transformers' processor loads.
    """

    def __init__(self, tokenizer: Any, feature_extractor: ChromaExtractor | None = None) -> None:
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor or ChromaExtractor()

    def __call__(
        self,
        text: list[str] | None = None,
        *,
        melody: list[np.ndarray] | None = None,
        audio: Any = None,
        padding: bool = True,
        return_tensors: str = "pt",
        **kwargs: Any,
    ) -> dict[str, Any]:
        if audio is not None:
            raise NotImplementedError(
                "a musicgen-melody model takes audio as a melody (chroma), not as an audio prompt to continue"
            )
        inputs = dict(self.tokenizer(text, padding=padding, return_tensors=return_tensors))
        if melody is not None:
            inputs["input_features"] = self.feature_extractor(list(melody))
        return inputs

    def save_pretrained(self, folder: str | Path, **kwargs: Any) -> None:
        """Write the tokenizer and ``preprocessor_config.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder))
        (folder / "preprocessor_config.json").write_text(
            json.dumps(self.feature_extractor.to_dict(), indent=2)
        )

    @classmethod
    def from_pretrained(cls, source: str, **kwargs: Any) -> MelodyProcessor:
        """The tokenizer and chroma settings of a melody checkpoint (folder or hub id)."""
        from transformers import AutoTokenizer
        from transformers.feature_extraction_utils import FeatureExtractionMixin

        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        values, _ = FeatureExtractionMixin.get_feature_extractor_dict(source, **kwargs)
        return cls(tokenizer, ChromaExtractor.from_dict(values))
