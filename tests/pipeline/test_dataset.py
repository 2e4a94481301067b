"""MusicGenDataset: codes from the model's own codec, cached; collate with the delay pattern; split."""

from __future__ import annotations

import json

import pytest
import torch

from musicgen_ops.pipeline.audio import AudioDataPreprocessor
from musicgen_ops.pipeline.dataset import CACHE_DIR, MusicGenCollator, MusicGenDataset, train_val_split
from musicgen_ops.pipeline.errors import DatasetError

from .audio_fixtures import write


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    for index, (seconds, freq) in enumerate([(1.0, 220.0), (1.6, 330.0), (2.0, 440.0)]):
        write(raw / f"track{index}.wav", seconds, 44_100, freq=freq)
        (raw / f"track{index}.txt").write_text(["rock with drums", "jazz piano", "calm ambient pad"][index])
    out = tmp_path_factory.mktemp("data")
    AudioDataPreprocessor(target_duration=2.0, last_clip="keep", min_clip_duration=0.5).preprocess_directory(
        raw, out
    )
    return out


def test_items_have_prompt_tokens_and_codes(data_dir, tiny_model):
    dataset = MusicGenDataset.from_directory(data_dir, tiny_model.processor, model=tiny_model.model)
    assert len(dataset) == 3
    lengths = sorted(item["codes"].shape[1] for item in dataset)
    assert lengths == [50, 80, 100]  # 1.0, 1.6, 2.0 s at 50 Hz
    item = dataset[0]
    assert item["codes"].shape[0] == 4 and item["codes"].dtype == torch.long
    assert int(item["codes"].max()) < 2048
    assert item["input_ids"][-1] == tiny_model.processor.tokenizer.eos_token_id
    assert len(dataset.manifest_sha256) == 64


def test_codes_are_cached_and_reused(data_dir, tiny_model, monkeypatch):
    dataset = MusicGenDataset.from_directory(data_dir, tiny_model.processor, model=tiny_model.model)
    cached = list((data_dir / CACHE_DIR / dataset.model_key).glob("*.pt"))
    assert len(cached) == 3

    def fail(*args, **kwargs):
        raise AssertionError("encoded again instead of reading the cache")

    monkeypatch.setattr("musicgen_ops.pipeline.dataset.encode_audio_file", fail)
    again = MusicGenDataset.from_directory(data_dir, tiny_model.processor, model=tiny_model.model)
    assert all(torch.equal(a["codes"], b["codes"]) for a, b in zip(dataset, again, strict=True))


def test_max_duration_truncates(data_dir, tiny_model):
    dataset = MusicGenDataset.from_directory(
        data_dir, tiny_model.processor, model=tiny_model.model, max_duration_seconds=0.5
    )
    assert {item["codes"].shape[1] for item in dataset} == {25}


def test_collate_pads_and_applies_delay_pattern(data_dir, tiny_model):
    dataset = MusicGenDataset.from_directory(data_dir, tiny_model.processor, model=tiny_model.model)
    items = [dataset[i] for i in range(3)]
    batch = MusicGenCollator(tiny_model.processor.tokenizer.pad_token_id)(items)
    frames = max(i["codes"].shape[1] for i in items)
    assert batch["labels"].shape == (3, frames + 3, 4)
    short = min(range(3), key=lambda i: items[i]["codes"].shape[1])
    n = items[short]["codes"].shape[1]
    labels = batch["labels"][short]
    assert labels[0, 1] == 2048  # codebook 1 starts one step late
    assert torch.equal(labels[1 : n + 1, 1], items[short]["codes"][1])
    assert (labels[n + 3 :] == -100).all()  # batch padding is masked out of the loss
    assert batch["attention_mask"].sum(1).tolist() == [len(i["input_ids"]) for i in items]

    with torch.no_grad():
        loss = tiny_model.model(**batch).loss
    assert torch.isfinite(loss) and loss > 0


