"""``run_training``: one whole training run from a :class:`TrainConfig`, in one process or under torchrun."""

from __future__ import annotations

import contextlib
import json

from musicgen_ops.pipeline.dataset import MusicGenDataset, train_val_split
from musicgen_ops.pipeline.errors import TrainingError
from musicgen_ops.pipeline.models import LoadedModel
from musicgen_ops.pipeline.progress import BaselineStamp, ProgressEvent, ProgressReporter
from musicgen_ops.pipeline.training.config import TrainConfig
from musicgen_ops.pipeline.training.distributed import (
    DistributedContext,
    RankZeroReporter,
    distributed_session,
)
from musicgen_ops.pipeline.training.lock import output_folder_lock
from musicgen_ops.pipeline.training.trainer import (
    MusicGenLoRATrainer,
    TrainingResult,
    describe_batch,
    training_device,
)

__all__ = ["run_training"]


def run_training(
    config: TrainConfig, reporter: ProgressReporter | None = None, loaded: LoadedModel | None = None
) -> TrainingResult:
    """Load the base model and dataset, train, save ``final_model/`` and the loss curve.

    The CLI's ``train`` command and the Kubernetes ``train-job`` both call this. The output folder is
    locked for the whole run: a second run into it fails at once, naming the holder.

    Under ``torchrun`` every process calls this: the ranks train data-parallel, each node's local rank 0
    builds the EnCodec code cache while the others wait, and rank 0 alone holds the lock, reports progress
    and writes checkpoints and ``final_model/`` (the other ranks return a result without them).
    """
    with distributed_session(config.device) as context:
        lock = output_folder_lock(config.output_dir) if context.is_main else contextlib.nullcontext()
        with lock:
            return _run_training(config, reporter, loaded, context)


def _run_training(
    config: TrainConfig,
    reporter: ProgressReporter | None,
    loaded: LoadedModel | None,
    context: DistributedContext,
) -> TrainingResult:
    if config.data_dir is None:
        raise TrainingError("no dataset folder given (data_dir)")
    if reporter:
        reporter = RankZeroReporter(reporter, context, describe_batch(config, context.world_size))
    trainer = MusicGenLoRATrainer(
        config.base_model,
        config.lora.r,
        config.lora.scaling_alpha,
        config.lora.dropout,
        config.lora.target_modules or None,
        seed=config.seed,
        loaded=loaded,
    )
    with context.local_main_first():  # one code cache per node, built once
        dataset = MusicGenDataset.from_directory(
            config.data_dir,
            trainer.processor,
            model=trainer.loaded.model,
            max_duration_seconds=config.max_duration_seconds,
            device=training_device(config.device),
            encode_batch_size=config.encode_batch_size,
        )
    train_set, val_set = train_val_split(dataset, config.val_fraction, config.seed)
    val_tracks = sorted({dataset.tracks[i] for i in val_set.indices})
    trainer.split = {"train_clips": len(train_set), "val_clips": len(val_set), "val_tracks": val_tracks}
    result = trainer.train_with_config(train_set, val_set, config, reporter)
    if not context.is_main:
        return result
    if reporter:
        reporter = BaselineStamp(reporter, result.base_val_loss)
        reporter.on_progress(
            ProgressEvent(
                phase="saving",
                epoch=float(config.epochs),
                total_epochs=config.epochs,
                step=result.steps,
                total_steps=result.steps,
                samples=result.samples,
            )
        )
    result.final_model_dir = trainer.save_model(
        config.final_model_dir,
        merge=config.merge,
        extra_metadata={"train_config": json.loads(config.model_dump_json())},
    )
    if reporter:  # the last event: the model is on disk
        reporter.on_progress(
            ProgressEvent(
                phase="completed",
                epoch=float(config.epochs),
                total_epochs=config.epochs,
                step=result.steps,
                total_steps=result.steps,
                loss=result.final_train_loss,
                val_loss=result.val_loss,
                elapsed_seconds=result.wall_seconds,
                message=f"model saved to {result.final_model_dir}",
                samples=result.samples,
            )
        )
    return result
