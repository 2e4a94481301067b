"""Benchmark: one long track by token-level continuation (what ``engine=auto`` does on a GPU).

Opens the fast (or torch) engine on a ``*-random`` preset (random weights, no download), warms it up,
then generates ``--duration`` seconds (default 300) in windows of ``--window`` seconds moving by
``--stride`` (30 and 18, audiocraft's), and reports wall time, windows, real-time factor, peak GPU
memory, and for the fast engine its warm-up time and late graph captures. Checks the exact length and
finite audio. With ``--check-greedy`` it also generates the same track greedily with both engines and
reports whether their codes are equal (a GPU run in bf16 may differ where logits nearly tie).

    python bench/long_track.py --device cpu --preset tiny-random --duration 3 --window 0.4 --stride 0.24
    python bench/long_track.py --device cuda                       # small-random, 300 s, fast engine
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import machine_info, sync

from musicgen_ops.pipeline.generation.windowing import generate_windowed, num_samples_for, window_frames_for
from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.presets import build_random_musicgen

ROOT = Path(__file__).resolve().parent


class CodesTap:
    """Wraps an engine and keeps every window's new codes (for the greedy comparison)."""

    def __init__(self, engine):
        self.engine, self.codes = engine, []
        for name in ("sample_rate", "frame_rate", "max_frames", "decoder", "supports_item_seeds"):
            setattr(self, name, getattr(engine, name))

    def generate(self, prompts, **kwargs):
        out = self.engine.generate(prompts, **kwargs)
        self.codes.append(out.codes)
        return out


def open_engine(kind: str, loaded, device: str):
    if kind == "fast":
        from musicgen_ops.pipeline.inference.fast_engine import FastGenerationEngine

        return FastGenerationEngine(loaded, device=device)
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    return TorchEngine(loaded, device=device, dtype="bfloat16" if device.startswith("cuda") else None)


def run(engine, args, sampling: SamplingParams, tap: bool = False) -> tuple[dict, list[np.ndarray]]:
    target = CodesTap(engine) if tap else engine
    samples = num_samples_for(args.duration, engine.sample_rate)
    sync(args.device)
    started = time.perf_counter()
    audio, windows = generate_windowed(
        target,
        ["lofi hip hop beat with warm piano"] * args.batch,
        num_samples=samples,
        sampling=sampling,
        seeds=list(range(args.batch)),
        window_seconds=args.window,
        stride_seconds=args.stride,
    )
    sync(args.device)
    wall = time.perf_counter() - started
    assert audio.shape == (args.batch, samples) and np.isfinite(audio).all()
    report = {
        "wall_s": round(wall, 3),
        "windows": windows,
        "audio_s": args.duration,
        "rtf_per_stream": round(args.duration / wall, 3),
        "exact_length": True,
    }
    return report, (target.codes if tap else [])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default=None, help="tiny-random or small-random (default by device)")
    parser.add_argument("--engine", default="fast", choices=["fast", "torch"])
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--stride", type=float, default=18.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--check-greedy", action="store_true", help="also compare fast and torch greedy codes"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "results" / "long_track.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = args.preset or ("small-random" if args.device.startswith("cuda") else "tiny-random")
    loaded = build_random_musicgen(preset)
    engine = open_engine(args.engine, loaded, args.device)
    result: dict = {"machine": machine_info(args.device), "preset": preset, "engine": args.engine}
    result["window_frames"], result["stride_frames"] = window_frames_for(engine, args.window, args.stride)
    if hasattr(engine, "warmup"):
        result["warmup"] = engine.warmup()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    result["sampled"], _ = run(engine, args, SamplingParams(top_k=250, guidance_scale=3.0))
    if args.device.startswith("cuda"):
        result["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    result["late_captures"] = getattr(engine, "late_captures", 0)
    if args.check_greedy:
        greedy = SamplingParams(do_sample=False, guidance_scale=3.0)
        other = open_engine("torch" if args.engine == "fast" else "fast", loaded, args.device)
        mine, my_codes = run(engine, args, greedy, tap=True)
        theirs, their_codes = run(other, args, greedy, tap=True)
        equal = [bool(np.array_equal(a, b)) for a, b in zip(my_codes, their_codes, strict=True)]
        result["greedy"] = {args.engine: mine, "other": theirs, "codes_equal_per_window": equal}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
