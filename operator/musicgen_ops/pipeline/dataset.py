"""MusicGen training data: prompts tokenised, clips encoded to EnCodec codes (cached), batches collated.

Encoding audio with the codec is the slow part, so clips are encoded in batches on the training device
and the codes cached on disk under ``<data_dir>/.codes-cache/<model-key>/<clip sha256>.pt``; the model key
is a fingerprint of the codec's weights, so a different codec never reads stale codes.

A clip zero-padded at the end of its track (``--last-clip pad``) carries its real length
(``content_duration`` in the manifest); the frames after it are left out of the loss.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from musicgen_ops.pipeline.codes import apply_delay_pattern, codebook_delays
from musicgen_ops.pipeline.errors import DatasetError
from musicgen_ops.pipeline.manifest import MANIFEST_NAME, ManifestEntry, read_manifest, sha256_file
from musicgen_ops.pipeline.models import audio_channels_of

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
        device: str | torch.device | None = None,
        encode_batch_size: int = 16,
    ) -> None:
        if not entries:
            raise DatasetError(f"the dataset in {data_dir} is empty: its manifest lists no clips")
        if max_duration_seconds <= 0:
            raise DatasetError(f"max_duration_seconds must be positive, got {max_duration_seconds}")
        self.data_dir = Path(data_dir)
        self.entries = entries
        self.processor = processor
        self.frame_rate = float(model.config.audio_encoder.frame_rate)
        self.max_frames = max(1, int(max_duration_seconds * self.frame_rate))
        self.num_codebooks = int(model.config.decoder.num_codebooks)
        self.manifest_sha256 = sha256_file(self.data_dir / MANIFEST_NAME)
        self.model_key = codec_fingerprint(model) + ("-stereo" if audio_channels_of(model) == 2 else "")
        self.cache_dir = self.data_dir / CACHE_DIR / self.model_key
        missing = [e.audio for e in entries if not (self.data_dir / e.audio).is_file()]
        if missing:
            raise DatasetError(
                f"the manifest in {data_dir} lists {len(missing)} missing file(s), e.g. {missing[0]}; "
                "re-run `musicgen-ops preprocess` or fix manifest.json"
            )
        self._codes = self._load_or_encode(entries, model, device, encode_batch_size)
        self._lengths = [
            self._content_frames(entry, codes) for entry, codes in zip(entries, self._codes, strict=True)
        ]
        self._text = [processor.tokenizer(e.prompt, truncation=True, return_tensors="pt") for e in entries]

    @classmethod
    def from_directory(
        cls,
        data_dir: str | Path,
        processor: MusicgenProcessor,
        model: MusicgenForConditionalGeneration,
        max_duration_seconds: float = 30.0,
        device: str | torch.device | None = None,
        encode_batch_size: int = 16,
    ) -> MusicGenDataset:
        """Read ``<data_dir>/manifest.json`` and encode (or load cached) codes for every clip.

        Args:
            device: where EnCodec encodes clips missing from the cache (the training device); default: where
                the codec is.
            encode_batch_size: clips encoded per codec call.
        """
        data_dir = Path(data_dir)
        return cls(
            data_dir,
            read_manifest(data_dir),
            processor,
            model,
            max_duration_seconds,
            device,
            encode_batch_size,
        )

    @property
    def tracks(self) -> list[str]:
        """The source track of each clip (what the validation split groups by)."""
        return [entry.source for entry in self.entries]

    def _load_or_encode(
        self,
        entries: list[ManifestEntry],
        model: MusicgenForConditionalGeneration,
        device: str | torch.device | None,
        batch_size: int,
    ) -> list[torch.Tensor]:
        cache = [self.cache_dir / f"{entry.sha256}.pt" for entry in entries]
        codes: list[torch.Tensor | None] = [self._read_cache(path) for path in cache]
        missing = [i for i, c in enumerate(codes) if c is None]
        if missing:
            logger.info(
                "encoding %d clip(s) with EnCodec (%d cached)", len(missing), len(entries) - len(missing)
            )
            paths = [self.data_dir / entries[i].audio for i in missing]
            encoded = encode_audio_files(paths, self.processor, model, batch_size=batch_size, device=device)
            for i, new in zip(missing, encoded, strict=True):
                _save_atomic(new, cache[i])
                codes[i] = new
        return [c[..., : self.max_frames] for c in codes if c is not None]

    def _content_frames(self, entry: ManifestEntry, codes: torch.Tensor) -> int:
        """Frames of real audio in a clip: all of them unless the manifest says it was padded."""
        frames = codes.shape[-1]
        if entry.content_duration is None or entry.content_duration >= entry.duration:
            return frames
        return max(1, min(frames, math.ceil(entry.content_duration * self.frame_rate - 1e-3)))

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
            "length": self._lengths[index],
            "prompt": self.entries[index].prompt,
            "audio": self.entries[index].audio,
        }


def encode_audio_file(
    path: Path, processor: MusicgenProcessor, model: MusicgenForConditionalGeneration
) -> torch.Tensor:
    """EnCodec codes ``[K, T]`` of a mono clip at the codec's sample rate."""
    return encode_audio_files([path], processor, model)[0]


