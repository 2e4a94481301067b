"""MusicGen training data: prompts tokenised, clips encoded to EnCodec codes (cached), batches collated.

Encoding audio with the codec is the slow part, so codes are cached on disk under
``<data_dir>/.codes-cache/<model-key>/<clip sha256>.pt``; the model key is a fingerprint of the codec's
weights, so a different codec never reads stale codes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from musicgen_ops.pipeline.codes import apply_delay_pattern
from musicgen_ops.pipeline.errors import DatasetError
from musicgen_ops.pipeline.manifest import MANIFEST_NAME, ManifestEntry, read_manifest, sha256_file

if TYPE_CHECKING:
    from transformers import MusicgenForConditionalGeneration, MusicgenProcessor

logger = logging.getLogger(__name__)

CACHE_DIR = ".codes-cache"
IGNORE_INDEX = -100


def codec_fingerprint(model: MusicgenForConditionalGeneration) -> str:
    """A short hash of the audio codec's weights (the code cache's key)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.audio_encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class MusicGenDataset(Dataset):
    """Items ready for MusicGen's loss: ``input_ids``, ``attention_mask`` and ``codes`` ``[K, T]``."""

    def __init__(
        self,
        data_dir: Path,
        entries: list[ManifestEntry],
        processor: MusicgenProcessor,
        model: MusicgenForConditionalGeneration,
        max_duration_seconds: float = 30.0,
    ) -> None:
        if not entries:
            raise DatasetError(f"the dataset in {data_dir} is empty: its manifest lists no clips")
        if max_duration_seconds <= 0:
            raise DatasetError(f"max_duration_seconds must be positive, got {max_duration_seconds}")
        self.data_dir = Path(data_dir)
        self.entries = entries
        self.processor = processor
        self.max_frames = max(1, int(max_duration_seconds * model.config.audio_encoder.frame_rate))
        self.num_codebooks = int(model.config.decoder.num_codebooks)
        self.manifest_sha256 = sha256_file(self.data_dir / MANIFEST_NAME)
        self.model_key = codec_fingerprint(model)
        self.cache_dir = self.data_dir / CACHE_DIR / self.model_key
        missing = [e.audio for e in entries if not (self.data_dir / e.audio).is_file()]
        if missing:
            raise DatasetError(
                f"the manifest in {data_dir} lists {len(missing)} missing file(s), e.g. {missing[0]}; "
                "re-run `musicgen-ops preprocess` or fix manifest.json"
            )
        self._codes = [self._load_or_encode(entry, model) for entry in entries]
        self._text = [processor.tokenizer(e.prompt, truncation=True, return_tensors="pt") for e in entries]

    @classmethod
    def from_directory(
        cls,
        data_dir: str | Path,
        processor: MusicgenProcessor,
        model: MusicgenForConditionalGeneration,
        max_duration_seconds: float = 30.0,
    ) -> MusicGenDataset:
        """Read ``<data_dir>/manifest.json`` and encode (or load cached) codes for every clip."""
        data_dir = Path(data_dir)
        return cls(data_dir, read_manifest(data_dir), processor, model, max_duration_seconds)

    def _load_or_encode(self, entry: ManifestEntry, model: MusicgenForConditionalGeneration) -> torch.Tensor:
        cached = self.cache_dir / f"{entry.sha256}.pt"
        codes = self._read_cache(cached)
        if codes is None:
            logger.debug("encoding %s", entry.audio)
            codes = encode_audio_file(self.data_dir / entry.audio, self.processor, model)
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{cached.stem}.", suffix=".tmp", dir=cached.parent)
            os.close(fd)
            try:
                torch.save(codes, tmp)
                os.replace(tmp, cached)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return codes[..., : self.max_frames]

    def _read_cache(self, cached: Path) -> torch.Tensor | None:
        """Cached codes, or None when absent or unusable (then they are encoded again)."""
        if not cached.is_file():
            return None
        try:
            codes = torch.load(cached, weights_only=True)
        except Exception as err:  # a truncated or foreign file: re-encode rather than fail
            logger.warning("ignoring unreadable code cache %s: %s", cached, err)
            return None
        if not isinstance(codes, torch.Tensor) or codes.ndim != 2 or codes.shape[0] != self.num_codebooks:
            logger.warning("ignoring code cache %s with unexpected shape", cached)
            return None
        return codes

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        text = self._text[index]
        return {
            "input_ids": text["input_ids"][0],
            "attention_mask": text["attention_mask"][0],
            "codes": self._codes[index],
            "prompt": self.entries[index].prompt,
            "audio": self.entries[index].audio,
        }


