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
