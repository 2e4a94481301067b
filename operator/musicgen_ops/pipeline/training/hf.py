"""The Hugging Face ``Trainer`` training loop (the default backend)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import TensorBoardCallback
from transformers.trainer_utils import rotate_checkpoints

from musicgen_ops.pipeline.errors import TrainingError
from musicgen_ops.pipeline.progress import ProgressEvent, ProgressReporter
from musicgen_ops.pipeline.training.checkpoints import newest_valid_checkpoint
from musicgen_ops.pipeline.training.config import TrainConfig
from musicgen_ops.pipeline.training.distributed import DistributedContext, effective_batch_size
from musicgen_ops.pipeline.training.samples import CheckpointSampler, HfSampleCallback
from musicgen_ops.pipeline.training.steps import ConditionDropout, compute_loss, model_inputs

logger = logging.getLogger(__name__)


class _MusicGenTrainer(Trainer):
    """Trainer with our loss, and checkpoints written to a staging folder then renamed (atomic)."""

    def __init__(self, *args, condition_dropout: ConditionDropout | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Our loss is a mean per forward pass: let the Trainer divide it by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.condition_dropout = condition_dropout

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = compute_loss(
            model, inputs, step=self.state.global_step, condition_dropout=self.condition_dropout
        )
        return (loss, None) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with torch.no_grad():
            loss = compute_loss(model, self._prepare_inputs(inputs)).detach()
        return loss, None, None

    def _save_checkpoint(self, model, trial):
        # Under torchrun rank 0 writes the weights, optimizer and state, every rank its RNG state: all of
        # them into the staging folder, which each node's local rank 0 empties before and renames after.
        final_root = Path(self.args.output_dir)
        staging = final_root / ".staging"
        renames = self.args.local_process_index == 0
        if renames:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self.args.output_dir = str(staging)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir = str(final_root)
        self.accelerator.wait_for_everyone()
        if renames:
            for folder in staging.glob("checkpoint-*"):
                target = final_root / folder.name
                shutil.rmtree(target, ignore_errors=True)
                folder.rename(target)
            shutil.rmtree(staging, ignore_errors=True)
        if self.args.should_save:  # the Trainer rotated inside the staging folder: rotate the real one
            rotate_checkpoints(str(final_root), self.args.save_total_limit, self.state.best_model_checkpoint)


class _ProgressCallback(TrainerCallback):
    """Turns Trainer logs into ProgressEvents and keeps the loss history for the loss curve."""

    def __init__(self, reporter: ProgressReporter | None, total_epochs: int, samples_per_step: int) -> None:
        self.reporter = reporter
        self.total_epochs = total_epochs
        self.samples_per_step = samples_per_step
        self.start = time.monotonic()
        self.start_step = 0
        self.last_loss: float | None = None
        self.last_val: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()
        self.start_step = state.global_step
        self._emit("starting", state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.last_loss = float(logs["loss"])
        if "eval_loss" in logs:
            self.last_val = float(logs["eval_loss"])
        self._emit("training", state, learning_rate=logs.get("learning_rate"))

    def on_train_end(self, args, state, control, **kwargs):
        self._emit("completed", state)

    def _emit(self, phase, state, learning_rate=None) -> None:
        if self.reporter is None:
            return
        elapsed = time.monotonic() - self.start
        done = state.global_step - self.start_step
        rate = done / elapsed if elapsed > 0 and done else None
        remaining = (state.max_steps - state.global_step) / rate if rate else None
        self.reporter.on_progress(
            ProgressEvent(
                phase=phase,
                epoch=float(state.epoch or 0.0),
                total_epochs=self.total_epochs,
                step=state.global_step,
                total_steps=state.max_steps,
                loss=self.last_loss,
                val_loss=self.last_val,
                learning_rate=learning_rate,
                samples_per_second=rate * self.samples_per_step if rate else None,
                eta_seconds=remaining,
                elapsed_seconds=elapsed,
            )
        )


def train_with_hf_trainer(
    peft_model: torch.nn.Module,
    train_dataset: Any,
    val_dataset: Any | None,
    collator: Any,
    config: TrainConfig,
    reporter: ProgressReporter | None = None,
    sampler: CheckpointSampler | None = None,
) -> dict[str, Any]:
    """Run the Trainer; returns the log history and throughput. Resumes when ``config.resume``.

    ``sampler`` (optional) renders checkpoint samples into each checkpoint after it is saved.

    Under torchrun the Trainer trains data-parallel (DDP through accelerate, which shards each global batch
    across the ranks from one seeded order); rank 0 picks the checkpoint that every rank resumes from.
    """
    context = DistributedContext.from_environ()
    use_cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    has_val = val_dataset is not None and len(val_dataset) > 0
    args = TrainingArguments(
        output_dir=str(config.checkpoint_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        optim="sgd" if config.optimizer == "sgd" else "adamw_torch",
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,
        max_grad_norm=config.max_grad_norm,
        bf16=config.precision == "bf16",
        fp16=config.precision == "fp16",
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        eval_strategy="epoch" if has_val else "no",
        report_to="none",  # TensorBoard is added below with an explicit log folder
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not use_cuda,
        disable_tqdm=True,
        ddp_find_unused_parameters=False,  # every LoRA weight takes part in each step
    )
    tensorboard = TensorBoardCallback()
    tensorboard.logging_dir = str(config.output_dir / "logs")
    samples_per_step = effective_batch_size(config.batch_size, config.grad_accum, context.world_size)
    progress = _ProgressCallback(reporter, config.epochs, samples_per_step)
    trainer = _MusicGenTrainer(
        model=peft_model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=val_dataset if has_val else None,
        data_collator=lambda items: model_inputs(collator(items)),
        callbacks=[progress, tensorboard, *([HfSampleCallback(sampler, config.epochs)] if sampler else [])],
        condition_dropout=ConditionDropout(
            config.condition_dropout, config.seed, context.rank, context.world_size
        ),
    )
    trainer.remove_callback(PrinterCallback)  # the progress reporter shows progress; no dict dumps
    checkpoint = context.broadcast(
        newest_valid_checkpoint(config.checkpoint_dir)
        if config.resume and config.checkpoint_dir.is_dir()
        else None
    )
    if checkpoint is not None and not Path(checkpoint).is_dir():
        raise TrainingError(
            f"rank {context.rank}: checkpoint {checkpoint} chosen by rank 0 is not on this node"
        )
    if config.resume:
        logger.info("resuming from %s", checkpoint or "scratch (no checkpoint yet)")
    start = time.monotonic()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    wall = time.monotonic() - start
    return {
        "history": trainer.state.log_history,
        "steps": trainer.state.global_step,
        "wall_seconds": wall,
        "samples_per_second": output.metrics.get("train_samples_per_second"),
        "resumed_from": checkpoint,
        "final_val_loss": progress.last_val,
    }
