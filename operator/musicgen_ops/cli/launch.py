"""``train --devices N``: run the same command as N data-parallel processes through torch elastic's launcher.

The command line is rebuilt from the options the user typed (click records where each value came from), so
every ``train`` option reaches the workers unchanged; the workers find themselves under torchrun and train
data-parallel (gloo on the CPU, NCCL on GPUs).
"""

from __future__ import annotations

import os
import sys

import typer

from musicgen_ops.cli.console import exit_with_error


def typed_arguments(context: typer.Context) -> list[str]:
    """The options of ``context``'s command that came from the command line, as arguments again."""
    arguments: list[str] = []
    for param in context.command.params:
        if param.param_type_name != "option" or param.name is None:
            continue
        source = context.get_parameter_source(param.name)
        if source is None or source.name != "COMMANDLINE":
            continue
        value = context.params[param.name]
        if param.is_flag:
            names = param.opts if value else param.secondary_opts
            arguments.extend(sorted(names, key=len)[-1:])
        elif value is not None:
            arguments.extend([max(param.opts, key=len), str(value)])
    return arguments


def check_devices(devices: int, device: str) -> str:
    """Refuse a process count this machine cannot serve; returns what the processes run on (cpu/cuda)."""
    import torch

    if device.startswith("cuda:"):
        exit_with_error(f"--device {device} names one GPU: use --device cuda with --devices {devices}")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if not cuda:
        return "cpu"
    available = torch.cuda.device_count()
    if devices > available:
        exit_with_error(
            f"--devices {devices} asks for {devices} GPUs but {available} CUDA device(s) are visible"
        )
    return "cuda"


def check_torchrun_devices(devices: int | None) -> None:
    """Under torchrun, ``--devices`` (when given) must agree with its ``--nproc-per-node``."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if devices is not None and devices != local:
        exit_with_error(f"--devices {devices} disagrees with torchrun's --nproc-per-node {local}")


def relaunch(devices: int, context: typer.Context) -> None:
    """Run this ``train`` command again as ``devices`` processes on this machine, through torch elastic's
    launcher with torchrun's ``--standalone`` settings (a c10d rendezvous on a free local port)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    from musicgen_ops.pipeline.training.distributed import standalone_launch_config

    parent = typed_arguments(context.parent) if context.parent else []
    arguments = [*parent, context.info_name or "train", *typed_arguments(context)]
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default with several processes per node
    try:
        elastic_launch(standalone_launch_config(devices), sys.executable)("-m", "musicgen_ops", *arguments)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        how = f"signal {failure.signal_name()}" if failure.exitcode < 0 else f"exit code {failure.exitcode}"
        exit_with_error(f"training failed: process rank {rank} ended with {how}; the run was stopped")
