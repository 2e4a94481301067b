"""Delivery: loudness to a target with a true-peak ceiling, sample rates, formats, bit depths and tags."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile as sf

from musicgen_ops.pipeline import audio_output
from musicgen_ops.pipeline.audio_output import (
    AudioTags,
    DeliveryOptions,
    available_formats,
    encode,
    integrated_loudness,
    limit_true_peak,
    normalize_loudness,
    render,
    resample,
    true_peak_dbtp,
    write,
)

RATE = 32_000


def tone_and_noise(seconds: float = 3.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Quiet synthetic 'music': a chord, a noise bed and sharp clicks every half second (peaky)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    chord = sum(0.04 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    noise = 0.01 * rng.standard_normal(t.shape)
    clicks = np.zeros_like(t)
    clicks[:: RATE // 2] = 0.5
    mono = (chord + noise + clicks).astype(np.float32)
    if channels == 1:
        return mono
    return np.stack([mono, np.roll(mono, 37) * 0.8]).astype(np.float32)


def codec_audio(model, seconds: float = 2.0) -> np.ndarray:
    """What the tiny random MusicGen's EnCodec makes of random codes (generated, not synthetic, audio)."""
    import torch

    codec = model.audio_encoder
    codes = torch.randint(0, 2048, (1, 1, 4, int(seconds * 50)), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        audio = codec.decode(codes, [None]).audio_values
    return audio[0, 0].numpy()


@pytest.mark.parametrize("target", [-23.0, -14.0, -9.0])
@pytest.mark.parametrize("channels", [1, 2])
def test_loudness_lands_within_half_a_lu_of_the_target_under_the_peak_ceiling(target, channels):
    audio = tone_and_noise(channels=channels)
    assert integrated_loudness(audio, RATE) < -20  # starts quiet: the gain is large and the clicks clip
    out = normalize_loudness(audio, RATE, target, true_peak_ceiling=-1.0)
    assert out.shape == audio.shape
    assert abs(integrated_loudness(out, RATE) - target) <= 0.5
    assert true_peak_dbtp(out, RATE) <= -1.0 + 0.1


def test_loudness_of_generated_audio_lands_on_target(tiny_model):
    audio = codec_audio(tiny_model.model)
    out = normalize_loudness(audio, RATE, -14.0)
    assert abs(integrated_loudness(out, RATE) + 14.0) <= 0.5
    assert true_peak_dbtp(out, RATE) <= -0.9


def test_true_peak_sees_the_peak_between_samples():
    # A quarter-rate sine sampled 45 degrees off its crests: samples reach 0.707, the waveform 1.0.
    t = np.arange(RATE)
    audio = np.sin(np.pi / 2 * t + np.pi / 4).astype(np.float32)
    assert 20 * math.log10(np.abs(audio).max()) == pytest.approx(-3.01, abs=0.05)
    assert true_peak_dbtp(audio, RATE) == pytest.approx(0.0, abs=0.2)
    limited = limit_true_peak(audio, RATE, ceiling_dbtp=-6.0)
    assert true_peak_dbtp(limited, RATE) <= -6.0 + 0.05


def test_limiter_leaves_quiet_audio_untouched():
    audio = 0.1 * tone_and_noise()
    np.testing.assert_allclose(limit_true_peak(audio * 0.1, RATE), audio * 0.1, atol=1e-7)


def test_silence_and_too_short_audio():
    silence = np.zeros(RATE, dtype=np.float32)
    assert np.array_equal(normalize_loudness(silence, RATE, -14.0), silence)
    with pytest.raises(ValueError, match="loudness needs at least 0.4 s"):
        integrated_loudness(np.ones(RATE // 10, dtype=np.float32), RATE)


@pytest.mark.parametrize("target_rate", [32_000, 44_100, 48_000])
def test_resampling_keeps_duration_and_layout(target_rate):
    stereo = tone_and_noise(seconds=1.0, channels=2)
    out = resample(stereo, RATE, target_rate)
    assert out.shape == (2, target_rate) and out.dtype == np.float32
    assert resample(stereo[0], RATE, target_rate).shape == (target_rate,)


def _cases():
    for name in ("wav", "flac"):
        for depth in (16, 24):
            for rate in (32_000, 44_100, 48_000):
                yield name, depth, rate, 1
        yield name, 24, 48_000, 2
    for name in ("mp3", "ogg"):
        for rate in (32_000, 44_100, 48_000):
            yield name, 16, rate, 1
        yield name, 16, 44_100, 2
    yield "opus", 16, 48_000, 1
    yield "opus", 16, 48_000, 2


@pytest.mark.parametrize(("name", "depth", "rate", "channels"), list(_cases()))
def test_every_format_reads_back_with_its_rate_depth_channels_and_tags(tmp_path, name, depth, rate, channels):
    if name not in available_formats():
        pytest.skip(f"this libsndfile cannot write {name}")
    options = DeliveryOptions(format=name, sample_rate=rate, bit_depth=depth)
    audio = tone_and_noise(seconds=1.0, channels=channels)
    tags = AudioTags.for_track("lofi piano, 90 bpm", seed=7, model="tiny-random", decoder="mbd")
    path = tmp_path / f"track{audio_output.FORMATS[name].extension}"
    rendered = write(path, audio, RATE, options, tags)

    info = sf.info(str(path))
    assert (info.samplerate, info.channels) == (rate, channels)
    assert info.subtype == options.subtype
    assert info.format == audio_output.FORMATS[name].container
    with sf.SoundFile(str(path)) as file:
        metadata = file.copy_metadata()
        data = file.read(dtype="float32", always_2d=True)
    assert metadata["title"] == "lofi piano, 90 bpm"
    assert metadata["comment"] == "seed=7 model=tiny-random decoder=mbd"
    if audio_output.FORMATS[name].lossless:
        assert info.subtype == f"PCM_{depth}"
        expected = rendered.audio.T if channels == 2 else rendered.audio[:, None]
        assert data.shape == (rate, channels)
        np.testing.assert_allclose(data, np.clip(expected, -1, 1), atol=2.0 ** -(depth - 1))
    else:
        assert abs(data.shape[0] - rate) <= rate // 20


def test_encode_gives_the_same_bytes_as_write(tmp_path):
    options = DeliveryOptions(format="flac", bit_depth=24)
    audio = tone_and_noise(seconds=1.0)
    write(tmp_path / "a.flac", audio, RATE, options)
    assert (tmp_path / "a.flac").read_bytes() == encode(audio, RATE, options)
    data, rate = sf.read(io.BytesIO(encode(audio, RATE, options)))
    assert rate == RATE and data.shape == (RATE,)


def test_render_reports_what_it_measured():
    rendered = render(tone_and_noise(), RATE, DeliveryOptions(sample_rate=48_000, target_lufs=-16.0))
    assert rendered.sample_rate == 48_000 and rendered.audio.shape == (3 * 48_000,)
    assert rendered.loudness_lufs == pytest.approx(-16.0, abs=0.5)
    assert rendered.true_peak_dbtp <= -0.9
    plain = render(tone_and_noise(), RATE, DeliveryOptions())
    np.testing.assert_array_equal(plain.audio, tone_and_noise())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(format="aiff"), "format: unknown output format 'aiff'"),
        (dict(sample_rate=22_050), "sample_rate: 22050 Hz is not offered"),
        (dict(bit_depth=8), "bit_depth: must be one of 16, 24"),
        (dict(target_lufs=3.0), "target_lufs: must be between"),
        (dict(true_peak_dbtp=1.0), "true_peak_dbtp: must be between"),
    ],
)
def test_bad_options_name_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        DeliveryOptions(**fields)


def test_a_format_libsndfile_cannot_write_is_refused(monkeypatch):
    monkeypatch.setattr(audio_output, "available_formats", lambda: ("wav", "flac"))
    with pytest.raises(ValueError, match="format: mp3 cannot be written here .*available: wav, flac"):
        DeliveryOptions(format="mp3")
