"""A small demo dataset that sounds like music, rendered with numpy (no downloads, no samples).

Each track has a style, tempo and key: a chord progression of harmonic-rich voices with envelopes, a bass
line on the chord roots, and kick/hat drums on the beat. Files come at mixed sample rates and channel
counts (as a user's folder would) with a ``prompts.csv`` describing each.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
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
        """The text prompt naming style, tempo and key."""
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
    """A plucked, harmonic-rich note of ``n`` samples (1/h harmonic amplitudes, fast attack, decay)."""
    t = np.arange(n, dtype=np.float32) / rate
    phase = (2 * np.pi * freq) * t
    wave = sum(np.sin(phase * h) / h for h in range(1, harmonics + 1))
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-t * 1.5)
    return wave * envelope


def variation(track: DemoTrack, round_index: int) -> DemoTrack:
    """Track ``track`` transposed and re-tempoed for the ``round_index``-th pass over :data:`TRACKS`."""
    if round_index == 0:
        return track
    keys = list(NOTE_INDEX)
    key = keys[(NOTE_INDEX[track.key] + 5 * round_index) % 12]  # move round the circle of fourths
    return replace(track, name=f"{track.name}_{round_index + 1}", key=key, bpm=track.bpm + 6 * round_index)


def render_track(track: DemoTrack, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Render one track as float32 ``[samples, channels]``."""
    rate = track.sample_rate
    total = int(seconds * rate)
    beat = int(rate * 60 / track.bpm)
    bar = beat * 4
    out = np.zeros(total, dtype=np.float32)
    root = 48 + NOTE_INDEX[track.key]
    progression = MAJOR_PROGRESSION if track.scale == "major" else MINOR_PROGRESSION
    chords: dict[int, np.ndarray] = {}  # the progression repeats: render each chord and bass note once
    basses: dict[int, np.ndarray] = {}
    for index, start in enumerate(range(0, total, bar)):
        degree, quality = progression[index % len(progression)]
        if degree not in chords:
            third = 4 if quality == "major" else 3
            chords[degree] = sum(
                0.12 * _voice(_midi_to_hz(root + 12 + degree + i), bar, rate, track.brightness)
                for i in (0, third, 7)
            )
            basses[degree] = 0.25 * _voice(_midi_to_hz(root - 12 + degree), beat, rate, 2)
        n = min(bar, total - start)
        out[start : start + n] += chords[degree][:n]
        for b in range(4):  # bass on every beat
            s = start + b * beat
            if s < total:
                m = min(beat, total - s)
                out[s : s + m] += basses[degree][:m]
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
    out = 0.8 * out / max(float(np.abs(out).max()), 1e-9)
    if track.stereo:
        pan = 0.1 * np.sin(2 * np.pi * 0.25 * np.arange(total) / rate)
        return np.stack([out * (1 - pan), out * (1 + pan)], axis=1).astype(np.float32)
    return out[:, None].astype(np.float32)


def demo_tracks(num_tracks: int) -> list[DemoTrack]:
    """The first ``num_tracks`` tracks: :data:`TRACKS`, then variations of them in other keys/tempos."""
    return [variation(TRACKS[i % len(TRACKS)], i // len(TRACKS)) for i in range(num_tracks)]


def render_demo_dataset(
    output_dir: str | Path, num_tracks: int = 6, seconds: float = 12.0, seed: int = 0
) -> Path:
    """Write ``num_tracks`` demo tracks and their ``prompts.csv`` into ``output_dir``; return it.

    Args:
        output_dir: folder to write into (created if needed).
        num_tracks: how many tracks; beyond the six styles, variations in other keys and tempos follow.
        seconds: length of each track.
        seed: seeds the hi-hat noise, so the same arguments give the same files.
    """
    import soundfile as sf

    if num_tracks < 1:
        raise ValueError(f"num_tracks must be at least 1, got {num_tracks}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for track in demo_tracks(num_tracks):
        filename = f"{track.name}.{track.extension}"
        sf.write(output_dir / filename, render_track(track, seconds, rng), track.sample_rate)
        rows.append({"file": filename, "prompt": track.prompt})
    with open(output_dir / "prompts.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "prompt"])
        writer.writeheader()
        writer.writerows(rows)
    return output_dir
