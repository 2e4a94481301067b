"""AudioDataPreprocessor on files made here: formats, rates, channels, clips, prompts, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from musicgen_ops.cli import app
from musicgen_ops.pipeline.audio import PEAK_TARGET, AudioDataPreprocessor, load_audio, split_clips
from musicgen_ops.pipeline.errors import AudioDecodeError
from musicgen_ops.pipeline.manifest import read_manifest, readable_name

from .audio_fixtures import write

SOURCES = [  # (relative path, seconds, rate, channels)
    ("a/tone_8k.wav", 2.5, 8_000, 1),
    ("a/stereo_22k.flac", 2.5, 22_050, 2),
    ("b/mono_44k.mp3", 2.5, 44_100, 1),
    ("b/deep/stereo_48k.wav", 2.5, 48_000, 2),
]


@pytest.fixture
def raw_dir(tmp_path):
    root = tmp_path / "raw"
    for relative, seconds, rate, channels in SOURCES:
        write(root / relative, seconds, rate, channels)
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    (root / "empty.flac").write_bytes(b"")
    (root / "notes.pdf").write_bytes(b"%PDF-1.4")
    sf.write(root / "silent.wav", np.zeros(16_000, dtype=np.float32), 16_000)
    return root


def run(raw_dir, out, **kwargs):
    options = {"target_duration": 1.0, "last_clip": "pad", "min_clip_duration": 0.25} | kwargs
    return AudioDataPreprocessor(**options).preprocess_directory(raw_dir, out)


def test_clips_are_32k_mono_normalised_and_cut(raw_dir, tmp_path):
    result = run(raw_dir, tmp_path / "out")
    assert sorted(result.processed) == sorted(s[0] for s in SOURCES)
    entries = read_manifest(tmp_path / "out")
    assert len(entries) == 4 * 3  # 2.5 s -> two 1 s clips + the padded 0.5 s rest
    for entry in entries:
        audio, rate = sf.read(tmp_path / "out" / entry.audio, always_2d=True)
        assert rate == 32_000 and audio.shape == (32_000, 1)
        assert entry.duration == 1.0
        assert {"audio", "prompt", "duration", "source", "sha256"} <= set(entry.model_dump())
    peaks = {}
    for entry in entries:
        audio, _ = sf.read(tmp_path / "out" / entry.audio)
        peaks[entry.source] = max(peaks.get(entry.source, 0.0), float(np.abs(audio).max()))
    assert all(abs(peak - PEAK_TARGET) < 0.01 for peak in peaks.values())


def test_bad_files_are_reported_and_skipped(raw_dir, tmp_path):
    result = run(raw_dir, tmp_path / "out")
    reasons = dict(result.skipped)
    assert set(reasons) == {"corrupt.wav", "empty.flac", "notes.pdf", "silent.wav"}
    assert "cannot decode" in reasons["corrupt.wav"]
    assert "empty" in reasons["empty.flac"]
    assert "unsupported format" in reasons["notes.pdf"]
    assert "silent" in reasons["silent.wav"]
    assert not list((tmp_path / "out").rglob("*.tmp"))


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("pad", [1.0, 1.0, 1.0]), ("keep", [1.0, 1.0, 0.5]), ("drop", [1.0, 1.0])],
)
def test_last_clip_policy(policy, expected):
    audio = np.ones(int(2.5 * 100), dtype=np.float32)
    clips = split_clips(audio, 100, 1.0, last_clip=policy, min_clip_duration=0.2)
    assert [len(c) / 100 for c in clips] == expected
    assert len(split_clips(audio, 100, 1.0, last_clip="keep", min_clip_duration=0.6)) == 2


def test_prompt_precedence_and_preservation(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "with_sidecar.wav", 1.2, 44_100)
    (raw / "with_sidecar.txt").write_text("sidecar prompt\n")
    write(raw / "in_table.wav", 1.2, 44_100)
    write(raw / "My_Cool-Song.wav", 1.2, 44_100)
    (raw / "prompts.csv").write_text(
        "file,prompt\nin_table.wav,csv prompt\nwith_sidecar.wav,loses to sidecar\n"
    )
    out = tmp_path / "out"
    run(raw, out)
    prompts = {e.source: e.prompt for e in read_manifest(out)}
    assert prompts == {
        "with_sidecar.wav": "sidecar prompt",
        "in_table.wav": "csv prompt",
        "My_Cool-Song.wav": "my cool song",
    }

    manifest = json.loads((out / "manifest.json").read_text())
    for item in manifest:
        if item["source"] == "in_table.wav":
            item["prompt"] = "edited by the user"
    (out / "manifest.json").write_text(json.dumps(manifest))
    write(raw / "in_table.wav", 1.2, 44_100, freq=220.0)  # changed audio forces re-processing
    result = run(raw, out)
    assert result.processed == ["in_table.wav"]
    assert {e.source: e.prompt for e in read_manifest(out)}["in_table.wav"] == "edited by the user"


def test_rerun_is_idempotent(raw_dir, tmp_path):
    out = tmp_path / "out"
    run(raw_dir, out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    manifest = (out / "manifest.json").read_text()
    result = run(raw_dir, out)
    assert result.processed == [] and len(result.up_to_date) == 4 and result.clips_written == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == before
    assert (out / "manifest.json").read_text() == manifest


def test_prompts_json_and_readable_names(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "x.flac", 1.0, 48_000)
    (raw / "prompts.json").write_text(json.dumps({"x.flac": "json prompt"}))
    run(raw, tmp_path / "out")
    assert read_manifest(tmp_path / "out")[0].prompt == "json prompt"
    assert readable_name(__import__("pathlib").Path("01_LateNight-Jam.wav")) == "01 late night jam"


def test_load_audio_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"ID3" + b"\x00" * 64)
    with pytest.raises(AudioDecodeError, match="bad.mp3"):
        load_audio(bad)


def test_cli_preprocess_prints_summary(raw_dir, tmp_path):
    result = CliRunner().invoke(
        app, ["preprocess", "-i", str(raw_dir), "-o", str(tmp_path / "out"), "--duration", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "corrupt.wav" in result.output and "skipped" in result.output
    assert (tmp_path / "out" / "manifest.json").is_file()
    bad = CliRunner().invoke(app, ["preprocess", "-i", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert bad.exit_code == 1 and "does not exist" in bad.output