def encode_audio_file(
    path: Path, processor: MusicgenProcessor, model: MusicgenForConditionalGeneration
) -> torch.Tensor:
    """EnCodec codes ``[K, T]`` of a mono clip at the codec's sample rate."""
    import soundfile as sf

    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read clip ({err}); re-run `musicgen-ops preprocess`") from err
    if audio.size == 0:
        raise DatasetError(f"{path}: clip has no samples; re-run `musicgen-ops preprocess`")
    expected = model.config.audio_encoder.sampling_rate
    if rate != expected:
        raise DatasetError(f"{path} is {rate} Hz, the codec needs {expected} Hz: preprocess it first")
    mono = np.ascontiguousarray(audio.mean(axis=1))
    inputs = processor.feature_extractor(mono, sampling_rate=rate, return_tensors="pt")
    codec = model.audio_encoder
    with torch.no_grad():
        values = inputs["input_values"].to(codec.device, codec.dtype)
        encoded = codec.encode(values, inputs["padding_mask"].to(codec.device))
    return encoded.audio_codes[0, 0].to("cpu", torch.long)  # [1, B, K, T] -> [K, T]


class MusicGenCollator:
    """Pad prompts and codes into a batch; labels carry MusicGen's delay pattern.

    Returns ``input_ids`` ``[B, L]``, ``attention_mask`` ``[B, L]`` and ``labels`` ``[B, S, K]`` where
    ``S = T_max + K - 1``: delayed codes, the pad token where a codebook has no frame (the loss ignores
    it) and ``-100`` where an item is shorter than the longest in the batch.
    """

    def __init__(self, text_pad_token_id: int, audio_pad_token_id: int = 2048) -> None:
        self.text_pad_token_id = text_pad_token_id
        self.audio_pad_token_id = audio_pad_token_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        if len({item["codes"].shape[0] for item in items}) != 1:
            raise ValueError("every item in a batch must have the same number of codebooks")
        text_len = max(len(item["input_ids"]) for item in items)
        num_codebooks = items[0]["codes"].shape[0]
        frames = max(item["codes"].shape[1] for item in items)
        steps = frames + num_codebooks - 1
        input_ids = torch.full((len(items), text_len), self.text_pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), text_len), dtype=torch.long)
        labels = torch.full((len(items), steps, num_codebooks), IGNORE_INDEX, dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            input_ids[row, :n] = item["input_ids"]
            attention_mask[row, :n] = item["attention_mask"]
            delayed = apply_delay_pattern(item["codes"][None], self.audio_pad_token_id)[0]  # [K, T+K-1]
            labels[row, : delayed.shape[1]] = delayed.T
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def train_val_split(dataset: Dataset, val_fraction: float, seed: int = 0) -> tuple[Subset, Subset]:
    """Shuffle with ``seed`` and split into (train, validation) subsets.

    The validation part has ``round(len * val_fraction)`` items, at least one and at most ``len - 1``;
    it is empty when ``val_fraction`` is 0 or the dataset has a single item (the training part never is).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    size = len(dataset)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = 0 if val_fraction == 0 or size < 2 else min(size - 1, max(1, round(size * val_fraction)))
    return Subset(dataset, order[n_val:]), Subset(dataset, order[:n_val])