def test_split_is_seeded(data_dir, tiny_model):
    dataset = MusicGenDataset.from_directory(data_dir, tiny_model.processor, model=tiny_model.model)
    train, val = train_val_split(dataset, 0.34, seed=1)
    again_train, again_val = train_val_split(dataset, 0.34, seed=1)
    assert len(val) == 1 and len(train) == 2
    assert list(val.indices) == list(again_val.indices) and list(train.indices) == list(again_train.indices)
    assert len(train_val_split(dataset, 0.0)[1]) == 0


def test_bad_datasets_give_clear_errors(data_dir, tiny_model, tmp_path):
    with pytest.raises(DatasetError, match="no dataset manifest"):
        MusicGenDataset.from_directory(tmp_path, tiny_model.processor, model=tiny_model.model)
    (tmp_path / "manifest.json").write_text("[]")
    with pytest.raises(DatasetError, match="empty"):
        MusicGenDataset.from_directory(tmp_path, tiny_model.processor, model=tiny_model.model)
    entries = json.loads((data_dir / "manifest.json").read_text())
    entries[0]["audio"] = "clips/gone.wav"
    (tmp_path / "manifest.json").write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match="missing file.*gone.wav"):
        MusicGenDataset.from_directory(tmp_path, tiny_model.processor, model=tiny_model.model)


def test_batch_padding_does_not_change_the_loss(data_dir, tiny_model):
    dataset = MusicGenDataset.from_directory(data_dir, tiny_model.processor, model=tiny_model.model)
    collate = MusicGenCollator(tiny_model.processor.tokenizer.pad_token_id)
    alone = collate([dataset[0]])
    padded = dict(alone)
    extra = torch.full((1, 7, 4), -100, dtype=torch.long)
    padded["labels"] = torch.cat([alone["labels"], extra], dim=1)  # what a longer batch-mate causes
    with torch.no_grad():
        loss_alone = tiny_model.model(**alone).loss
        loss_padded = tiny_model.model(**padded).loss
    assert torch.allclose(loss_alone, loss_padded, atol=1e-5)


def test_collate_pads_text_and_refuses_bad_batches(tiny_model):
    pad = tiny_model.processor.tokenizer.pad_token_id
    items = [
        {
            "input_ids": torch.tensor([5, 6, 1]),
            "attention_mask": torch.ones(3, dtype=torch.long),
            "codes": torch.zeros(4, 2, dtype=torch.long),
        },
        {
            "input_ids": torch.tensor([7, 1]),
            "attention_mask": torch.ones(2, dtype=torch.long),
            "codes": torch.ones(4, 5, dtype=torch.long),
        },
    ]
    batch = MusicGenCollator(pad)(items)
    assert batch["input_ids"].tolist() == [[5, 6, 1], [7, 1, pad]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].shape == (2, 8, 4)
    assert (batch["labels"][0, 5:] == -100).all() and (batch["labels"][0, :5] != -100).all()
    with pytest.raises(ValueError, match="empty"):
        MusicGenCollator(pad)([])
    items[1]["codes"] = torch.ones(8, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="codebooks"):
        MusicGenCollator(pad)(items)


