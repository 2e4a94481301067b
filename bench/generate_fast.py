"""Benchmark: Hugging Face ``generate()`` (eager) against the fast engine (static cache + CUDA graphs)
and ONNX Runtime (``onnx``: an fp32 export made when its turn comes, IO binding, CUDA provider).

All run in this one process on the same device and the same model (``*-random`` presets: random
weights, no download), sampling with top-k 250 and guidance 3 (MusicGen's defaults). For every
(engine, batch, duration) case it reports the min and median wall time of ``--repeats`` runs after one
untimed run, decoder steps per second, real-time factor (audio seconds per wall second, per stream and
summed over the batch) and peak GPU memory; for the fast engine also its warm-up (graph capture) time
and whether anything was captured after warm-up. Results are written after every case, so a run cut
short by ``--max-wall-s`` or a timeout still leaves its JSON.

    python bench/generate_fast.py --device cpu --threads 1        # CPU smoke run -> bench/results/
    python bench/generate_fast.py --device cuda                   # H100: small-random, bf16, 1/16 x 10/30 s
    python bench/generate_fast.py --device cuda --compile         # the same, step fused by torch.compile
    bench/gpu.sh                                                  # the prepared GPU run (fast, onnx, hf)
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchlib import device_name, machine_info, sync

ROOT = Path(__file__).resolve().parent
PROMPTS = [
    "lofi hip hop beat with warm piano and vinyl crackle",
    "energetic rock drums and distorted guitar riff",
    "calm ambient pad with strings",
    "funk bass groove with disco drums",
]
DEFAULTS = {  # per device: preset, dtype, batches, durations (s), repeats
    "cuda": ("small-random", "bfloat16", "1,16", "10,30", 3),
    "cpu": ("tiny-random", "float32", "1,4", "0.5,1", 3),
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
    parser.add_argument("--batches", default=None, help="Comma-separated batch sizes (cuda: 1,16).")
    parser.add_argument("--durations", default=None, help="Comma-separated seconds of audio (cuda: 10,30).")
    parser.add_argument("--repeats", type=int, default=None, help="Timed runs per case (>= 3 for reports).")
    parser.add_argument(
        "--engines", default="fast,hf", help="Which engines to run (fast, onnx, hf), in order."
    )
    parser.add_argument("--hf-durations", default=None, help="Only these durations for hf (default: all).")
    parser.add_argument("--attention", choices=("sdpa", "math"), default="sdpa")
    parser.add_argument("--no-graphs", action="store_true", help="Fast engine without CUDA graphs.")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="Fast engine, step fused by torch.compile (compile_step); buckets: the batches, 32 tokens.",
    )
    parser.add_argument("--max-wall-s", type=float, default=480.0, help="Skip cases started after this.")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default).")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: bench/results/...).")
    args = parser.parse_args(argv)
    preset, dtype, batches, durations, repeats = DEFAULTS[args.device]
    args.preset = args.preset or preset
    args.dtype = args.dtype or dtype
    args.batches = [int(b) for b in (args.batches or batches).split(",")]
    args.durations = [float(d) for d in (args.durations or durations).split(",")]
    args.hf_durations = [float(d) for d in args.hf_durations.split(",")] if args.hf_durations else None
    args.repeats = args.repeats or repeats
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    return args


def timed(device: str, fn) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def make_runner(engine_name: str, loaded, engines: dict, args, batch: int, frames: int):
    """A no-argument callable generating ``batch`` x ``frames`` with the chosen engine; returns timings."""
    from musicgen_ops.pipeline.inference.base import SamplingParams

    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    k = loaded.num_codebooks
    if engine_name in engines:
        params = SamplingParams(guidance_scale=3.0, top_k=250, seed=0)
        return lambda: engines[engine_name].generate(prompts, num_frames=frames, sampling=params).timings
    inputs = loaded.processor(text=prompts, padding=True, return_tensors="pt").to(args.device)

    def hf() -> dict:
        with torch.inference_mode():
            loaded.model.generate(
                **inputs, do_sample=True, top_k=250, guidance_scale=3.0, max_new_tokens=frames + k - 1
            )
        return {}

    return hf


def run_case(engine_name, loaded, engines: dict, args, batch: int, seconds: float) -> dict:
    frames = round(seconds * loaded.frame_rate)
    steps = frames + loaded.num_codebooks - 1
    fast_engine = engines.get("fast")
    run = make_runner(engine_name, loaded, engines, args, batch, frames)
    first = timed(args.device, run)  # untimed for the statistics: first-call costs
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    walls, timings = [], []
    for _ in range(args.repeats):
        sync(args.device)
        start = time.perf_counter()
        timings.append(run())
        sync(args.device)
        walls.append(time.perf_counter() - start)
    median = statistics.median(walls)
    case = {
        "engine": engine_name,
        "batch": batch,
        "audio_seconds": seconds,
        "frames": frames,
        "steps": steps,
        "first_call_s": round(first, 4),
        "wall_s_min": round(min(walls), 4),
        "wall_s_median": round(median, 4),
        "wall_s_all": [round(w, 4) for w in walls],
        "steps_per_s": round(steps / median, 2),
        "realtime_factor": round(seconds / median, 3),
        "aggregate_realtime": round(batch * seconds / median, 3),
    }
    if timings and timings[0]:
        keys = sorted(set().union(*timings) - {"steps"})
        case["timings_median_s"] = {
            key: round(statistics.median(t.get(key, 0.0) for t in timings), 4) for key in keys
        }
        case["decode_steps_per_s"] = round(
            steps / max(case["timings_median_s"].get("decode", median), 1e-9), 2
        )
    if args.device == "cuda":
        case["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if fast_engine is not None and engine_name == "fast":
        case["late_graph_captures"] = fast_engine.late_captures
    return case


def greedy_agreement(loaded, fast_engine, args, frames: int = 100) -> dict:
    """Share of codes on which fast greedy decoding agrees with ``generate()`` greedy (bf16 may flip
    near-ties; float32 agrees exactly, which the CPU test proves)."""
    from musicgen_ops.pipeline.codes import revert_delay_pattern
    from musicgen_ops.pipeline.inference.base import SamplingParams

    k, frames = loaded.num_codebooks, min(frames, fast_engine.max_frames)
    inputs = loaded.processor(text=PROMPTS[:2], padding=True, return_tensors="pt").to(args.device)
    with torch.inference_mode():
        out = loaded.model.generate(
            **inputs,
            do_sample=False,
            guidance_scale=3.0,
            max_new_tokens=frames + k - 1,
            return_dict_in_generate=True,
            output_scores=True,
        )
    delayed = torch.stack(out.scores).argmax(-1).view(len(out.scores), 2, k).permute(1, 2, 0)
    ref = revert_delay_pattern(delayed).cpu()
    fast = fast_engine.generate(PROMPTS[:2], num_frames=frames, sampling=SamplingParams(do_sample=False))
    codes = torch.from_numpy(fast.codes)
    same = (codes == ref).float()
    first_diff = (same.min(dim=1).values < 1).nonzero()
    return {
        "frames": frames,
        "equal_fraction": round(float(same.mean()), 4),
        "first_differing_frame": int(first_diff[0, 1]) if len(first_diff) else None,
    }


def open_onnx(loaded, args, result: dict, workdir: Path):
    """Export the (still float32, CPU) model to ONNX and open it on ONNX Runtime's CUDA provider
    (CPU provider on ``--device cpu``); ``None`` (with the reason in ``result["skipped"]``) when the
    installed onnxruntime has no CUDA provider."""
    import onnxruntime as ort

    from musicgen_ops.pipeline.export.exporter import MusicGenExporter
    from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine

    cuda = args.device == "cuda"
    if cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
        reason = f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (install onnxruntime-gpu)"
        result["skipped"].append({"engine": "onnx", "reason": reason})
        print(f"skipping onnx: {reason}", file=sys.stderr, flush=True)
        return None
    started = time.perf_counter()
    MusicGenExporter(loaded.model, loaded.processor).export_to_onnx(workdir / "onnx", verify=False)
    exported = time.perf_counter()
    engine = ONNXInferenceEngine(workdir, use_gpu=cuda, precision="fp32", intra_op_threads=args.threads)
    result["onnx_setup"] = {
        "export_s": round(exported - started, 1),
        "session_s": round(time.perf_counter() - exported, 1),
        "providers": engine.providers,
        "precision": "fp32",
        "io_binding": engine.io_binding,
    }
    return engine


def run(args: argparse.Namespace) -> dict:
    from musicgen_ops.pipeline.inference.fast_engine import FastEngineConfig, FastGenerationEngine
    from musicgen_ops.pipeline.presets import build_random_musicgen

    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    loaded = build_random_musicgen(args.preset)
    engines: dict = {}
    result = {
        "benchmark": "generate_fast",
        "config": {
            "preset": args.preset,
            "dtype": args.dtype,
            "device": args.device,
            "batches": args.batches,
            "durations": args.durations,
            "repeats": args.repeats,
            "attention": args.attention,
            "cuda_graphs": args.device == "cuda" and not args.no_graphs,
            "compile_step": args.compile,
            "sampling": {"top_k": 250, "guidance_scale": 3.0},
        },
        "machine": machine_info(args.device),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cases": [],
        "skipped": [],
    }
    output = args.output or ROOT / "results" / f"generate_fast-{slug(device_name(args.device))}.json"
    output.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        output.write_text(json.dumps(result, indent=2) + "\n")

    # ONNX is exported from a float32 CPU copy when its turn comes (so --max-wall-s can skip it).
    onnx_source = copy.deepcopy(loaded) if "onnx" in args.engines and args.device != "cpu" else loaded
    loaded.model.to(args.device, dtype)
    fast_engine = None
    if "fast" in args.engines:
        # Fused: only the measured batches and one prompt bucket, so compiling stays bounded.
        config = FastEngineConfig(
            batch_buckets=tuple(sorted({*args.batches} if args.compile else {1, 2, 4, 8, 16, *args.batches})),
            text_buckets=(32,) if args.compile else FastEngineConfig.text_buckets,
            length_buckets_s=tuple(sorted({10.0, 20.0, 30.0, *args.durations}))
            if args.device == "cuda"
            else tuple(args.durations),
            cuda_graphs=None if not args.no_graphs else False,
            attention=args.attention,
            compile_step=args.compile,
        )
        fast_engine = FastGenerationEngine(loaded, device=args.device, dtype=dtype, config=config)
        engines["fast"] = fast_engine
        warm = fast_engine.warmup()
        result["fast_warmup"] = {
            "seconds": round(warm["seconds"], 3),
            "graphs": int(warm["graphs"]),
            "compiled_steps": int(warm["compiled"]),
            "compile_s": round(warm["compile_seconds"], 1),
            "batch_buckets": list(config.batch_buckets),
            "length_buckets_s": list(config.length_buckets_s),
            "text_buckets": list(config.text_buckets),
            "engine_device_mib": round(fast_engine.memory_bytes / 2**20, 1),
        }
        result["greedy_agreement_with_hf"] = greedy_agreement(loaded, fast_engine, args)
        save()
    for engine_name in args.engines:
        if engine_name == "onnx" and time.perf_counter() - started <= args.max_wall_s:
            with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:  # sessions keep what they need
                onnx_engine = open_onnx(onnx_source, args, result, Path(tmp))
            del onnx_source
            gc.collect()
            if onnx_engine is None:
                continue  # no CUDA provider: the reason is in result["skipped"]
            engines["onnx"] = onnx_engine
            save()
        durations = args.durations
        if engine_name == "hf" and args.hf_durations:
            durations = [d for d in durations if d in args.hf_durations]
        for seconds in durations:
            for batch in args.batches:
                label = {"engine": engine_name, "batch": batch, "audio_seconds": seconds}
                if time.perf_counter() - started > args.max_wall_s:
                    result["skipped"].append({**label, "reason": f"--max-wall-s {args.max_wall_s} reached"})
                    continue
                case = run_case(engine_name, loaded, engines, args, batch, seconds)
                result["cases"].append(case)
                print(json.dumps(case), flush=True)
                save()
                gc.collect()
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    save()
    print(f"written to {output}", file=sys.stderr)
    return result


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def main(argv: list[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
