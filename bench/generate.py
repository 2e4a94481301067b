"""Benchmark: every CPU generation path on one model, in one process, runs interleaved.

Paths (``--engines``, in this order within every round):

* ``hf``: plain Hugging Face ``model.generate(do_sample=True, guidance_scale=3, top_k=250)``;
* ``torch``: this project's ``TorchEngine`` (``generate()`` with per-prompt seeded sampling);
* ``fast``: ``FastGenerationEngine`` (static KV cache; eager on CPU);
* ``onnx-fp32`` / ``onnx-int8``: ``ONNXInferenceEngine`` on an export made at the start of the run
  (IO binding, KV cache preallocated).

Every round runs each (batch, duration) case once per engine, so machine load drifts over all engines
alike; the report keeps min and median of ``--repeats`` rounds after one untimed warm-up per engine.
Per case: wall seconds, ms per decoder step, real-time factor (wall / audio seconds, below 1 is faster
than real time), speed-up over ``hf``. Also: file sizes (PyTorch fp32 weights, ONNX fp32, ONNX INT8),
resident memory after loading each engine and at the end, export time, and greedy code agreement of
INT8 with fp32 ONNX (free-running, and teacher-forced: INT8 fed fp32's tokens at every step).

    python bench/generate.py --preset tiny-random --seconds 0.5 --repeats 1      # smoke run
    OMP_NUM_THREADS=2 python bench/generate.py --preset small-random --seconds 2 --batch-sizes 1 4
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import machine_info

ROOT = Path(__file__).resolve().parent
PROMPTS = ["lofi hip hop beat with piano", "rock drums and guitar", "calm ambient pad", "funk bass groove"]
ENGINES = ("hf", "torch", "fast", "onnx-fp32", "onnx-int8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=("tiny-random", "small-random"), default="tiny-random")
    parser.add_argument("--seconds", type=float, nargs="+", default=[2.0], help="Audio lengths to time.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--repeats", type=int, default=2, help="Timed rounds (min and median are kept).")
    parser.add_argument("--threads", type=int, default=0, help="torch and ORT threads (0: library default).")
    parser.add_argument(
        "--agreement-frames", type=int, default=100, help="Frames for INT8 vs fp32 agreement."
    )
    parser.add_argument("--note", default="", help="Free text stored with the result (load, setup).")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: bench/results/...).")
    return parser.parse_args(argv)


def rss_mib() -> float:
    """Resident memory of this process now (MiB)."""
    text = Path("/proc/self/status").read_text()
    return round(int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024, 1)


def folder_bytes(folder: Path, names: set[str]) -> int:
    return sum((folder / name).stat().st_size for name in names)


def onnx_files(descriptor, precision: str) -> set[str]:
    """Graph and weight files one precision of an export reads (each counted once)."""
    files = {spec.files[precision] for spec in descriptor.parts.values()}
    files |= {spec.weights[precision] for spec in descriptor.parts.values() if precision in spec.weights}
    return files


def make_runner(name: str, engines: dict, loaded, batch: int, frames: int):
    """A no-argument callable generating ``batch`` prompts x ``frames`` frames with one engine."""
    from musicgen_ops.pipeline.inference.base import SamplingParams

    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    if name == "hf":
        inputs = loaded.processor(text=prompts, padding=True, return_tensors="pt")

        def hf() -> None:
            with torch.inference_mode():
                loaded.model.generate(
                    **inputs,
                    do_sample=True,
                    guidance_scale=3.0,
                    top_k=250,
                    max_new_tokens=frames + loaded.num_codebooks - 1,
                )

        return hf
    params = SamplingParams(guidance_scale=3.0, top_k=250, temperature=1.0, seed=0)
    return lambda: engines[name].generate(prompts, num_frames=frames, sampling=params)


def int8_agreement(fp32, int8, frames: int) -> dict:
    """Greedy codes of INT8 vs fp32 ONNX: free-running equality, and teacher-forced argmax agreement."""
    from musicgen_ops.pipeline.inference.base import SamplingParams
    from musicgen_ops.pipeline.inference.sampling import process_logits

    greedy = SamplingParams(do_sample=False, guidance_scale=3.0)
    prompts = PROMPTS[:2]
    a = fp32.generate(prompts, num_frames=frames, sampling=greedy).codes
    b = int8.generate(prompts, num_frames=frames, sampling=greedy).codes
    same = a == b
    differing = np.nonzero(~same.all(axis=1))
    # Teacher-forced: both fed fp32's delayed tokens; compare each step's guided argmax.
    k = fp32.constants.num_codebooks
    steps = frames + k - 1
    tokens = fp32.processor(text=prompts, padding=True, return_tensors="np")
    ids, mask = tokens["input_ids"].astype(np.int64), tokens["attention_mask"].astype(np.int64)
    states = []
    for engine in (fp32, int8):
        hidden = engine.run_text_encoder(ids, mask)
        hidden, full_mask = np.concatenate([hidden, np.zeros_like(hidden)]), np.concatenate([mask, mask * 0])
        states.append(engine.open_decoder(hidden, full_mask, steps))
    feed = np.full((len(prompts), k, 1), fp32.constants.bos_token_id, dtype=np.int64)
    agree = total = 0
    for _ in range(steps):
        doubled = np.concatenate([feed, feed])
        choices = [
            process_logits(s.run(doubled)[:, :, -1, :].reshape(-1, fp32.constants.vocab_size), greedy).argmax(
                -1
            )
            for s in states
        ]
        agree += int((choices[0] == choices[1]).sum())
        total += choices[0].size
        feed = choices[0].reshape(len(prompts), k, 1).astype(np.int64)
    return {
        "prompts": len(prompts),
        "frames": frames,
        "free_running_equal_fraction": round(float(same.mean()), 4),
        "first_differing_frame": int(differing[1].min()) if len(differing[1]) else None,
        "teacher_forced_argmax_agreement": round(agree / total, 4),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from musicgen_ops.pipeline.export.descriptor import ExportDescriptor
    from musicgen_ops.pipeline.export.exporter import MusicGenExporter
    from musicgen_ops.pipeline.inference.fast_config import FastEngineConfig
    from musicgen_ops.pipeline.inference.fast_engine import FastGenerationEngine
    from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine
    from musicgen_ops.pipeline.presets import build_random_musicgen

    memory: dict[str, float] = {"start": rss_mib()}
    started = time.perf_counter()
    loaded = build_random_musicgen(args.preset)
    build_seconds = time.perf_counter() - started
    memory["model"] = rss_mib()
    print(f"built {args.preset} in {build_seconds:.1f} s ({memory['model']} MiB)", flush=True)
    torch_bytes = sum(t.numel() * t.element_size() for t in loaded.model.state_dict().values())
    result: dict = {
        "benchmark": "generate",
        "config": {
            "preset": args.preset,
            "device": "cpu",
            "seconds": args.seconds,
            "batch_sizes": args.batch_sizes,
            "engines": args.engines,
            "repeats": args.repeats,
            "threads": args.threads or "default",
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "sampling": {"guidance_scale": 3.0, "top_k": 250, "temperature": 1.0},
        },
        "parameters": loaded.model.num_parameters(),
        "model_build_seconds": round(build_seconds, 1),
        "sizes_bytes": {"pytorch_fp32_weights": torch_bytes},
        "note": args.note,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info("cpu"),
    }
    engines: dict = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    try:
        if any(e.startswith("onnx") for e in args.engines):
            before = time.perf_counter()
            folder = workdir / "onnx"
            MusicGenExporter(loaded.model, loaded.processor).export_to_onnx(
                folder, quantize=True, verify=False
            )
            result["export_seconds_fp32_and_int8"] = round(time.perf_counter() - before, 1)
            descriptor = ExportDescriptor.load(folder)
            for precision in ("fp32", "int8"):
                names = onnx_files(descriptor, precision)
                result["sizes_bytes"][f"onnx_{precision}"] = folder_bytes(folder, names)
                result["sizes_bytes"][f"onnx_{precision}_files"] = {
                    n: (folder / n).stat().st_size for n in sorted(names)
                }
            sizes = result["sizes_bytes"]
            sizes["int8_smaller_than_pytorch_fp32"] = round(1 - sizes["onnx_int8"] / torch_bytes, 4)
            sizes["int8_smaller_than_onnx_fp32"] = round(1 - sizes["onnx_int8"] / sizes["onnx_fp32"], 4)
            memory["after_export"] = rss_mib()
            gc.collect()
        for name in args.engines:
            if name == "torch":
                engines[name] = TorchEngine(loaded)
            elif name == "fast":
                longest = max(args.seconds) + 0.1
                config = FastEngineConfig(
                    batch_buckets=tuple(sorted(set(args.batch_sizes))), length_buckets_s=(longest,)
                )
                engines[name] = FastGenerationEngine(loaded, device="cpu", config=config)
            elif name.startswith("onnx"):
                engines[name] = ONNXInferenceEngine(
                    workdir, precision=name.split("-")[1], intra_op_threads=args.threads
                )
            memory[f"after_{name}"] = rss_mib()
            make_runner(name, engines, loaded, 1, 5)()  # warm-up: lazy initialisation, allocations
        if {"onnx-fp32", "onnx-int8"} <= set(engines):
            result["int8_vs_fp32_greedy"] = int8_agreement(
                engines["onnx-fp32"], engines["onnx-int8"], args.agreement_frames
            )
            print(json.dumps(result["int8_vs_fp32_greedy"]), flush=True)
        walls: dict[tuple[str, int, float], list[float]] = {}
        for round_index in range(args.repeats):
            for seconds in args.seconds:
                for batch in args.batch_sizes:
                    frames = round(seconds * loaded.frame_rate)
                    for name in args.engines:
                        run = make_runner(name, engines, loaded, batch, frames)
                        start = time.perf_counter()
                        run()
                        wall = time.perf_counter() - start
                        walls.setdefault((name, batch, seconds), []).append(wall)
                        print(
                            f"round {round_index} {name:9s} batch {batch} {seconds} s: {wall:.2f} s",
                            flush=True,
                        )
        cases = []
        for (name, batch, seconds), times in walls.items():
            steps = round(seconds * loaded.frame_rate) + loaded.num_codebooks - 1
            best, median = min(times), statistics.median(times)
            hf = walls.get(("hf", batch, seconds))
            cases.append(
                {
                    "engine": name,
                    "batch": batch,
                    "audio_seconds": seconds,
                    "steps": steps,
                    "wall_s_min": round(best, 3),
                    "wall_s_median": round(median, 3),
                    "wall_s_all": [round(t, 3) for t in times],
                    "ms_per_step": round(1000 * best / steps, 1),
                    "rtf": round(best / seconds, 3),
                    "speedup_vs_hf": round(min(hf) / best, 2) if hf else None,
                }
            )
        result["cases"] = cases
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    memory["end"] = rss_mib()
    result["rss_mib"] = memory
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    output = args.output or ROOT / "results" / f"generate-cpu-{args.preset}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    for case in result["cases"]:
        print(json.dumps(case))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
