"""CPU generation speed and file sizes: PyTorch fp32 generate() vs ONNX Runtime fp32 vs ONNX Runtime INT8.

Reports seconds of audio generated per wall-clock second (higher is better) for the same prompts,
sampling settings and length, plus the exported file sizes. Writes bench/results/export_speed-cpu.json
(or --output). Example: ``python bench/export_speed.py --preset small-random --seconds 5``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

PROMPTS = ["calm piano melody with soft strings"]


def _best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny-random", choices=["tiny-random", "small-random"])
    parser.add_argument("--seconds", type=float, default=4.0, help="audio length per generation")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch/ORT threads (0: library default)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    import numpy as np
    import onnxruntime
    import torch

    from musicgen_ops.pipeline.export.exporter import MusicGenExporter
    from musicgen_ops.pipeline.inference.base import SamplingParams
    from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine
    from musicgen_ops.pipeline.presets import build_random_musicgen

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = build_random_musicgen(args.preset)
    frames = round(args.seconds * loaded.frame_rate)
    k = loaded.num_codebooks
    audio_seconds = frames / loaded.frame_rate * len(PROMPTS)
    params = SamplingParams(guidance_scale=3.0, temperature=1.0, top_k=250, do_sample=True, seed=0)
    inputs = loaded.processor(text=PROMPTS, padding=True, return_tensors="pt")

    def torch_run() -> None:
        torch.manual_seed(0)
        with torch.no_grad():
            loaded.model.generate(
                **inputs, do_sample=True, guidance_scale=3.0, top_k=250, max_new_tokens=frames + k - 1
            )

    results: dict[str, dict] = {}
    best, median = _best_of(torch_run, args.repeats)
    results["pytorch-fp32"] = {"best_s": best, "median_s": median}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        MusicGenExporter(loaded.model, loaded.processor).export_to_onnx(Path(tmp) / "onnx", quantize=True)
        export_seconds = time.perf_counter() - start
        folder = Path(tmp) / "onnx"
        sizes = {f.name: f.stat().st_size for f in sorted(folder.glob("*.onnx*"))}  # graphs + weights
        for precision in ("fp32", "int8"):
            engine = ONNXInferenceEngine(folder, precision=precision, intra_op_threads=args.threads)
            best, median = _best_of(
                lambda e=engine: e.generate(PROMPTS, num_frames=frames, sampling=params), args.repeats
            )
            results[f"onnx-{precision}"] = {"best_s": best, "median_s": median}
            part_files = {spec.files[precision] for spec in engine.descriptor.parts.values()}
            part_files |= {
                s.weights[precision] for s in engine.descriptor.parts.values() if precision in s.weights
            }
            results[f"onnx-{precision}"]["files_bytes"] = sum(sizes[f] for f in part_files)
    torch_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    results["pytorch-fp32"]["files_bytes"] = torch_bytes
    for entry in results.values():
        entry["audio_seconds_per_second"] = audio_seconds / entry["best_s"]
    base = results["pytorch-fp32"]["best_s"]
    for entry in results.values():
        entry["speedup_vs_pytorch"] = base / entry["best_s"]
    report = {
        "benchmark": "export_speed",
        "preset": args.preset,
        "audio_seconds_per_generation": audio_seconds,
        "frames": frames,
        "sampling": "guidance 3, top-k 250, temperature 1 (sampled)",
        "repeats": args.repeats,
        "export_seconds_onnx_plus_int8": export_seconds,
        "results": results,
        "onnx_file_sizes": sizes,
        "int8_vs_fp32_size": results["onnx-int8"]["files_bytes"] / results["onnx-fp32"]["files_bytes"],
        "machine": (
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
            f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, numpy {np.__version__}, "
            f"threads {args.threads or 'default'}, {time.strftime('%Y-%m-%d')}"
        ),
    }
    output = args.output or Path(__file__).parent / "results" / "export_speed-cpu.json"
    if args.preset != "tiny-random" and args.output is None:
        output = output.with_name(f"export_speed-cpu-{args.preset}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    for name, entry in results.items():
        print(
            f"{name:13s} {entry['audio_seconds_per_second']:7.2f} audio-s/s  best {entry['best_s']:.3f} s  "
            f"x{entry['speedup_vs_pytorch']:.2f}  {entry['files_bytes'] / 1e6:.1f} MB"
        )
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
