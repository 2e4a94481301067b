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
    import json, sys
    from pathlib import Path
    from musicgen_ops.pipeline import audio

    def peak_rss_kb():  # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    raw, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    before = peak_rss_kb()
    if mode == "stream":
        clips = audio.AudioDataPreprocessor(target_duration=30).preprocess_directory(raw, out).clips_written
    else:  # the former in-memory path, as a control: the measurement can tell the two apart
        data, rate = audio.load_audio(raw / "long.wav")
        mono = audio.normalise(audio.resample(audio.to_mono(data), rate, 32000))
        clips = len(audio.split_clips(mono, 32000, 30))
    after = peak_rss_kb()
    print(json.dumps({"clips": clips, "growth_mb": (after - before) / 1024}))
    """
)


def _measure(raw, out, mode: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, str(raw), str(out), mode], capture_output=True, text=True, check=True
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_long_track_is_preprocessed_in_bounded_memory(tmp_path):
    # 6 minutes of 44.1 kHz stereo: decoding it whole needs ~190 MB of float32 (decoded, mono,
    # resampled, normalised, clips); streaming needs about one block plus one 30 s clip.
    raw = tmp_path / "raw"
    raw.mkdir()
    rate = 44_100
    with sf.SoundFile(raw / "long.wav", "w", rate, 2, subtype="PCM_16") as track:
        for minute in range(6):
            t = (np.arange(rate * 60) + minute * rate * 60) / rate
            tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
            track.write(np.stack([tone, tone], axis=1))
    streamed = _measure(raw, tmp_path / "out", "stream")
    in_memory = _measure(raw, tmp_path / "out2", "memory")
    assert streamed["clips"] == in_memory["clips"] == 12
    assert in_memory["growth_mb"] > 100, in_memory
    assert streamed["growth_mb"] < 40, streamed


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