def test_unreadable_cache_entries_are_encoded_again(data_dir, tiny_model, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    first = MusicGenDataset.from_directory(copy, tiny_model.processor, model=tiny_model.model)
    cached = sorted((copy / CACHE_DIR / first.model_key).glob("*.pt"))
    cached[0].write_bytes(b"not a tensor")
    torch.save(torch.zeros(2, 3, dtype=torch.long), cached[1])  # wrong codebook count
    again = MusicGenDataset.from_directory(copy, tiny_model.processor, model=tiny_model.model)
    assert all(torch.equal(a["codes"], b["codes"]) for a, b in zip(first, again, strict=True))
    assert not list((copy / CACHE_DIR).rglob("*.tmp"))


@pytest.mark.parametrize(
    ("size", "fraction", "expected_val"), [(1, 0.5, 0), (2, 0.9, 1), (10, 0.2, 2), (10, 0.0, 0)]
)
def test_split_sizes(size, fraction, expected_val):
    train, val = train_val_split(list(range(size)), fraction, seed=3)
    assert len(val) == expected_val and len(train) == size - expected_val
    assert sorted(list(train.indices) + list(val.indices)) == list(range(size))
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(list(range(size)), 1.0, seed=0)


def test_clip_at_the_wrong_rate_is_refused(data_dir, tiny_model, tmp_path):
    import shutil

    import numpy as np
    import soundfile as sf

    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns(CACHE_DIR))
    entries = json.loads((copy / "manifest.json").read_text())
    sf.write(copy / entries[0]["audio"], np.zeros(16_000, dtype=np.float32), 16_000)
    entries[0]["sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match="16000 Hz.*preprocess"):
        MusicGenDataset.from_directory(copy, tiny_model.processor, model=tiny_model.model)


@pytest.fixture(scope="module")
def multi_clip_dir(tmp_path_factory):
    """Five tracks of 2.5 s cut into 1 s clips (the last one padded): three clips per track."""
    raw = tmp_path_factory.mktemp("multi-raw")
    for index in range(5):
        write(raw / f"song{index}.wav", 2.5, 32_000, freq=150.0 * (index + 1))
    out = tmp_path_factory.mktemp("multi-data")
    AudioDataPreprocessor(target_duration=1.0, min_clip_duration=0.2).preprocess_directory(raw, out)
    return out


def test_validation_split_keeps_every_track_on_one_side(multi_clip_dir, tiny_model):
    dataset = MusicGenDataset.from_directory(multi_clip_dir, tiny_model.processor, model=tiny_model.model)
    assert len(dataset) == 15 and len(set(dataset.tracks)) == 5
    held_out = set()
    for seed in range(6):
        train, val = train_val_split(dataset, 0.4, seed=seed)
        train_tracks = {dataset.tracks[i] for i in train.indices}
        val_tracks = {dataset.tracks[i] for i in val.indices}
        assert not train_tracks & val_tracks and len(val_tracks) == 2 and len(val) == 6
        assert sorted(list(train.indices) + list(val.indices)) == list(range(15))
        again = train_val_split(dataset, 0.4, seed=seed)[1]
        assert list(again.indices) == list(val.indices)
        held_out.add(frozenset(val_tracks))
    assert len(held_out) > 1  # the seed chooses which tracks are held out
    assert len(train_val_split(dataset, 0.1, seed=0)[1]) == 3  # at least one track
    first_nine = torch.utils.data.Subset(dataset, list(range(9)))  # three tracks, seen through the Subset
    train, val = train_val_split(first_nine, 0.34, seed=0)
    assert len(val) == 3 and len({dataset.tracks[first_nine.indices[i]] for i in val.indices}) == 1
    with pytest.raises(ValueError, match="track names"):
        train_val_split(dataset, 0.2, tracks=["a"])


def test_batched_encoding_gives_the_codes_of_one_by_one(data_dir, multi_clip_dir, tiny_model, monkeypatch):
    from musicgen_ops.pipeline.dataset import encode_audio_file, encode_audio_files
    from musicgen_ops.pipeline.manifest import read_manifest

    paths = [multi_clip_dir / e.audio for e in read_manifest(multi_clip_dir)]
    paths += [data_dir / e.audio for e in read_manifest(data_dir)]  # 1.0, 1.6 and 2.0 s clips mixed in
    alone = [encode_audio_file(p, tiny_model.processor, tiny_model.model) for p in paths]
    calls = []
    codec = tiny_model.model.audio_encoder
    real_encode = codec.encode
    monkeypatch.setattr(
        codec, "encode", lambda values, *a, **k: calls.append(len(values)) or real_encode(values, *a, **k)
    )
    batched = encode_audio_files(paths, tiny_model.processor, tiny_model.model, batch_size=4, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(alone, batched, strict=True))
    assert [a.shape for a in alone] == [b.shape for b in batched]
    assert sorted(calls) == [1, 1, 4, 4, 4, 4]  # sixteen 1 s clips in batches of 4; 1.6 s and 2 s alone
