"""CLI: `musicgen-ops train` — LoRA fine-tuning of MusicGen on a preprocessed dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from musicgen_ops.cli.console import console, exit_with_error


def train(
    data_dir: Path = typer.Option(
        ..., "--data-dir", "-d", help="Preprocessed dataset folder (manifest.json + clips/)."
    ),
    output_dir: Path = typer.Option(
        Path("checkpoints"), "--output-dir", "-o", help="Checkpoints, logs/, loss_curve.png, final_model/."
    ),
    base_model: str = typer.Option(
        "facebook/musicgen-small", "--base-model", help="Hub id, local folder, or tiny-random (no download)."
    ),
    lora_r: int = typer.Option(16, "--lora-r", help="LoRA rank."),
    lora_alpha: int | None = typer.Option(
        None, "--lora-alpha", help="LoRA alpha (the update is scaled by alpha/r); default 2 x --lora-r."
    ),
    lora_dropout: float = typer.Option(0.1, "--lora-dropout", help="Dropout on the LoRA branch."),
    target_modules: str | None = typer.Option(
        None,
        "--target-modules",
        help="Comma-separated decoder modules: q_proj,v_proj or self_attn.q_proj or encoder_attn, and the "
        "feed-forward fc1,fc2 (feed_forward: both); default: self- and cross-attention q/k/v/out.",
    ),
    condition_dropout: float = typer.Option(
        0.3,
        "--condition-dropout",
        help="Share of training clips trained without their prompt (keeps classifier-free guidance working).",
    ),
    epochs: int = typer.Option(10, "--epochs", help="Passes over the training set."),
    max_steps: int = typer.Option(-1, "--max-steps", help="Stop after N optimizer steps (-1: all epochs)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Clips per forward pass."),
    learning_rate: float = typer.Option(1e-4, "--lr", help="Peak learning rate."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Forward passes per optimizer step."),
    lr_scheduler: str = typer.Option("cosine", "--lr-scheduler", help="cosine, linear or constant."),
    warmup_ratio: float = typer.Option(0.05, "--warmup-ratio", help="Share of steps spent warming up."),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm", help="Gradient clipping norm."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 (bf16/fp16 need a GPU)."),
    val_fraction: float = typer.Option(
        0.1, "--val-fraction", help="Share of tracks held out for validation (never split across sides)."
    ),
    seed: int = typer.Option(42, "--seed", help="Seeds data order, LoRA init and dropout."),
    save_steps: int = typer.Option(50, "--save-steps", help="Checkpoint every N optimizer steps."),
    backend: str = typer.Option("hf", "--backend", help="hf (Hugging Face Trainer) or lightning."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    encode_batch_size: int = typer.Option(
        16, "--encode-batch-size", help="Clips EnCodec encodes at once when building the code cache."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --output-dir."),
    merge: bool = typer.Option(False, "--merge", help="Also write merged full weights (final_model/merged)."),
    progress_file: Path | None = typer.Option(
        None, "--progress-file", help="Also append progress events to this JSON-lines file."
    ),
) -> None:
    """Fine-tune MusicGen's decoder attention with LoRA; the adapter, processor and training_metadata.json
    go to <output-dir>/final_model/ (what `musicgen-ops export --checkpoint` reads)."""
    from pydantic import ValidationError

    from musicgen_ops.pipeline.errors import PipelineError
    from musicgen_ops.pipeline.progress import JsonLinesProgressWriter, MultiReporter, RichProgressReporter
    from musicgen_ops.pipeline.training import TrainConfig, run_training

    try:
        config = TrainConfig(
            data_dir=data_dir,
            output_dir=output_dir,
            base_model=base_model,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=[m.strip() for m in target_modules.split(",") if m.strip()]
            if target_modules
            else None,
            condition_dropout=condition_dropout,
            epochs=epochs,
            max_steps=max_steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            grad_accum=grad_accum,
            lr_scheduler=lr_scheduler,
            warmup_ratio=warmup_ratio,
            max_grad_norm=max_grad_norm,
            precision=precision,
            val_fraction=val_fraction,
            seed=seed,
            save_steps=save_steps,
            backend=backend,
            device=device,
            encode_batch_size=encode_batch_size,
            resume=resume,
            merge=merge,
        )
    except ValidationError as err:
        exit_with_error("; ".join(_describe(e) for e in err.errors()))
    try:
        with RichProgressReporter() as bar:
            writer = JsonLinesProgressWriter(progress_file) if progress_file else None
            result = run_training(config, MultiReporter(bar, writer))
    except PipelineError as err:
        exit_with_error(str(err))
    losses = ", ".join(f"{x:.4f}" for x in result.train_loss_per_epoch)
    console.print(f"train loss per epoch: {losses}")
    if result.val_loss is not None and result.base_val_loss is not None:
        console.print(
            f"validation loss: base model {result.base_val_loss:.4f} -> fine-tuned {result.val_loss:.4f}"
        )
    console.print(f"{result.steps} steps in {result.wall_seconds:.1f} s")
    console.print(f"model saved to [bold]{result.final_model_dir}[/]")
    typer.echo(json.dumps(result.to_dict()))


def _describe(error: dict) -> str:
    """One pydantic error as `--option: reason`."""
    field = ".".join(str(part) for part in error.get("loc", ()))
    option = _OPTION_NAMES.get(field, field.replace("_", "-"))
    return f"--{option}: {error.get('msg', 'invalid')}"


_OPTION_NAMES = {"learning_rate": "lr"}


def register(app: typer.Typer) -> None:
    """Add `train`."""
    app.command("train")(train)
