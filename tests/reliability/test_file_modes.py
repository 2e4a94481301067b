"""Published files are 0644 and folders 0755 under umask 022 (the umask is respected, not forced)."""

from __future__ import annotations

import os
import stat
import time

import numpy as np
import pytest

from musicgen_ops.contracts.generation import GenerationParameters
from musicgen_ops.pipeline.generation.writer import write_result
from musicgen_ops.pipeline.manifest import atomic_write_text
from musicgen_ops.storage import open_store


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_results_get_ordinary_modes(tmp_path, umask):
    result = write_result(
        tmp_path / "out" / "track.wav",
        np.zeros(800, dtype=np.float32),
        sample_rate=8000,
        result_id="track",
        model_id="tiny-random",
        conditioning_text="x",
        parameters=GenerationParameters(prompt="x"),
        seed=1,
        output_format="wav",
        windows=1,
        batch_size=1,
        started=time.perf_counter(),
        clock=time.perf_counter,
        spectrogram=False,
    )
    for path in (result.audio_path, result.sidecar_path):
        assert _mode(tmp_path / "out" / os.path.basename(path)) == 0o666 & ~umask
    assert _mode(tmp_path / "out") == 0o777 & ~umask


def test_manifests_and_storage_downloads_get_ordinary_modes(tmp_path, umask):
    atomic_write_text(tmp_path / "manifest.json", "{}")
    assert _mode(tmp_path / "manifest.json") == 0o666 & ~umask
    store = open_store(f"file://{tmp_path / 'store'}", create_bucket=True)
    store.put_bytes("a/b.json", b"{}")
    assert _mode(tmp_path / "store" / "a" / "b.json") == 0o666 & ~umask
    store.get_file("a/b.json", tmp_path / "copy.json")
    assert _mode(tmp_path / "copy.json") == 0o666 & ~umask
