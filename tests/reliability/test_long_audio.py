"""Preprocessing streams tracks in blocks: memory stays bounded, output matches the in-memory path,
and a file that decodes shorter than its header claims gets a warning."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import numpy as np
import soundfile as sf

from musicgen_ops.pipeline.audio import (
    AudioDataPreprocessor,
    load_audio,
    normalise,
    resample,
    split_clips,
    to_mono,
)
from musicgen_ops.pipeline.audio_stream import measure_track, stream_clips

MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    import numpy as np, soundfile as sf
    from musicgen_ops.pipeline.audio import AudioDataPreprocessor
    root = Path(sys.argv[1]); raw = root / "raw"; raw.mkdir()
    rate, minutes = 44_100, int(sys.argv[2])
    with sf.SoundFile(raw / "long.wav", "w", rate, 2, subtype="PCM_16") as f:
        for minute in range(minutes):
            t = (np.arange(rate * 60) + minute * rate * 60) / rate
            tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
            f.write(np.stack([tone, tone], axis=1))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = AudioDataPreprocessor(target_duration=30).preprocess_directory(raw, root / "out")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"clips": result.clips_written, "growth_mb": (after - before) / 1024}))
    """
)


def test_a_long_track_is_preprocessed_in_bounded_memory(tmp_path):
    # 6 minutes of 44.1 kHz stereo: decoding it whole needs ~190 MB of float32 (decoded, mono,
    # resampled, normalised, clips); streaming needs about one block plus one 30 s clip.
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path), "6"], capture_output=True, text=True, check=True
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    assert measured["clips"] == 12
    assert measured["growth_mb"] < 60, measured


def test_streamed_clips_match_the_in_memory_path(tmp_path):
    rate = 44_100
    rng = np.random.default_rng(1)
    stereo = (0.2 * rng.standard_normal((rate * 7 + 123, 2))).astype(np.float32)
    path = tmp_path / "t.wav"
    sf.write(path, stereo, rate, subtype="FLOAT")
    audio, source_rate = load_audio(path)
    reference = split_clips(normalise(resample(to_mono(audio), source_rate, 32_000)), 32_000, 2.0, "pad", 1.0)
    stats = measure_track(path, 32_000)
    gain = 10 ** (-1 / 20) / stats.peak
    streamed = list(stream_clips(path, 32_000, gain, 64_000, 32_000, "pad"))
    assert len(streamed) == len(reference) == 4
    for (clip, _), expected in zip(streamed, reference, strict=True):
        np.testing.assert_allclose(clip, expected, atol=2e-4)
    assert [real for _, real in streamed][:3] == [64_000] * 3 and 32_000 < streamed[-1][1] < 64_000


def test_a_cut_mp3_gets_a_warning(tmp_path, caplog):
    tone = (0.3 * np.sin(np.arange(32_000 * 6) / 32_000 * 2 * np.pi * 220)).astype(np.float32)
    whole = tmp_path / "whole.mp3"
    sf.write(whole, tone, 32_000, format="MP3")
    raw = tmp_path / "raw"
    raw.mkdir()
    data = whole.read_bytes()
    (raw / "cut.mp3").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        result = AudioDataPreprocessor(target_duration=1.0).preprocess_directory(raw, tmp_path / "out")
    assert result.processed == ["cut.mp3"]
    warning = next(r.getMessage() for r in caplog.records if "decodes to" in r.getMessage())
    assert "cut.mp3" in warning and "of the 192000 frames its header claims" in warning
