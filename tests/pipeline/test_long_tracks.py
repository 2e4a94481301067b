"""Long tracks by token-level continuation: the torch and fast engines agree code for code across window
boundaries, each window continues the previous one's codes, lengths are exact, audio prompts lead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from musicgen_ops.jobs.generate_job import fetch_audio_prompt
from musicgen_ops.pipeline.errors import InvalidParametersError
from musicgen_ops.pipeline.generation.batch import generate_to_files
from musicgen_ops.pipeline.generation.windowing import generate_windowed, window_frames_for
from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.inference.fast_engine import FastEngineConfig, FastGenerationEngine

GREEDY = SamplingParams(do_sample=False, guidance_scale=3.0)
PROMPTS = ["upbeat jazz piano", "dark ambient pad"]
HOP = 640  # tiny-random: 32 kHz, 50 frames per second


class Spy:
    """Wraps an engine; records each window's code prefix and new codes, and the codes decoded."""

    def __init__(self, engine):
        self.engine, self.calls, self.decoded = engine, [], []
        self.sample_rate, self.frame_rate = engine.sample_rate, engine.frame_rate
        self.supports_item_seeds = True
        self.max_frames = engine.max_frames
        self.decoder = self

    def generate(self, prompts, **kwargs):
        out = self.engine.generate(prompts, **kwargs)
        self.calls.append((kwargs.get("prefix_codes"), out.codes, kwargs["num_frames"]))
        return out

    def decode(self, codes):
        self.decoded.append(codes.numpy().copy())
        return self.engine.decoder.decode(codes)


@pytest.fixture(scope="module")
def fast_engine(tiny_model):
    """The fast engine eagerly on CPU, its longest length bucket 1 s (50 frames): a short window."""
    config = FastEngineConfig(batch_buckets=(1, 2), length_buckets_s=(1.0,), text_buckets=(16, 32))
    return FastGenerationEngine(tiny_model, device="cpu", config=config)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def windowed(engine, samples, **kwargs):
    spy = Spy(engine)
    kwargs = {"window_seconds": 0.2, "stride_seconds": 0.12, **kwargs}
    audio, windows = generate_windowed(
        spy, PROMPTS, num_samples=samples, sampling=GREEDY, seeds=[1, 2], **kwargs
    )
    return spy, audio, windows


def test_fast_and_torch_greedy_codes_are_equal_across_window_boundaries(tiny_engine, fast_engine):
    samples = 26 * HOP - 633  # 26 frames, the last one partial: 4 windows of 10 frames, stride 6
    torch_spy, torch_audio, windows = windowed(tiny_engine, samples)
    fast_spy, fast_audio, fast_windows = windowed(fast_engine, samples)
    assert windows == fast_windows == 4
    for (t_prefix, t_codes, _), (f_prefix, f_codes, _) in zip(torch_spy.calls, fast_spy.calls, strict=True):
        assert (t_prefix is None) == (f_prefix is None)
        if t_prefix is not None:
            np.testing.assert_array_equal(t_prefix, f_prefix)
        np.testing.assert_array_equal(t_codes, f_codes)
    np.testing.assert_array_equal(torch_spy.decoded[0], fast_spy.decoded[0])
    assert torch_audio.shape == fast_audio.shape == (2, samples)  # exact length
    np.testing.assert_allclose(torch_audio, fast_audio, atol=1e-5)


def test_each_window_continues_the_previous_windows_codes(tiny_engine):
    spy, audio, windows = windowed(tiny_engine, 26 * HOP)
    assert [n for _, _, n in spy.calls] == [10, 6, 6, 4]  # window 10 frames: 4 kept, 6 new
    track = np.concatenate([codes for _, codes, _ in spy.calls], axis=-1)
    assert track.shape == (2, 4, 26)
    for index, (prefix, _, _) in enumerate(spy.calls[1:], start=1):
        start = 6 * index  # each window starts one stride after the previous one
        np.testing.assert_array_equal(prefix, track[..., start : start + 4])
    assert len(spy.decoded) == 2  # decoded once, row by row, at the end (no re-encoding)
    np.testing.assert_array_equal(np.concatenate(spy.decoded), track)
    assert audio.shape == (2, 26 * HOP)