def encode_audio_files(
    paths: list[Path],
    processor: MusicgenProcessor,
    model: MusicgenForConditionalGeneration,
    batch_size: int = 16,
    device: str | torch.device | None = None,
) -> list[torch.Tensor]:
    """EnCodec codes ``[K, T]`` of each clip, encoded ``batch_size`` clips at a time on ``device``.

    Only clips of the same length share a batch, so each gets exactly the codes it gets alone (no padding
    enters the codec's receptive field). Codes come back on the CPU, in the order of ``paths``.

    A mono model gets each clip's channels averaged. A stereo model (``decoder.audio_channels == 2``)
    gets the left and right channels encoded separately and their codebooks interleaved (left on even
    rows), as transformers' MusicGen encodes a stereo audio prompt; a mono clip is used for both.
    """
    import soundfile as sf

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    rate = int(model.config.audio_encoder.sampling_rate)
    channels = audio_channels_of(model)
    by_length: dict[int, list[int]] = {}
    for index, path in enumerate(paths):
        by_length.setdefault(_clip_info(path, rate), []).append(index)
    results: list[torch.Tensor | None] = [None] * len(paths)
    with _codec_on(model, device) as codec:
        for indices in by_length.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                if channels == 1:
                    codes = _encode(codec, [_read_mono(paths[i], sf) for i in chunk])
                else:
                    stereo = [_read_stereo(paths[i], sf) for i in chunk]
                    left = _encode(codec, [a[0] for a in stereo])
                    right = _encode(codec, [a[1] for a in stereo])
                    codes = torch.stack([left, right], dim=2).flatten(1, 2)  # [B, 2K, T], left on even rows
                for row, i in enumerate(chunk):
                    results[i] = codes[row].clone()
    return [c for c in results if c is not None]


def _clip_info(path: Path, expected_rate: int) -> int:
    """Sample count of a clip, refusing unreadable, empty or wrong-rate files."""
    import soundfile as sf

    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read clip ({err}); re-run `musicgen-ops preprocess`") from err
    if info.frames == 0:
        raise DatasetError(f"{path}: clip has no samples; re-run `musicgen-ops preprocess`")
    if info.samplerate != expected_rate:
        raise DatasetError(
            f"{path} is {info.samplerate} Hz, the codec needs {expected_rate} Hz: preprocess it first"
        )
    return int(info.frames)


def _read_mono(path: Path, sf) -> np.ndarray:
    try:
        audio, _ = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read clip ({err}); re-run `musicgen-ops preprocess`") from err
    return np.ascontiguousarray(audio.mean(axis=1))


def _encode(codec, audio: list[np.ndarray]) -> torch.Tensor:
    """Codes ``[B, K, T]`` (CPU, int64) of same-length mono clips (no padding: the mask is all ones)."""
    values = torch.from_numpy(np.stack(audio))[:, None, :]
    with torch.no_grad():
        values = values.to(codec.device, codec.dtype)
        encoded = codec.encode(values, torch.ones_like(values[:, 0], dtype=torch.long))
    return encoded.audio_codes[0].to("cpu", torch.long)  # [1, B, K, T] -> [B, K, T]


def _read_stereo(path: Path, sf) -> np.ndarray:
    """``[2, samples]``: a stereo clip's two channels (a mono clip twice; more channels refused)."""
    try:
        audio, _ = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read clip ({err}); re-run `musicgen-ops preprocess`") from err
    if audio.shape[1] > 2:
        raise DatasetError(f"{path} has {audio.shape[1]} channels; a stereo model trains on 1 or 2")
    if audio.shape[1] == 1:
        logger.warning(
            "%s is mono: the stereo model gets it on both channels (preprocess --channels 2)", path
        )
    return np.ascontiguousarray(np.repeat(audio, 2, axis=1).T if audio.shape[1] == 1 else audio.T)


