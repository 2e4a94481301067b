"""Benchmark: LoRA training throughput (samples/s) and peak memory of one MusicGen training step.

Uses the project's one training step (``musicgen_ops.pipeline.training.steps.compute_loss``) with
AdamW, gradient clipping and (on GPU) bf16/fp16 autocast, on random codes of the requested length
(no dataset, no download: the ``*-random`` presets have random weights).

    python bench/train_step.py                                  # CPU, tiny-random -> bench/results/
    python bench/train_step.py --preset small-random --device cuda --precision bf16 \
        --batch-size 4 --seconds 10
    python bench/train_step.py --world-sizes 1,2                # data-parallel: 1 then 2 processes

With ``--world-sizes`` each size runs as that many processes started by torch elastic's launcher (what
torchrun uses), one per GPU on CUDA or gloo processes on the CPU; the model is wrapped in DDP and every
process steps on its own batch of ``--batch-size`` clips, so throughput is ``world size x batch / step time``
and ``speedup`` compares each size with the first one of the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from benchlib import machine_info

ROOT = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=("tiny-random", "small-random"), default="tiny-random")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0, help="Clip length (50 code frames per second).")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="Timed optimizer steps.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first.")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default).")
    parser.add_argument(
        "--world-sizes", default="", help="Comma-separated process counts, e.g. 1,2 (data-parallel, DDP)."
    )
    parser.add_argument("--note", default="", help="Free text stored with the result (load, setup).")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: bench/results/...).")
    return parser.parse_args(argv)


def synthetic_batch(loaded, batch_size: int, seconds: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """A collated batch of random prompts and random codes, ``seconds`` long."""
    from musicgen_ops.pipeline.dataset import MusicGenCollator

    generator = torch.Generator().manual_seed(seed)
    frames = max(1, round(seconds * loaded.frame_rate))
    prompts = ["lofi hip hop beat with piano", "rock drums and guitar", "calm ambient pad", "funk bass"]
    items = []
    for index in range(batch_size):
        text = loaded.processor.tokenizer(prompts[index % len(prompts)], return_tensors="pt")
        codes = torch.randint(0, 2048, (loaded.num_codebooks, frames), generator=generator)
        items.append(
            {"input_ids": text.input_ids[0], "attention_mask": text.attention_mask[0], "codes": codes}
        )
    collator = MusicGenCollator(
        loaded.processor.tokenizer.pad_token_id, loaded.model.config.decoder.pad_token_id
    )
    return collator(items)


def timed_steps(args: argparse.Namespace) -> dict:
    """Warm up, then time ``args.steps`` optimizer steps in this process (one DDP rank under torchrun)."""
    import os

    import torch.distributed as dist

    from musicgen_ops.pipeline.presets import build_random_musicgen
    from musicgen_ops.pipeline.training.lora import apply_lora, parameter_counts
    from musicgen_ops.pipeline.training.steps import check_precision, compute_loss, model_inputs

    if args.threads:
        torch.set_num_threads(args.threads)
    check_precision(args.precision, args.device)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device(args.device)
    if world > 1:
        if args.device == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    torch.manual_seed(0)
    loaded = build_random_musicgen(args.preset)
    model = apply_lora(loaded.model, r=args.lora_r, alpha=2 * args.lora_r, dropout=0.1).to(device)
    trainable, total = parameter_counts(model)
    batch = model_inputs(synthetic_batch(loaded, args.batch_size, args.seconds, seed=rank), device)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=args.precision == "fp16")
    model.train()

    def step() -> float:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = compute_loss(model, batch)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(step())
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if world > 1:
        dist.destroy_process_group()
    return {
        "times": times,
        "losses": losses,
        "trainable": trainable,
        "total": total,
        "frame_rate": loaded.frame_rate,
        "peak_gpu_memory_mib": (
            round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None
        ),
        # ru_maxrss is KiB on Linux: the process peak (model build included), not the step alone.
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _rank_main(args: argparse.Namespace) -> dict:
    """Entry point of one launched process."""
    sys.path.insert(0, str(ROOT))
    return timed_steps(args)


def launched(args: argparse.Namespace, world: int) -> dict:
    """Run :func:`timed_steps` as ``world`` processes (torch elastic, standalone); rank 0's timings, each
    step timed as the slowest rank saw it."""
    from torch.distributed.launcher.api import elastic_launch

    from musicgen_ops.pipeline.training.distributed import standalone_launch_config

    if world == 1:
        return timed_steps(args)
    if args.device == "cuda" and world > torch.cuda.device_count():
        raise SystemExit(f"--world-sizes {world} needs {world} GPUs, {torch.cuda.device_count()} visible")
    results = elastic_launch(standalone_launch_config(world), _rank_main)(args)
    first = results[0]
    first["times"] = [max(r["times"][i] for r in results.values()) for i in range(len(first["times"]))]
    return first


def run(args: argparse.Namespace, world: int = 1) -> dict:
    measured = launched(args, world)
    times, losses = measured["times"], measured["losses"]
    trainable, total = measured["trainable"], measured["total"]
    median = statistics.median(times)
    samples = args.batch_size * world
    result = {
        "benchmark": "train_step",
        "config": {
            "preset": args.preset,
            "batch_size": args.batch_size,
            "seconds": args.seconds,
            "code_frames": round(args.seconds * measured["frame_rate"]),
            "lora_r": args.lora_r,
            "precision": args.precision,
            "device": args.device,
            "steps": args.steps,
            "warmup": args.warmup,
            "world_size": world,
            "per_device_batch_size": args.batch_size,
        },
        "trainable_parameters": trainable,
        "total_parameters": total,
        "step_seconds_median": round(median, 4),
        "step_seconds_min": round(min(times), 4),
        "samples_per_second": round(samples / median, 3),
        "audio_seconds_per_second": round(samples * args.seconds / median, 3),
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "machine": machine_info(args.device),
        "note": args.note,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if measured["peak_gpu_memory_mib"] is not None:
        result["peak_gpu_memory_mib"] = measured["peak_gpu_memory_mib"]
    result["peak_rss_mib"] = measured["peak_rss_mib"]
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.world_sizes:
        runs = [run(args, int(size)) for size in args.world_sizes.split(",")]
        base = runs[0]["samples_per_second"]
        for entry in runs:
            entry["speedup"] = round(entry["samples_per_second"] / base, 3)
        result = {"benchmark": "train_step_data_parallel", "runs": runs}
        name = f"train_step-{args.device}-data-parallel.json"
    else:
        result, name = run(args), f"train_step-{args.device}.json"
    output = args.output or ROOT / "results" / name
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
