"""Benchmark: the fast engine's decode step unfused (eager ops) against fused (``compile_step=True``).

For each variant it builds a fast engine with one bucket (``--batch`` prompts, ``--seconds`` of audio,
one prompt bucket), warms it up (compiling the fused step, capturing CUDA graphs on a GPU) and reports:
warm-up and compile seconds; ms per step (median of ``--repeats`` runs of ``--steps`` steps at the
bucket's attention window, sampling with top-k 250 and guidance 3); kernels per step, counted by
``torch.profiler`` over one step run directly (no graph replay): on CPU the operators that do work
(the outermost aten op of each call, views left out, plus inductor's ``cpp_fused_*`` kernels, which
``torch._inductor.config.cpp.enable_kernel_profile`` makes visible), on CUDA the device kernels; and
whether greedy codes of the fused engine equal the unfused engine's (float32 on CPU: they must).

    python bench/step_fusion.py --device cpu --threads 1                        # tiny-random -> results/
    python bench/step_fusion.py --device cpu --threads 1 --preset small-random --steps 20 --repeats 3
    python bench/step_fusion.py --device cuda                                   # small-random, bf16
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import sys
import time
from pathlib import Path

import torch
from benchlib import device_name, machine_info, sync

ROOT = Path(__file__).resolve().parent
PROMPTS = ["lofi hip hop beat with warm piano", "energetic rock drums and distorted guitar riff"]
#: Aten ops that only make views or change metadata (no kernel runs).
VIEW_OPS = {
    "aten::alias",
    "aten::as_strided",
    "aten::detach",
    "aten::empty",
    "aten::empty_strided",
    "aten::expand",
    "aten::lift_fresh",
    "aten::permute",
    "aten::reshape",
    "aten::resolve_conj",
    "aten::resolve_neg",
    "aten::select",
    "aten::set_",
    "aten::slice",
    "aten::squeeze",
    "aten::t",
    "aten::transpose",
    "aten::unbind",
    "aten::unsqueeze",
    "aten::view",
}
DEFAULTS = {  # per device: preset, dtype, batch, seconds, steps, repeats
    "cuda": ("small-random", "bfloat16", 4, 10.0, 200, 5),
    "cpu": ("tiny-random", "float32", 2, 1.0, 40, 5),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--preset", choices=("tiny-random", "small-random"), default=None)
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None)
    parser.add_argument("--batch", type=int, default=None, help="Prompts per step (the batch bucket).")
    parser.add_argument("--seconds", type=float, default=None, help="The length bucket (attention window).")
    parser.add_argument("--steps", type=int, default=None, help="Steps per timed run.")
    parser.add_argument("--repeats", type=int, default=None, help="Timed runs per variant.")
    parser.add_argument("--compile-mode", default="default", help="FastEngineConfig.compile_mode.")
    parser.add_argument("--no-graphs", action="store_true", help="No CUDA graphs (steps launched eagerly).")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default).")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: bench/results/...).")
    args = parser.parse_args(argv)
    preset, dtype, batch, seconds, steps, repeats = DEFAULTS[args.device]
    args.preset, args.dtype = args.preset or preset, args.dtype or dtype
    args.batch, args.seconds = args.batch or batch, args.seconds or seconds
    args.steps, args.repeats = args.steps or steps, args.repeats or repeats
    return args


def outermost_ops(events) -> list[str]:
    """Names of the operators that do work: the outermost aten op of every call chain (``linear``
    counts once, not as ``t`` + ``mm``), views left out, plus inductor's fused ``cpp_fused_*`` kernels."""
    names = []
    for e in events:
        if not (e.name.startswith("aten::") or "cpp_fused" in e.name) or e.name in VIEW_OPS:
            continue
        parent = e.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None:
            names.append(e.name)
    return names


