"""Data-parallel training under ``torchrun``: who this process is, the process group, rank-0-only duties.

``torchrun`` (``torch.distributed.run``) starts one process per GPU and tells each who it is through
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and ``LOCAL_WORLD_SIZE``. The training loops (Lightning's DDP
strategy, the HF Trainer through accelerate) do the gradient all-reduce and the per-rank data sharding;
this module only adds what surrounds them, with torch's own collectives (no home-made coordination):

* the process group is opened early (gloo on CPU, NCCL on CUDA), so that ranks can wait at a barrier while
  each node's local rank 0 downloads the data and builds the EnCodec code cache;
* rank 0 alone reports progress and writes checkpoints and the final model;
* rank 0 picks the checkpoint to resume from and every rank resumes from that one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from musicgen_ops.pipeline.errors import TrainingError
from musicgen_ops.pipeline.progress import ProgressEvent, ProgressReporter

__all__ = [
    "PROCESS_GROUP_TIMEOUT",
    "DistributedContext",
    "RankZeroReporter",
    "distributed_session",
    "effective_batch_size",
    "under_torchrun",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: How long a rank waits at a collective: ranks wait at a barrier while their node's local rank 0 downloads
#: and preprocesses the dataset and encodes it with EnCodec, which can take a while for a large dataset.
PROCESS_GROUP_TIMEOUT = timedelta(hours=1)


def under_torchrun(environ: Mapping[str, str] = os.environ) -> bool:
    """True when this process was started by ``torchrun`` (torch elastic sets ``TORCHELASTIC_RUN_ID``)."""
    return "TORCHELASTIC_RUN_ID" in environ or "LOCAL_RANK" in environ


def standalone_launch_config(processes: int) -> Any:
    """torch elastic's ``LaunchConfig`` for ``processes`` workers on this machine, with torchrun's
    ``--standalone`` settings (a c10d rendezvous on a free local port, a fresh run id, no restarts)."""
    import uuid

    from torch.distributed.launcher.api import LaunchConfig

    return LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
    )


def effective_batch_size(batch_size: int, grad_accum: int, world_size: int) -> int:
    """Clips per optimizer step: per-device batch x processes x gradient accumulation."""
    return batch_size * world_size * grad_accum


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the run (a single process is rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> DistributedContext:
        """Read torchrun's ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and ``LOCAL_WORLD_SIZE``."""
        try:
            world = int(environ.get("WORLD_SIZE", "1"))
            context = cls(
                rank=int(environ.get("RANK", "0")),
                local_rank=int(environ.get("LOCAL_RANK", "0")),
                world_size=world,
                local_world_size=int(environ.get("LOCAL_WORLD_SIZE", str(world))),
            )
        except ValueError as err:
            raise TrainingError(f"bad torchrun environment (RANK, WORLD_SIZE, ...): {err}") from err
        if not (
            0 <= context.rank < context.world_size and 0 <= context.local_rank < context.local_world_size
        ):
            raise TrainingError(f"bad torchrun environment: {context}")
        return context

    @property
    def is_distributed(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Global rank 0: the one that reports, checkpoints and saves."""
        return self.rank == 0

    @property
    def is_local_main(self) -> bool:
        """Local rank 0: prepares this node's data (download, preprocessing, code cache)."""
        return self.local_rank == 0

    @property
    def num_nodes(self) -> int:
        """Machines taking part."""
        return max(1, self.world_size // self.local_world_size)

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in a single process)."""
        import torch.distributed as dist

        if self.is_distributed and dist.is_initialized():
            dist.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (a picklable object)."""
        import torch.distributed as dist

        if not (self.is_distributed and dist.is_initialized()):
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @contextlib.contextmanager
    def local_main_first(self) -> Iterator[None]:
        """The local rank 0 runs the block first (filling a node-local cache); the others after it."""
        if not self.is_local_main:
            self.barrier()
        yield
        if self.is_local_main:
            self.barrier()


def _wants_cuda(device: str) -> bool:
    import torch

    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


@contextlib.contextmanager
def distributed_session(device: str = "auto") -> Iterator[DistributedContext]:
    """This process's :class:`DistributedContext`, with the process group open when there are several ranks.

    Under torchrun the default process group is opened (NCCL when training on CUDA, gloo on the CPU) and
    this rank's GPU selected; a group opened by an outer session (the train-job) is reused, and closed only
    by the session that opened it.

    Raises:
        TrainingError: more processes on this node than GPUs, or a single GPU named for several processes.
    """
    import torch
    import torch.distributed as dist

    context = DistributedContext.from_environ()
    if not context.is_distributed or dist.is_initialized():
        yield context
        return
    cuda = _wants_cuda(device)
    if cuda:
        if device.startswith("cuda:"):
            raise TrainingError(
                f"device {device} names one GPU, but {context.world_size} processes train together: "
                "use --device cuda (each process takes the GPU of its local rank)"
            )
        if context.local_world_size > torch.cuda.device_count():
            raise TrainingError(
                f"{context.local_world_size} training processes on this node but only "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
        torch.cuda.set_device(context.local_rank)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend=backend, timeout=PROCESS_GROUP_TIMEOUT)
    logger.info(
        "rank %d of %d (local rank %d, %d node(s)), backend %s",
        context.rank,
        context.world_size,
        context.local_rank,
        context.num_nodes,
        backend,
    )
    try:
        yield context
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


class RankZeroReporter:
    """Forwards progress events from global rank 0 only, with ``world_size`` filled in; the starting event
    says how the effective batch is made up."""

    def __init__(self, reporter: ProgressReporter, context: DistributedContext, batch: str = "") -> None:
        self.reporter = reporter
        self.context = context
        self.batch = batch

    def on_progress(self, event: ProgressEvent) -> None:
        if not self.context.is_main:
            return
        update: dict[str, Any] = {"world_size": self.context.world_size}
        if event.phase == "starting" and not event.message and self.batch:
            update["message"] = self.batch
        self.reporter.on_progress(event.model_copy(update=update))
