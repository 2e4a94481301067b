"""Benchmark: the generator server under load, clients vs outcomes, latency and audio throughput.

Starts ``musicgen-ops serve`` (the real process, on loopback) with a model preset, then for each client
count runs that many closed-loop clients posting synchronous ``POST /v1/generate`` requests for a fixed
time. Records per level: requests answered 200 / 429 / 5xx (and transport errors), p50/p99 latency of
the 200s, and audio-seconds generated per wall second.

    python bench/serve_load.py                                   # CPU, tiny-random, 1 4 16 clients
    python bench/serve_load.py --preset small-random --clients 1 8 32 64 --seconds 30 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from benchlib import machine_info

ROOT = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny-random", help="Model served (a preset or a model folder).")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=10.0, help="Load time per client count.")
    parser.add_argument("--audio-seconds", type=float, default=0.5, help="Length of each requested track.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-queue", type=int, default=8, help="Server's admission limit (429 beyond).")
    parser.add_argument("--output", type=Path, default=None, help="Result JSON (default bench/results/).")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace, folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICGEN_")}
    env.update(
        MUSICGEN_SERVE_OUTPUT_DIR=str(folder),
        MUSICGEN_SERVE_DEVICE=args.device,
        MUSICGEN_SERVE_MAX_QUEUE=str(args.max_queue),
        MUSICGEN_SERVE_WINDOW_SECONDS="5",
        MUSICGEN_SERVE_STRIDE_SECONDS="4",
    )
    command = [
        sys.executable,
        "-c",
        "from musicgen_ops.cli import main; main()",
        "serve",
        "--model",
        args.preset,
    ]
    command += ["--host", "127.0.0.1", "--port", str(port), "--uvicorn-log-level", "warning"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    process.kill()
    raise SystemExit("server not ready after 300 s")


def run_level(url: str, clients: int, seconds: float, audio_seconds: float) -> dict:
    latencies: list[float] = []
    counts = {"ok": 0, "busy_429": 0, "server_error_5xx": 0, "other": 0, "transport_error": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        body = {"prompt": "drums and bass", "duration_seconds": audio_seconds, "random_seed": index}
        with httpx.Client(base_url=url, timeout=120) as http:
            while time.monotonic() < stop_at:
                started = time.monotonic()
                try:
                    response = http.post("/v1/generate", params={"mode": "sync"}, json=body)
                except httpx.TransportError:
                    with lock:
                        counts["transport_error"] += 1
                    continue
                elapsed = time.monotonic() - started
                code = response.status_code
                key = (
                    "ok"
                    if code == 200
                    else "busy_429"
                    if code == 429
                    else "server_error_5xx"
                    if code >= 500
                    else "other"
                )
                with lock:
                    counts[key] += 1
                    if code == 200:
                        latencies.append(elapsed)
                if code == 429:
                    time.sleep(float(response.headers.get("retry-after", "1")) / 10)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    latencies.sort()

    def quantile(q: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 4) if latencies else None

    return {
        "clients": clients,
        "wall_seconds": round(wall, 2),
        **counts,
        "p50_seconds": quantile(0.5),
        "p99_seconds": quantile(0.99),
        "mean_seconds": round(statistics.fmean(latencies), 4) if latencies else None,
        "audio_seconds_per_second": round(counts["ok"] * audio_seconds / wall, 3),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as folder:
        process, url = start_server(args, Path(folder))
        try:
            levels = []
            for clients in args.clients:
                level = run_level(url, clients, args.seconds, args.audio_seconds)
                levels.append(level)
                print(json.dumps(level), flush=True)  # noqa: T201
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
    result = {
        "benchmark": "serve_load",
        "preset": args.preset,
        "audio_seconds_per_request": args.audio_seconds,
        "max_queue": args.max_queue,
        "seconds_per_level": args.seconds,
        "machine": machine_info(args.device),
        "levels": levels,
    }
    output = args.output or ROOT / "results" / f"serve_load-{args.device.split(':')[0]}.json"
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {output}")  # noqa: T201


if __name__ == "__main__":
    main()
