"""The PyTorch Lightning training loop: the same loss, optimizer, schedule and adapter format."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO
from transformers import get_scheduler

from musicgen_ops.pipeline.errors import TrainingError
from musicgen_ops.pipeline.progress import ProgressEvent, ProgressReporter
from musicgen_ops.pipeline.training.checkpoints import torch_file_problem
from musicgen_ops.pipeline.training.distributed import DistributedContext
from musicgen_ops.pipeline.training.samples import CheckpointSampler
from musicgen_ops.pipeline.training.steps import ConditionDropout, check_precision, compute_loss

logger = logging.getLogger(__name__)

_PRECISION = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file, then rename: a killed job never leaves a torn file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        tmp = f"{path}.tmp"
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


class MusicGenLoRAModule(pl.LightningModule):
    """LightningModule around a PEFT MusicGen; training and validation use ``steps.compute_loss``."""

    def __init__(
        self,
        peft_model: torch.nn.Module,
        learning_rate: float,
        weight_decay: float = 0.0,
        lr_scheduler: str = "cosine",
        warmup_ratio: float = 0.05,
        optimizer: str = "adamw",
        condition_dropout: ConditionDropout | None = None,
    ) -> None:
        super().__init__()
        self.condition_dropout = condition_dropout
        self.optimizer = optimizer
        self.model = peft_model
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.lr_scheduler = lr_scheduler
        self.warmup_ratio = warmup_ratio
        self.history: list[dict[str, float]] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = compute_loss(
            self.model, batch, step=self.global_step, condition_dropout=self.condition_dropout
        )
        size = batch["labels"].shape[0]  # sync_dist: the loss averaged over the ranks (a no-op alone)
        self.log("train_loss", loss, prog_bar=True, on_step=True, batch_size=size, sync_dist=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = compute_loss(self.model, batch)
        self.log("val_loss", loss, on_epoch=True, batch_size=batch["labels"].shape[0], sync_dist=True)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer_class = torch.optim.SGD if self.optimizer == "sgd" else torch.optim.AdamW
        optimizer = optimizer_class(params, lr=self.learning_rate, weight_decay=self.weight_decay)
        total = self.trainer.estimated_stepping_batches
        scheduler = get_scheduler(
            self.lr_scheduler,
            optimizer,
            num_warmup_steps=math.ceil(total * self.warmup_ratio),
            num_training_steps=total,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class _LightningProgress(Callback):
    """Sends ProgressEvents and records the loss history for the loss curve."""

    def __init__(self, reporter: ProgressReporter | None, total_epochs: int) -> None:
        self.reporter = reporter
        self.total_epochs = total_epochs
        self.start = time.monotonic()
        self.val_loss: float | None = None
        self.samples = 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.samples += int(batch["labels"].shape[0])
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return
        loss = float(trainer.callback_metrics.get("train_loss", float("nan")))
        module.history.append({"step": trainer.global_step, "loss": loss, "epoch": trainer.current_epoch + 1})
        self._emit("training", trainer, loss)

    def on_validation_epoch_end(self, trainer, module):
        if "val_loss" in trainer.callback_metrics and not trainer.sanity_checking:
            self.val_loss = float(trainer.callback_metrics["val_loss"])
            module.history.append({"step": trainer.global_step, "eval_loss": self.val_loss})

    def on_train_end(self, trainer, module):
        self._emit("completed", trainer, None)

    def _emit(self, phase, trainer, loss) -> None:
        if self.reporter is None:
            return
        elapsed = time.monotonic() - self.start
        total = int(trainer.estimated_stepping_batches)
        rate = trainer.global_step / elapsed if elapsed > 0 and trainer.global_step else None
        self.reporter.on_progress(
            ProgressEvent(
                phase=phase,
                epoch=trainer.current_epoch + 1.0,
                total_epochs=self.total_epochs,
                step=trainer.global_step,
                total_steps=total,
                loss=loss,
                val_loss=self.val_loss,
                eta_seconds=(total - trainer.global_step) / rate if rate else None,
                elapsed_seconds=elapsed,
            )
        )


class _LightningSamples(Callback):
    """Renders checkpoint samples into ``samples-<step>/`` beside each checkpoint file (once per step)."""

    def __init__(self, sampler: CheckpointSampler, checkpoint_dir: Path, total_epochs: int) -> None:
        self.sampler = sampler
        self.checkpoint_dir = checkpoint_dir
        self.total_epochs = total_epochs

    def on_save_checkpoint(self, trainer, module, checkpoint):
        step = trainer.global_step
        self.sampler.on_checkpoint(
            step,
            self.checkpoint_dir / f"samples-{step}",
            trainer.current_epoch + 1.0,
            self.total_epochs,
            int(trainer.estimated_stepping_batches),
        )


def train_with_pytorch_lightning(
    peft_model: torch.nn.Module,
    train_dataloader: torch.utils.data.DataLoader,
    val_dataloader: torch.utils.data.DataLoader | None,
    output_dir: str | Path,
    max_epochs: int = 10,
    learning_rate: float = 1e-4,
    accelerator: str = "auto",
    devices: int | str = "auto",
    precision: str = "fp32",
    *,
    num_nodes: int = 1,
    strategy: str = "auto",
    max_steps: int = -1,
    grad_accum: int = 1,
    max_grad_norm: float = 1.0,
    lr_scheduler: str = "cosine",
    warmup_ratio: float = 0.05,
    weight_decay: float = 0.0,
    optimizer: str = "adamw",
    condition_dropout: float = 0.0,
    save_steps: int = 50,
    seed: int = 42,
    resume: bool = False,
    reporter: ProgressReporter | None = None,
    sampler: CheckpointSampler | None = None,
) -> dict[str, Any]:
    """Train with Lightning; checkpoints under ``<output_dir>/checkpoints`` (``last.ckpt`` resumes);
    ``sampler`` (optional) renders checkpoint samples at each checkpoint.

    Under torchrun pass ``strategy="ddp"`` with this node's process count as ``devices``: Lightning shards
    the data with a seeded ``DistributedSampler``, global rank 0 writes the checkpoints, and every rank
    resumes from the ``last.ckpt`` rank 0 found.
    """
    context = DistributedContext.from_environ()
    output_dir = Path(output_dir)
    pl.seed_everything(seed, workers=True, verbose=False)
    module = MusicGenLoRAModule(
        peft_model,
        learning_rate,
        weight_decay,
        lr_scheduler,
        warmup_ratio,
        optimizer,
        ConditionDropout(condition_dropout, seed, context.rank, context.world_size),
    )
    checkpoints = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        every_n_train_steps=save_steps,
        save_last=True,
        save_top_k=-1,
        save_weights_only=False,
    )
    progress = _LightningProgress(reporter, max_epochs)
    check_precision(precision, "cuda" if accelerator in ("gpu", "cuda") else "auto")
    trainer = pl.Trainer(
        default_root_dir=str(output_dir),
        max_epochs=max_epochs,
        max_steps=max_steps,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=_PRECISION.get(precision, precision),
        accumulate_grad_batches=grad_accum,
        gradient_clip_val=max_grad_norm,
        callbacks=[
            checkpoints,
            progress,
            *([_LightningSamples(sampler, output_dir / "checkpoints", max_epochs)] if sampler else []),
        ],
        plugins=[AtomicCheckpointIO()],
        logger=TensorBoardLogger(str(output_dir), name="logs", version=""),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        deterministic=True,
    )
    last = output_dir / "checkpoints" / "last.ckpt"
    ckpt_path = str(last) if resume and last.is_file() else None
    if ckpt_path is not None and (problem := torch_file_problem(last)) is not None:
        logger.warning("not resuming from %s: %s; starting from scratch", last, problem)
        ckpt_path = None
    ckpt_path = context.broadcast(ckpt_path)
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        raise TrainingError(
            f"rank {context.rank}: checkpoint {ckpt_path} chosen by rank 0 is not on this node"
        )
    start = time.monotonic()
    trainer.fit(module, train_dataloader, val_dataloader, ckpt_path=ckpt_path)
    wall = time.monotonic() - start
    return {
        "history": module.history,
        "steps": trainer.global_step,
        "wall_seconds": wall,
        "samples_per_second": progress.samples * context.world_size / wall if wall > 0 else None,
        "resumed_from": ckpt_path,
        "final_val_loss": progress.val_loss,
    }
