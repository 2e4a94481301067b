"""Benchmark of the serving path: seconds to generate N seconds of audio, and real-time factor, at batch 1
and batch 8 (engine comparisons at musicgen-small size: ``bench/generate.py``).

Compares, in the same run on the same machine:

* ``hf``: plain Hugging Face ``model.generate(**processor(text=...), do_sample=True, guidance_scale=3,
  top_k=250)`` (what a user would write);
* ``service``: this project's path: ``GenerationService.generate_track`` with N concurrent requests
  (different seeds) collected into one batch; includes per-request seeded sampling, windowing and
  writing WAV + JSON sidecar.

Plus a breakdown of one batch-1 generation: text encoder, decoder steps, EnCodec decode.
Real-time factor (RTF) = wall seconds / seconds of audio per request (below 1: faster than real time).

    python bench/serve.py                                    # CPU, small-random, 1 s of audio
    python bench/serve.py --device cuda --dtype bfloat16 --seconds 10 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import torch
from benchlib import machine_info, sync

ROOT = Path(__file__).resolve().parent
PROMPTS = ["lofi hip hop beat with piano", "rock drums and guitar", "calm ambient pad", "funk bass groove"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=("tiny-random", "small-random"), default="small-random")
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0], help="Audio lengths to time.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N].")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--repeats", type=int, default=1, help="Timed runs per case (the minimum is kept).")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default).")
    parser.add_argument("--note", default="", help="Free text stored with the result (load, setup).")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: bench/results/...).")
    return parser.parse_args(argv)


def time_hf(engine, batch: int, seconds: float, device: str) -> float:
    """Plain ``model.generate()`` with HF sampling: wall seconds for ``batch`` prompts."""
    frames = round(seconds * engine.frame_rate)
    inputs = engine.processor(text=[PROMPTS[i % 4] for i in range(batch)], padding=True, return_tensors="pt")
    inputs = {k: v.to(engine.device) for k, v in inputs.items()}
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        audio = engine.model.generate(
            **inputs,
            do_sample=True,
            guidance_scale=3.0,
            top_k=250,
            max_new_tokens=frames + engine.num_codebooks - 1,
        )
    sync(device)
    elapsed = time.perf_counter() - start
    assert audio.shape[0] == batch
    return elapsed


def time_service(
    loop: asyncio.AbstractEventLoop, service, batch: int, seconds: float, device: str, out: Path
) -> tuple[float, list[int]]:
    """``batch`` concurrent ``generate_track`` calls: wall seconds and the batch sizes they ran in."""

    async def run() -> list:
        return await asyncio.gather(
            *[
                service.generate_track(
                    {"prompt": PROMPTS[i % 4], "duration_seconds": seconds, "random_seed": i}, out
                )
                for i in range(batch)
            ]
        )

    sync(device)
    start = time.perf_counter()
    results = loop.run_until_complete(run())
    sync(device)
    return time.perf_counter() - start, sorted({r.batch_size for r in results})


def breakdown(engine, seconds: float, device: str) -> dict[str, float]:
    """Where one batch-1 generation spends its time: text encoder, decoder loop, codec decode."""
    model = engine.model
    frames = round(seconds * engine.frame_rate)
    inputs = engine.processor(text=[PROMPTS[0]], return_tensors="pt")
    inputs = {k: v.to(engine.device) for k, v in inputs.items()}
    with torch.inference_mode():
        sync(device)
        t0 = time.perf_counter()
        model.text_encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        sync(device)
        t1 = time.perf_counter()
        codes = torch.randint(0, 2048, (1, 1, engine.num_codebooks, frames), device=engine.device)
        model.audio_encoder.decode(codes, [None])
        sync(device)
        t2 = time.perf_counter()
    total = time_hf(engine, 1, seconds, device)
    steps = frames + engine.num_codebooks - 1
    decoder = max(0.0, total - (t1 - t0) - (t2 - t1))
    return {
        "total_seconds": round(total, 4),
        "text_encoder_seconds": round(t1 - t0, 4),
        "codec_decode_seconds": round(t2 - t1, 4),
        "decoder_loop_seconds": round(decoder, 4),
        "decoder_steps": steps,
        "seconds_per_decoder_step": round(decoder / steps, 5),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from musicgen_ops.contracts.environment import ServeEnvironment
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine
    from musicgen_ops.pipeline.presets import build_random_musicgen
    from musicgen_ops.serving.service import GenerationService

    started = time.perf_counter()
    engine = TorchEngine(build_random_musicgen(args.preset), device=args.device, dtype=args.dtype)
    load_seconds = time.perf_counter() - started
    print(f"built {args.preset} on {args.device} ({args.dtype}) in {load_seconds:.1f} s", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    settings = ServeEnvironment(
        default_model=args.preset,
        output_dir=workdir,
        models_root=workdir,
        max_batch_size=max(args.batch_sizes),
        batch_window_ms=50,
        max_queue=max(64, max(args.batch_sizes)),
        warmup=False,
    )
    service = GenerationService(settings, engine_factory=lambda ref: engine)
    loop = asyncio.new_event_loop()  # one loop for the service's whole life
    time_hf(engine, 1, 0.1, args.device)  # warm-up: lazy initialisation, kernels
    time_service(loop, service, 1, 0.1, args.device, workdir)

    cases = []
    for seconds in args.seconds:
        for batch in args.batch_sizes:
            hf = min(time_hf(engine, batch, seconds, args.device) for _ in range(args.repeats))
            runs = [
                time_service(loop, service, batch, seconds, args.device, workdir) for _ in range(args.repeats)
            ]
            svc, batch_sizes = min(runs)
            for path_name, wall in (("hf", hf), ("service", svc)):
                case = {
                    "path": path_name,
                    "audio_seconds": seconds,
                    "batch": batch,
                    "wall_seconds": round(wall, 3),
                    "rtf": round(wall / seconds, 3),
                    "audio_seconds_per_second": round(batch * seconds / wall, 3),
                }
                if path_name == "service":
                    case["ran_in_batches_of"] = batch_sizes
                cases.append(case)
                print(json.dumps(case), flush=True)
    split = breakdown(engine, args.seconds[0], args.device)
    print(json.dumps({"breakdown": split}), flush=True)
    device_kind = "gpu" if args.device.startswith("cuda") else "cpu"
    result = {
        "benchmark": "generate",
        "config": {
            "preset": args.preset,
            "device": args.device,
            "dtype": args.dtype,
            "seconds": args.seconds,
            "batch_sizes": args.batch_sizes,
            "repeats": args.repeats,
            "sampling": {"guidance_scale": 3.0, "top_k": 250, "temperature": 1.0},
        },
        "parameters": engine.model.num_parameters(),
        "model_build_seconds": round(load_seconds, 2),
        "cases": cases,
        "breakdown_batch1": split,
        "machine": machine_info(args.device),
        "note": args.note,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    loop.run_until_complete(service.close())
    loop.close()
    shutil.rmtree(workdir, ignore_errors=True)
    output = args.output or ROOT / "results" / f"serve-{device_kind}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
