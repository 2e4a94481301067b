"""A small demo dataset that sounds like music, rendered with numpy (no downloads, no samples).

Each track has a style, tempo and key: a chord progression of harmonic-rich voices with envelopes, a bass
line on the chord roots, and kick/hat drums on the beat. Files come at mixed sample rates and channel
counts (as a user's folder would) with a ``prompts.csv`` describing each.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOTE_INDEX = {
    "C": 0,
    "C#": 1,
    "D": 2,
    "D#": 3,
    "E": 4,
    "F": 5,
    "F#": 6,
    "G": 7,
    "G#": 8,
    "A": 9,
    "A#": 10,
    "B": 11,
}
MAJOR_PROGRESSION = [(0, "major"), (7, "major"), (9, "minor"), (5, "major")]  # I V vi IV
MINOR_PROGRESSION = [(0, "minor"), (8, "major"), (3, "major"), (10, "major")]  # i VI III VII


@dataclass(frozen=True)
class DemoTrack:
    """What one demo track is made of."""

    name: str
    style: str
    bpm: int
    key: str
    scale: str
    brightness: int  # number of harmonics in the chord voices
    sample_rate: int
    stereo: bool
    extension: str

    @property
    def prompt(self) -> str:
        return f"{self.style}, {self.bpm} bpm, {self.key} {self.scale}"


TRACKS = (
    DemoTrack("sunny_pop", "upbeat pop with bright piano chords", 120, "C", "major", 6, 44_100, True, "wav"),
    DemoTrack("night_funk", "funk groove with slap bass", 104, "E", "minor", 4, 48_000, False, "flac"),
    DemoTrack("lofi_study", "chill lofi hip hop with warm pads", 80, "A", "minor", 3, 44_100, True, "flac"),
    DemoTrack("stadium_rock", "energetic rock with driving drums", 140, "G", "major", 8, 48_000, True, "wav"),
    DemoTrack("slow_ambient", "calm ambient pad", 70, "D", "major", 2, 22_050, False, "wav"),
    DemoTrack(
        "disco_lights", "disco house with four on the floor", 124, "F", "minor", 5, 44_100, False, "flac"
    ),
)


def _midi_to_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _voice(freq: float, n: int, rate: int, harmonics: int) -> np.ndarray:
    t = np.arange(n) / rate
    wave = sum(np.sin(2 * np.pi * freq * h * t) / h for h in range(1, harmonics + 1))
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-t * 1.5)
    return wave * envelope


def render_track(track: DemoTrack, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Render one track as float32 ``[samples, channels]``."""
    rate = track.sample_rate
    total = int(seconds * rate)
    beat = int(rate * 60 / track.bpm)
    bar = beat * 4
    out = np.zeros(total)
    root = 48 + NOTE_INDEX[track.key]
    progression = MAJOR_PROGRESSION if track.scale == "major" else MINOR_PROGRESSION
    for index, start in enumerate(range(0, total, bar)):
        degree, quality = progression[index % len(progression)]
        third = 4 if quality == "major" else 3
        n = min(bar, total - start)
        for interval in (0, third, 7):
            out[start : start + n] += 0.12 * _voice(
                _midi_to_hz(root + 12 + degree + interval), n, rate, track.brightness
            )
        for b in range(4):  # bass on every beat
            s = start + b * beat
            if s < total:
                m = min(beat, total - s)
                out[s : s + m] += 0.25 * _voice(_midi_to_hz(root - 12 + degree), m, rate, 2)
    kick_t = np.arange(int(0.15 * rate)) / rate
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-kick_t * 30)) * kick_t) * np.exp(-kick_t * 20)
    hat = rng.standard_normal(int(0.05 * rate)) * np.exp(-np.arange(int(0.05 * rate)) / rate * 80)
    for s in range(0, total, beat):
        m = min(len(kick), total - s)
        out[s : s + m] += 0.6 * kick[:m]
        h = s + beat // 2
        if h < total:
            m = min(len(hat), total - h)
            out[h : h + m] += 0.08 * hat[:m]
    out = 0.8 * out / np.abs(out).max()
    if track.stereo:
        pan = 0.1 * np.sin(2 * np.pi * 0.25 * np.arange(total) / rate)
        return np.stack([out * (1 - pan), out * (1 + pan)], axis=1).astype(np.float32)
    return out[:, None].astype(np.float32)


def render_demo_dataset(
    output_dir: str | Path, num_tracks: int = 6, seconds: float = 12.0, seed: int = 0
) -> Path:
    """Write up to ``num_tracks`` demo tracks and their ``prompts.csv`` into ``output_dir``; return it."""
    import soundfile as sf

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for track in TRACKS[:num_tracks]:
        filename = f"{track.name}.{track.extension}"
        sf.write(output_dir / filename, render_track(track, seconds, rng), track.sample_rate)
        rows.append({"file": filename, "prompt": track.prompt})
    with open(output_dir / "prompts.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "prompt"])
        writer.writeheader()
        writer.writerows(rows)
    return output_dir
