"""What every benchmark records about where it ran, and device synchronisation for honest timings."""

from __future__ import annotations

import os
import platform
import sys

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
