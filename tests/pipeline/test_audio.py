"""The audio building blocks: decode every format/rate/channel count, resample, mix down, normalise, cut."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from musicgen_ops.pipeline.audio import (
    PEAK_TARGET,
    RMS_TARGET,
    AudioDataPreprocessor,
    load_audio,
    normalise,
    resample,
    split_clips,
    to_mono,
    write_wav_atomic,
)
from musicgen_ops.pipeline.errors import AudioDecodeError

from .audio_fixtures import MATRIX, write, write_bad_files, write_noise


@pytest.mark.parametrize(("fmt", "rate", "channels"), MATRIX, ids=[f"{f}-{r}-{c}ch" for f, r, c in MATRIX])
def test_load_audio_decodes_every_format_rate_and_channel_count(tmp_path, fmt, rate, channels):
    path = write(tmp_path / f"x.{fmt}", 0.5, rate, channels)
    audio, sample_rate = load_audio(path)
    assert sample_rate == rate
    assert audio.dtype == np.float32 and audio.shape[0] == channels
    assert abs(audio.shape[1] - rate // 2) <= rate // 100  # MP3 may differ by a frame's padding
    rms = np.sqrt(np.mean(np.square(audio), axis=1))
    assert 0.18 < rms[0] < 0.26  # the 0.3-amplitude tone (RMS 0.21) survives encoding
    if channels == 2:
        assert abs(rms[1] / rms[0] - 0.5) < 0.05  # the second channel stays half as loud


@pytest.mark.parametrize(("fmt", "rate", "channels"), MATRIX, ids=[f"{f}-{r}-{c}ch" for f, r, c in MATRIX])
def test_every_fixture_becomes_a_32k_mono_clip(tmp_path, fmt, rate, channels):
    raw = tmp_path / "raw"
    write_noise(raw / f"hits.{fmt}", 1.0, rate, channels)
    result = AudioDataPreprocessor(target_duration=1.0).preprocess_directory(raw, tmp_path / "out")
    assert result.skipped == [] and len(result.entries) == 1
    info = sf.info(tmp_path / "out" / result.entries[0].audio)
    assert (info.samplerate, info.channels, info.frames) == (32_000, 1, 32_000)


@pytest.mark.parametrize("name", ["corrupt.wav", "garbage.flac", "junk.mp3", "empty.mp3", "notes.pdf"])
def test_load_audio_rejects_bad_files_naming_them(tmp_path, name):
    expected = write_bad_files(tmp_path)[name]
    with pytest.raises(AudioDecodeError, match=expected) as info:
        load_audio(tmp_path / name)
    assert name in str(info.value)


def test_to_mono_averages_channels():
    stereo = np.stack([np.ones(4), np.zeros(4)]).astype(np.float32)
    assert np.allclose(to_mono(stereo), 0.5)
    assert to_mono(np.ones(3)).shape == (3,)


@pytest.mark.parametrize("source_rate", [8_000, 22_050, 44_100, 48_000])
def test_resample_keeps_duration_and_pitch(source_rate):
    t = np.arange(source_rate) / source_rate
    audio = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = resample(audio, source_rate, 32_000)
    assert out.dtype == np.float32 and abs(len(out) - 32_000) <= 1
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(int(spectrum.argmax()) * 32_000 / len(out) - 1000) < 2  # still a 1 kHz tone
    assert resample(audio, source_rate, source_rate) is audio


def test_peak_normalisation_hits_minus_one_dbfs():
    quiet = 0.01 * np.sin(np.linspace(0, 100, 1000)).astype(np.float32)
    out = normalise(quiet, "peak")
    assert abs(float(np.abs(out).max()) - PEAK_TARGET) < 1e-5


def test_rms_normalisation_hits_minus_twenty_dbfs_without_clipping():
    quiet = 0.01 * np.sin(np.linspace(0, 100, 1000)).astype(np.float32)
    out = normalise(quiet, "rms")
    assert abs(float(np.sqrt(np.mean(out**2))) - RMS_TARGET) < 1e-4
    spiky = np.zeros(1000, dtype=np.float32)
    spiky[::100] = 0.5  # a high crest factor: reaching -20 dBFS RMS would clip, the peak limit wins
    assert abs(float(np.abs(normalise(spiky, "rms")).max()) - PEAK_TARGET) < 1e-5


def test_silence_is_refused():
    with pytest.raises(AudioDecodeError, match="silent"):
        normalise(np.full(100, 1e-5, dtype=np.float32))


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("pad", [1.0, 1.0, 1.0]), ("keep", [1.0, 1.0, 0.5]), ("drop", [1.0, 1.0])],
)
def test_last_clip_policy(policy, expected):
    audio = np.ones(int(2.5 * 100), dtype=np.float32)
    clips = split_clips(audio, 100, 1.0, last_clip=policy, min_clip_duration=0.2)
    assert [len(c) / 100 for c in clips] == expected
    if policy == "pad":
        assert (clips[-1][50:] == 0).all()  # padded with silence
    assert len(split_clips(audio, 100, 1.0, last_clip="keep", min_clip_duration=0.6)) == 2
    assert split_clips(audio[:10], 100, 1.0, last_clip="pad", min_clip_duration=0.2) == []


def test_write_wav_atomic_leaves_no_temporary(tmp_path):
    target = tmp_path / "clips" / "a.wav"
    write_wav_atomic(target, np.zeros(320, dtype=np.float32), 32_000)
    assert sf.info(target).frames == 320
    assert [p.name for p in target.parent.iterdir()] == ["a.wav"]
    with pytest.raises(Exception):  # noqa: B017 — whatever soundfile raises, nothing may stay behind
        write_wav_atomic(tmp_path / "clips" / "b.wav", np.zeros((2, 2, 2), dtype=np.float32), 32_000)
    assert [p.name for p in target.parent.iterdir()] == ["a.wav"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_duration": 0},
        {"target_sample_rate": -1},
        {"last_clip": "loop"},
        {"normalization": "lufs"},
        {"min_clip_duration": -1},
    ],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        AudioDataPreprocessor(**kwargs)