def test_audio_prompt_codes_lead_the_track_exactly(tiny_engine):
    clip = tiny_engine.generate(["funk"], num_frames=7, seeds=[5]).audio
    prompt = tiny_engine.encode_audio(np.repeat(clip, 2, axis=0))
    spy, audio, windows = windowed(tiny_engine, 20 * HOP, prompt_codes=prompt)
    assert windows == 3 and audio.shape == (2, 20 * HOP)
    np.testing.assert_array_equal(spy.calls[0][0], prompt)  # the first window continues the prompt
    assert spy.calls[0][2] == 3  # a 10-frame window holding 7 prompt frames adds 3
    np.testing.assert_array_equal(np.concatenate(spy.decoded)[..., :7], prompt)


def test_prompt_longer_than_the_track_or_the_window_is_refused(tiny_engine):
    codes = np.zeros((2, 4, 10), np.int64)
    with pytest.raises(InvalidParametersError, match="audio_prompt_uri.*requested duration"):
        windowed(tiny_engine, 10 * HOP, prompt_codes=codes)
    with pytest.raises(InvalidParametersError, match="audio_prompt_uri.*window"):
        windowed(tiny_engine, 30 * HOP, prompt_codes=codes)


def test_fast_engine_with_default_settings_spans_many_windows(fast_engine):
    """engine=auto on a GPU is the fast engine: a track far past its longest bucket must not fail."""
    assert window_frames_for(fast_engine, 30.0, 18.0) == (50, 30)  # audiocraft's 18 of 30 s, scaled

    def track():
        return generate_windowed(
            fast_engine, ["lofi"], num_samples=3 * 32_000, sampling=SamplingParams(top_k=50), seeds=[9]
        )

    audio, windows = track()
    assert audio.shape == (1, 96_000) and windows == 5 and np.isfinite(audio).all()
    np.testing.assert_array_equal(track()[0], audio)  # sampled, seeded: every window reproducible


def test_stride_must_be_shorter_than_the_window(tiny_engine):
    with pytest.raises(ValueError, match="stride_seconds"):
        windowed(tiny_engine, 30 * HOP, stride_seconds=0.2)


def test_audio_prompt_file_through_generate_to_files(tiny_engine, tmp_path):
    """Any rate and channels: the file is decoded to 32 kHz mono, encoded once and continued."""
    t = np.arange(int(0.15 * 44_100)) / 44_100
    stereo = 0.3 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], axis=1)
    clip = tmp_path / "intro.wav"
    sf.write(clip, stereo, 44_100)
    params = {"prompt": "jazz", "duration_seconds": 0.5, "random_seed": 3, "audio_prompt_uri": str(clip)}
    (result,) = generate_to_files(
        [params], tiny_engine, tmp_path / "out", window_seconds=0.2, stride_seconds=0.12,
        fetch_audio_prompt=Path,
    )  # fmt: skip
    audio, rate = sf.read(result.audio_path)
    assert (rate, len(audio), result.num_samples) == (32_000, 16_000, 16_000)
    assert result.parameters.audio_prompt_uri == str(clip) and result.windows == 4


@pytest.mark.parametrize(
    ("content", "duration", "match"),
    [
        (b"not audio at all", 1.0, "audio_prompt_uri: cannot decode"),
        (None, 1.0, "audio_prompt_uri: .*no such object"),
        ("long", 0.5, "audio_prompt_uri: the clip .* shorter than duration_seconds"),
    ],
    ids=["undecodable", "missing", "longer-than-duration"],
)
def test_bad_audio_prompts_are_clear_errors(tiny_engine, tmp_path, content, duration, match):
    clip = tmp_path / "prompt.wav"
    if content == "long":
        sf.write(clip, np.zeros(32_000), 32_000)
    elif content is not None:
        clip.write_bytes(content)
    params = {"prompt": "x", "duration_seconds": duration, "audio_prompt_uri": f"file://{clip}"}
    with pytest.raises(InvalidParametersError, match=match):
        fetch = lambda uri: fetch_audio_prompt(uri, tmp_path / "fetched")  # noqa: E731 - as the job does
        generate_to_files([params], tiny_engine, tmp_path / "out", fetch_audio_prompt=fetch)


def test_generate_to_files_never_opens_a_path_a_request_names(tiny_engine, tmp_path):
    """Callers fetch prompts (what they may read is theirs to decide): a bare URI is refused."""
    params = {"prompt": "x", "duration_seconds": 1.0, "audio_prompt_uri": "/etc/hostname"}
    with pytest.raises(InvalidParametersError, match="audio_prompt_uri: /etc/hostname: .*not read here"):
        generate_to_files([params], tiny_engine, tmp_path / "out")