@contextlib.contextmanager
def _codec_on(model: MusicgenForConditionalGeneration, device: str | torch.device | None) -> Iterator:
    """The model's EnCodec, moved to ``device`` for the duration (and back afterwards)."""
    codec = model.audio_encoder
    home = next(codec.parameters()).device
    target = torch.device(device) if device is not None else home
    if target == home:
        yield codec
        return
    codec.to(target)
    try:
        yield codec
    finally:
        codec.to(home)


def _save_atomic(codes: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(codes, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class MusicGenCollator:
    """Pad prompts and codes into a batch; labels carry MusicGen's delay pattern.

    Returns ``input_ids`` ``[B, L]``, ``attention_mask`` ``[B, L]`` and ``labels`` ``[B, S, K]`` where
    ``S = T_max + K - 1``: delayed codes, the pad token where a codebook has no frame (the loss ignores
    it) and ``-100`` where an item is shorter than the longest in the batch or past its ``length`` (the
    real, unpadded frames of a clip padded at the end of its track).
    """

    def __init__(
        self, text_pad_token_id: int, audio_pad_token_id: int = 2048, audio_channels: int = 1
    ) -> None:
        self.text_pad_token_id = text_pad_token_id
        self.audio_pad_token_id = audio_pad_token_id
        self.audio_channels = audio_channels  # 2: stereo, codebook pairs delayed together

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        if len({item["codes"].shape[0] for item in items}) != 1:
            raise ValueError("every item in a batch must have the same number of codebooks")
        text_len = max(len(item["input_ids"]) for item in items)
        num_codebooks = items[0]["codes"].shape[0]
        frames = max(item["codes"].shape[1] for item in items)
        delays = codebook_delays(num_codebooks, self.audio_channels)
        steps = frames + max(delays)
        input_ids = torch.full((len(items), text_len), self.text_pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), text_len), dtype=torch.long)
        labels = torch.full((len(items), steps, num_codebooks), IGNORE_INDEX, dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            input_ids[row, :n] = item["input_ids"]
            attention_mask[row, :n] = item["attention_mask"]
            delayed = apply_delay_pattern(item["codes"][None], self.audio_pad_token_id, self.audio_channels)[
                0
            ]
            labels[row, : delayed.shape[1]] = delayed.T
            length = int(item.get("length", item["codes"].shape[1]))
            for k in range(num_codebooks) if length < item["codes"].shape[1] else ():
                labels[row, length + delays[k] : delayed.shape[1], k] = (
                    IGNORE_INDEX  # frame t of codebook k: step t + delay(k)
                )
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def train_val_split(
    dataset: Dataset, val_fraction: float, seed: int = 0, tracks: list[str] | None = None
) -> tuple[Subset, Subset]:
    """Split into (train, validation) subsets by track: all clips of one track land on the same side.

    ``tracks`` names each item's track (default: ``dataset.tracks`` when the dataset has it, else every item
    is its own track). Tracks are shuffled with ``seed``; ``round(n_tracks * val_fraction)`` of them, at
    least one and at most ``n_tracks - 1``, are held out; none when ``val_fraction`` is 0 or there is a
    single track (the training part is never empty).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    size = len(dataset)
    if tracks is None:
        tracks = _tracks_of(dataset) or [str(i) for i in range(size)]
    if len(tracks) != size:
        raise ValueError(f"{len(tracks)} track names for {size} items")
    names = sorted(set(tracks))
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    count = len(names)
    n_val = 0 if val_fraction == 0 or count < 2 else min(count - 1, max(1, round(count * val_fraction)))
    held_out = {names[i] for i in order[:n_val]}
    train = [i for i in range(size) if tracks[i] not in held_out]
    val = [i for i in range(size) if tracks[i] in held_out]
    return Subset(dataset, train), Subset(dataset, val)


def _tracks_of(dataset: Dataset) -> list[str] | None:
    """Each item's track, looking through ``Subset`` wrappers; None when the dataset does not say."""
    if isinstance(dataset, Subset):
        inner = _tracks_of(dataset.dataset)
        return [inner[i] for i in dataset.indices] if inner is not None else None
    tracks = getattr(dataset, "tracks", None)
    return list(tracks) if tracks is not None else None
