"""A small preprocessed dataset for training tests: eight 1 s clips of different tones."""

from __future__ import annotations

import pytest
import torch

from musicgen_ops.pipeline.audio import AudioDataPreprocessor

from ..audio_fixtures import write


@pytest.fixture(scope="session")
def train_data_dir(tmp_path_factory):
    raw = tmp_path_factory.mktemp("train-raw")
    for index in range(8):
        write(raw / f"tone{index}.wav", 1.0, 32_000, freq=110.0 * (index + 1))
        (raw / f"tone{index}.txt").write_text(
            ["rock drums", "jazz piano", "calm pad", "funk bass"][index % 4]
        )
    out = tmp_path_factory.mktemp("train-data")
    AudioDataPreprocessor(target_duration=1.0).preprocess_directory(raw, out)
    return out


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny model's matrices are far too small for intra-op threads: on a busy 2-core machine one
    thread is >10x faster than two (measured with bench/train_step.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