def count_kernels(engine, buf, window: int, text: int, device: str) -> tuple[int, dict[str, int]]:
    """Kernels one step launches (run directly, not replayed), and the most frequent names."""
    from torch.profiler import ProfilerActivity, profile

    ws = engine.workspace
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        ws.run_step(ws.weights, buf, window, text, ws.attention, ws.candidates)
        sync(device)
    events = list(prof.events())
    if device == "cuda":
        kernels = [e.name for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    else:
        kernels = outermost_ops(events)
    names = collections.Counter(re.sub(r"^graph_\d+_", "", k)[:80] for k in kernels)
    return len(kernels), dict(names.most_common(12))


def measure(loaded, args, fuse: bool) -> tuple[dict, object]:
    """Warm-up, ms/step and kernels/step of one engine variant; returns them and the engine."""
    from musicgen_ops.pipeline.inference.base import SamplingParams
    from musicgen_ops.pipeline.inference.fast_engine import FastEngineConfig, FastGenerationEngine

    config = FastEngineConfig(
        batch_buckets=(args.batch,),
        length_buckets_s=(args.seconds,),
        text_buckets=(16,),
        cuda_graphs=False if args.no_graphs else None,
        compile_step=fuse,
        compile_mode=args.compile_mode,
    )
    engine = FastGenerationEngine(loaded, device=args.device, dtype=getattr(torch, args.dtype), config=config)
    warm = engine.warmup()
    ws, window, text = engine.workspace, engine.windows[-1], 16
    buf = ws.buffers(args.batch)
    sampling = SamplingParams(do_sample=True, guidance_scale=3.0, top_k=250, seed=0)
    steps = min(args.steps, window - 1)
    walls = []
    with torch.inference_mode():
        for _ in range(args.repeats + 1):  # the first run is untimed
            ws.reset(buf, num_frames=window - engine.delay_span, sampling=sampling)
            sync(args.device)
            started = time.perf_counter()
            for _ in range(steps):
                ws.step(buf, window, text)
            sync(args.device)
            walls.append(time.perf_counter() - started)
        ws.reset(buf, num_frames=window - engine.delay_span, sampling=sampling)
        kernels, names = count_kernels(engine, buf, window, text, args.device)
    walls = walls[1:]
    case = {
        "variant": "fused" if fuse else "eager-ops",
        "fused_active": ws.run_step.active,
        "warmup_s": round(warm["seconds"], 2),
        "compile_s": round(warm["compile_seconds"], 2),
        "compiled_buckets": int(warm["compiled"]),
        "graphs": int(warm["graphs"]),
        "steps": steps,
        "window": window,
        "ms_per_step_median": round(1000 * statistics.median(walls) / steps, 3),
        "ms_per_step_min": round(1000 * min(walls) / steps, 3),
        "kernels_per_step": kernels,
        "top_kernels": names,
        "late_compiles": ws.run_step.late_compiles,
    }
    return case, engine


def greedy_codes(engine, frames: int):
    from musicgen_ops.pipeline.inference.base import SamplingParams

    greedy = SamplingParams(do_sample=False, guidance_scale=3.0)
    return engine.generate(PROMPTS, num_frames=frames, sampling=greedy, decode=False).codes


def run(args: argparse.Namespace) -> dict:
    from musicgen_ops.pipeline.presets import build_random_musicgen

    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu":
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True  # fused CPU kernels show up in the profiler
    loaded = build_random_musicgen(args.preset)
    loaded.model.to(args.device, getattr(torch, args.dtype))
    result = {
        "benchmark": "step_fusion",
        "config": {
            key: getattr(args, key)
            for key in ("preset", "dtype", "device", "batch", "seconds", "steps", "repeats", "compile_mode")
        }
        | {"cuda_graphs": args.device == "cuda" and not args.no_graphs, "sampling": {"top_k": 250}},
        "machine": machine_info(args.device),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cases": [],
    }
    codes = {}
    for fuse in (False, True):
        case, engine = measure(loaded, args, fuse)
        codes[fuse] = greedy_codes(engine, min(50, engine.max_frames))
        result["cases"].append(case)
        print(json.dumps(case), flush=True)
        del engine
    same = codes[True] == codes[False]
    result["greedy_fused_equals_unfused"] = {
        "frames": int(same.shape[-1]),
        "equal_fraction": float(same.mean()),
    }
    eager, fused = result["cases"]
    result["speedup"] = round(eager["ms_per_step_median"] / fused["ms_per_step_median"], 3)
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    name = re.sub(r"[^a-z0-9]+", "-", device_name(args.device).lower()).strip("-")
    output = args.output or ROOT / "results" / f"step_fusion-{name}-{args.preset}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {output}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
