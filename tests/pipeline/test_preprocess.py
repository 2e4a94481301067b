"""AudioDataPreprocessor on files made here: formats, rates, channels, clips, prompts, bad input."""

from __future__ import annotations

import csv
import io
import json
import re
import time

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from musicgen_ops.cli import app
from musicgen_ops.pipeline.audio import PEAK_TARGET, AudioDataPreprocessor, load_audio
from musicgen_ops.pipeline.demo_data import render_demo_dataset
from musicgen_ops.pipeline.errors import AudioDecodeError
from musicgen_ops.pipeline.manifest import read_manifest, readable_name

from .audio_fixtures import write, write_bad_files

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
    write_bad_files(root)
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
    expected = write_bad_files(tmp_path / "expected")
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        assert words in reasons[name], (name, reasons[name])
    assert not list((tmp_path / "out").rglob("*.tmp"))
    assert {e.source for e in read_manifest(tmp_path / "out")} == {s[0] for s in SOURCES}
    rows = result.summary_rows()
    assert ("corrupt.wav", "skipped", reasons["corrupt.wav"]) in rows
    assert ("a/tone_8k.wav", "processed", "3 clips") in rows


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("pad", [1.0, 1.0, 1.0]), ("keep", [1.0, 1.0, 0.5]), ("drop", [1.0, 1.0])],
)
def test_last_clip_policy_end_to_end(tmp_path, policy, expected):
    write(tmp_path / "raw" / "t.flac", 2.5, 48_000)
    run(tmp_path / "raw", tmp_path / "out", last_clip=policy)
    entries = read_manifest(tmp_path / "out")
    assert [e.duration for e in entries] == expected
    assert [sf.info(tmp_path / "out" / e.audio).duration for e in entries] == expected


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
    output = " ".join(result.output.split())
    assert "preprocessing summary" in output and "corrupt.wav" in output and "skipped" in output
    assert (tmp_path / "out" / "manifest.json").is_file()
    bad = CliRunner().invoke(app, ["preprocess", "-i", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert bad.exit_code == 1 and "does not exist" in " ".join(bad.output.split())


def test_unchanged_track_keeps_edited_prompt_over_sidecar(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    write(raw / "song.wav", 2.5, 22_050)
    (raw / "song.txt").write_text("first sidecar")
    run(raw, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest[0]["prompt"] = "user edit"
    (out / "manifest.json").write_text(json.dumps(manifest))
    (raw / "song.txt").write_text("changed sidecar")
    result = run(raw, out)
    assert result.up_to_date == ["song.wav"]
    assert [e.prompt for e in read_manifest(out)] == ["user edit", "first sidecar", "first sidecar"]
    result = run(raw, out, target_duration=0.5)  # new settings: re-cut, the manifest prompt still wins
    assert result.processed == ["song.wav"] and len(result.entries) == 5
    assert {e.prompt for e in read_manifest(out)} == {"user edit", "first sidecar"}
    assert len(list((out / "clips").iterdir())) == 5  # clips of the old cut are gone


def test_changed_settings_reprocess_and_removed_sources_are_dropped(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    write(raw / "a.wav", 1.0, 44_100)
    write(raw / "b.wav", 1.0, 44_100)
    run(raw, out)
    assert run(raw, out).processed == []
    assert sorted(run(raw, out, normalization="rms").processed) == ["a.wav", "b.wav"]
    (raw / "b.wav").unlink()
    result = run(raw, out, normalization="rms")
    assert [e.source for e in result.entries] == ["a.wav"] and result.removed_orphans == 1
    assert [p.name for p in (out / "clips").iterdir()] == ["a_000.wav"]


def test_interrupted_run_resumes_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    raw, out = tmp_path / "raw", tmp_path / "out"
    for name in ("a", "b", "c"):
        write(raw / f"{name}.wav", 1.0, 44_100)
    original = AudioDataPreprocessor._process_track

    def crash_on_b(self, track, *args, **kwargs):
        if track.name == "b.wav":
            (out / "clips" / ".b_000.wav.x.tmp").write_bytes(b"half")  # what a kill mid-write leaves
            raise KeyboardInterrupt
        return original(self, track, *args, **kwargs)

    monkeypatch.setattr(AudioDataPreprocessor, "_process_track", crash_on_b)
    with pytest.raises(KeyboardInterrupt):
        run(raw, out)
    assert [e.source for e in read_manifest(out)] == ["a.wav"]  # finished work is recorded
    monkeypatch.setattr(AudioDataPreprocessor, "_process_track", original)
    result = run(raw, out)
    assert result.up_to_date == ["a.wav"] and result.processed == ["b.wav", "c.wav"]
    assert not list(out.rglob("*.tmp"))


def test_output_inside_input_is_not_read_back(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "a.wav", 1.0, 44_100)
    run(raw, raw / "preprocessed")
    result = run(raw, raw / "preprocessed")
    assert result.up_to_date == ["a.wav"] and result.processed == [] and result.skipped == []


def test_demo_dataset_is_music_like_and_preprocesses(tmp_path):
    started = time.monotonic()
    raw = render_demo_dataset(tmp_path / "raw", num_tracks=6, seconds=12.0, seed=0)
    elapsed = time.monotonic() - started
    assert elapsed < 6.0  # about 1 s on an idle core; generous for a loaded CI machine
    infos = {p.name: sf.info(p) for p in raw.iterdir() if p.suffix in (".wav", ".flac")}
    assert len(infos) == 6
    assert {i.samplerate for i in infos.values()} >= {44_100, 48_000}
    assert {i.channels for i in infos.values()} == {1, 2}
    assert all(abs(i.duration - 12.0) < 1e-3 for i in infos.values())
    prompts = {
        row["file"]: row["prompt"] for row in csv.DictReader(io.StringIO((raw / "prompts.csv").read_text()))
    }
    assert set(prompts) == set(infos)
    assert all(re.search(r", \d+ bpm, [A-G]#? (major|minor)$", p) for p in prompts.values())
    again = render_demo_dataset(tmp_path / "again", num_tracks=6, seconds=12.0, seed=0)
    assert all((again / n).read_bytes() == (raw / n).read_bytes() for n in infos)  # seeded

    result = AudioDataPreprocessor(target_duration=4.0).preprocess_directory(raw, tmp_path / "out")
    assert result.skipped == [] and len(result.entries) == 18
    assert {e.prompt for e in result.entries} == set(prompts.values())


def test_demo_dataset_beyond_six_tracks_varies_key_and_tempo(tmp_path):
    raw = render_demo_dataset(tmp_path, num_tracks=8, seconds=0.5)
    prompts = [row["prompt"] for row in csv.DictReader(io.StringIO((raw / "prompts.csv").read_text()))]
    assert len(prompts) == len(set(prompts)) == 8
    with pytest.raises(ValueError, match="num_tracks"):
        render_demo_dataset(tmp_path, num_tracks=0)
