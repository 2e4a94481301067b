"""Benchmark: the fast engine's token choice, whole-vocabulary sort vs ``torch.topk`` candidates (issue 19).

Times :func:`choose_tokens` (guidance, temperature, top-k, nucleus bookkeeping, exponential race) on
random logits of MusicGen's shape (4 codebooks, 2048 codes, guidance rows) for a few batch sizes: once
sorting the whole vocabulary (``top_k`` off or beyond the candidates) and once ranking the
``--candidates`` largest scores (``0 < top_k <= candidates``, e.g. the default ``top_k=250``). Both choose
the same tokens (tests/pipeline/inference/test_fast_topk.py); this measures what the step saves.

    python bench/sampling.py                       # CPU, one thread
    python bench/sampling.py --device cuda         # on GPU (CUDA events via synchronisation)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from benchlib import machine_info, sync, write_results

from musicgen_ops.pipeline.inference.static_decoder import choose_tokens


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N].")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16], help="Prompts per step.")
    parser.add_argument("--vocab", type=int, default=2048, help="Codes per codebook (MusicGen: 2048).")
    parser.add_argument("--top-k", type=int, default=250, help="The request's top_k (MusicGen default 250).")
    parser.add_argument("--candidates", type=int, default=256, help="FastEngineConfig.top_k_candidates.")
    parser.add_argument("--iterations", type=int, default=300, help="Timed calls per case.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default).")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: bench/results/...).")
    return parser.parse_args(argv)


def buffers(batch: int, vocab: int, top_k: int, device: str) -> SimpleNamespace:
    """The fields :func:`choose_tokens` reads, sampling on, guidance on, nucleus off."""
    return SimpleNamespace(
        batch=batch,
        position=torch.zeros(1, dtype=torch.long, device=device),
        noise=torch.ones(batch, 1, 4, vocab, device=device),
        noise_window=1,
        top_k_index=torch.tensor([top_k - 1], device=device),
        guidance=torch.tensor(3.0, device=device),
        use_guidance=torch.tensor(True, device=device),
        do_sample=torch.tensor(True, device=device),
        temperature=torch.tensor(1.0, device=device),
        top_p=torch.tensor(2.0, device=device),
    )


def microseconds(logits: torch.Tensor, buf: SimpleNamespace, candidates: int | None, args) -> float:
    for _ in range(20):
        choose_tokens(logits, buf, candidates)
    sync(args.device)
    start = time.perf_counter()
    for _ in range(args.iterations):
        choose_tokens(logits, buf, candidates)
    sync(args.device)
    return (time.perf_counter() - start) / args.iterations * 1e6


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = []
    for batch in args.batches:
        generator = torch.Generator().manual_seed(batch)
        logits = torch.randn(2 * batch, 4, args.vocab, generator=generator).to(args.device)
        buf = buffers(batch, args.vocab, args.top_k, args.device)
        same = torch.equal(choose_tokens(logits, buf), choose_tokens(logits, buf, args.candidates))
        sort_us = microseconds(logits, buf, None, args)
        topk_us = microseconds(logits, buf, args.candidates, args)
        case = {
            "batch": batch,
            "sort_us": round(sort_us, 1),
            "topk_us": round(topk_us, 1),
            "speedup": round(sort_us / topk_us, 2),
            "same_tokens": same,
        }
        print(json.dumps(case))
        cases.append(case)
    result = {
        "benchmark": "sampling",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "cases": cases,
        "machine": machine_info(args.device),
    }
    write_results(result, "sampling", args.device, args.output)
    return result


if __name__ == "__main__":
    main()
