"""What every benchmark records about where it ran, and device synchronisation for honest timings."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import torch


def device_name(device: str) -> str:
    """The GPU's product name, or ``cpu``."""
    return torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"


def machine_info(device: str) -> dict:
    """Where the numbers were measured: machine, load, library versions, GPU."""
    import peft
    import transformers

    info = {
        "device_name": device_name(device),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }
    if device.startswith("cuda"):
        info["gpu"] = device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def sync(device: str) -> None:
    """Wait for queued GPU work, so wall-clock timings cover it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def write_results(result: dict, name: str, device: str, output: Path | None = None) -> Path:
    """Write ``result`` as JSON to ``output`` (default ``bench/results/<name>-<cpu|gpu>.json``)."""
    tag = "cpu" if device == "cpu" else "gpu"
    path = output or Path(__file__).resolve().parent / "results" / f"{name}-{tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return path
