"""Benchmark: EnCodec vs MultiBand Diffusion decode time per second of audio (and their ratio).

Both decoders get the same random codes (batch 1) from the same MusicGen codec; MBD runs its published
sampling (20 steps per band, 4 bands, 32-band equaliser) unless ``--steps`` says otherwise. Reported per
case: wall seconds, seconds of decode per second of audio, and MBD / EnCodec.

    python bench/decode.py                                  # CPU, tiny-random codec + tiny MBD bands
    python bench/decode.py --device cuda --preset small-random --unet basic --seconds 10 30

``--unet basic`` builds random bands of audiocraft's ``config/model/score/basic.yaml`` shape (hidden 48,
depth 4, stride 4, kernel 8, growth 4) with the bottleneck of ``--bottleneck``; the published checkpoint's
own config decides its bottleneck, so that shape approximates the real decoder's cost, it is not it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from benchlib import machine_info, sync, write_results

from musicgen_ops.pipeline.inference.decoders.mbd import MultiBandDiffusionDecoder
from musicgen_ops.pipeline.inference.decoders.mbd_checkpoint import TINY_UNET, build_random_bands
from musicgen_ops.pipeline.inference.decoders.mbd_unet import UnetConfig, count_parameters
from musicgen_ops.pipeline.presets import build_random_musicgen

BASIC_UNET = UnetConfig(hidden=48, depth=4, stride=4, kernel=8, growth=4.0, emb_all_layers=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=("tiny-random", "small-random"), default="tiny-random")
    parser.add_argument("--unet", choices=("tiny", "basic"), default="tiny", help="MBD band size.")
    parser.add_argument("--bottleneck", choices=("transformer", "bilstm", "none"), default="transformer")
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 2.0], help="Audio lengths to time.")
    parser.add_argument("--steps", type=int, default=20, help="MBD diffusion steps per band (published: 20).")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N].")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per case (the minimum is kept).")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default).")
    parser.add_argument("--note", default="", help="Free text stored with the result (load, setup).")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: bench/results/...).")
    return parser.parse_args(argv)


def best_time(decode, codes: torch.Tensor, device: str, repeats: int) -> float:
    """Minimum wall seconds of ``decode(codes)`` over ``repeats`` runs, after one warm-up."""
    decode(codes)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        decode(codes)
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_random_musicgen(args.preset).model.to(args.device)
    codec = model.audio_encoder
    unet = TINY_UNET if args.unet == "tiny" else BASIC_UNET
    unet = replace(unet, transformer=args.bottleneck == "transformer", bilstm=args.bottleneck == "bilstm")
    bands = build_random_bands(int(codec.config.codebook_dim), int(codec.config.sampling_rate), unet=unet)
    mbd = MultiBandDiffusionDecoder(bands, codec, num_codebooks=4, sampling_steps=args.steps)

    def encodec(codes: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return codec.decode(codes[None], [None]).audio_values

    cases = []
    for seconds in args.seconds:
        frames = round(seconds * 50)
        codes = torch.randint(0, 2048, (1, 4, frames), generator=torch.Generator().manual_seed(0)).to(
            args.device
        )
        encodec_s = best_time(encodec, codes, args.device, args.repeats)
        mbd_s = best_time(lambda c: mbd.decode(c, seeds=0), codes, args.device, args.repeats)
        case = {
            "audio_seconds": seconds,
            "encodec_seconds": round(encodec_s, 4),
            "mbd_seconds": round(mbd_s, 4),
            "encodec_seconds_per_audio_second": round(encodec_s / seconds, 4),
            "mbd_seconds_per_audio_second": round(mbd_s / seconds, 4),
            "mbd_over_encodec": round(mbd_s / encodec_s, 1),
        }
        print(json.dumps(case))
        cases.append(case)
    result = {
        "benchmark": "decode",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "mbd_parameters": sum(count_parameters(band.model) for band in bands),
        "encodec_parameters": count_parameters(codec),
        "unet": asdict(unet),
        "cases": cases,
        "machine": machine_info(args.device),
    }
    write_results(result, "decode", args.device, args.output)
    return result


if __name__ == "__main__":
    main()
