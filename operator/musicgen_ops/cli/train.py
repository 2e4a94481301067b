"""CLI: `musicgen-ops train` — LoRA fine-tuning of MusicGen on a preprocessed dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from pydantic import ValidationError

from musicgen_ops.cli.console import console, exit_with_error
from musicgen_ops.cli.options import describe_option_errors, field_option, split_list
from musicgen_ops.contracts.training import LoraParameters, TrainingParameters

L, T = LoraParameters, TrainingParameters


def train(
    context: typer.Context,
    data_dir: Path = typer.Option(
        ..., "--data-dir", "-d", help="Preprocessed dataset folder (manifest.json + clips/)."
    ),
    output_dir: Path = typer.Option(
        Path("checkpoints"), "--output-dir", "-o", help="Checkpoints, logs/, loss_curve.png, final_model/."
    ),
    base_model: str = typer.Option(
        "facebook/musicgen-small", "--base-model", help="Hub id, local folder, or tiny-random (no download)."
    ),
    lora_r: int = field_option(L, "r", "--lora-r", help="LoRA rank (8-32 is typical)."),
    lora_alpha: int | None = field_option(L, "alpha", "--lora-alpha", help="LoRA alpha (default 2*r)."),
    lora_dropout: float = field_option(L, "dropout", "--lora-dropout", help="Dropout on the LoRA branch."),
    target_modules: str | None = field_option(
        L,
        "target_modules",
        "--target-modules",
        help="Comma-separated decoder modules: q_proj,v_proj or self_attn.q_proj or encoder_attn, and the "
        "feed-forward fc1,fc2 (feed_forward: both); default: self- and cross-attention q/k/v/out.",
    ),
    condition_dropout: float = field_option(T, "condition_dropout"),
    encode_batch_size: int = field_option(T, "encode_batch_size"),
    epochs: int = field_option(T, "epochs"),
    max_steps: int = field_option(T, "max_steps"),
    batch_size: int = field_option(T, "batch_size"),
    learning_rate: float = field_option(T, "learning_rate", "--lr"),
    grad_accum: int = field_option(T, "grad_accum"),
    weight_decay: float = field_option(T, "weight_decay"),
    optimizer: str = field_option(T, "optimizer"),
    lr_scheduler: str = field_option(T, "lr_scheduler"),
    warmup_ratio: float = field_option(T, "warmup_ratio"),
    max_grad_norm: float = field_option(T, "max_grad_norm"),
    precision: str = field_option(T, "precision"),
    val_fraction: float = field_option(T, "val_fraction"),
    seed: int = field_option(T, "seed"),
    max_duration_seconds: float = field_option(T, "max_duration_seconds"),
    save_steps: int = field_option(T, "save_steps"),
    save_total_limit: int = field_option(T, "save_total_limit"),
    logging_steps: int = field_option(T, "logging_steps"),
    backend: str = field_option(T, "backend"),
    sample_prompts: list[str] = typer.Option(
        [],
        "--sample-prompt",
        help="Render this prompt at each checkpoint into checkpoints/.../samples (repeat for several).",
    ),
    sample_seconds: float = field_option(T, "sample_seconds"),
    sample_seed: int = field_option(T, "sample_seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    devices: int | None = typer.Option(
        None,
        "--devices",
        min=1,
        help="Data-parallel training processes on this machine, one per GPU (gloo processes on a CPU); "
        "N > 1 relaunches the command under torchrun. Under torchrun: its --nproc-per-node.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --output-dir."),
    merge: bool = typer.Option(False, "--merge", help="Also write merged full weights (final_model/merged)."),
    progress_file: Path | None = typer.Option(
        None, "--progress-file", help="Also append progress events to this JSON-lines file."
    ),
) -> None:
    """Fine-tune MusicGen's decoder attention with LoRA; the adapter, processor and training_metadata.json
    go to <output-dir>/final_model/ (what `musicgen-ops export --checkpoint` reads).

    With --devices N (or started by torchrun) the processes train data-parallel; the effective batch is
    --batch-size x processes x --grad-accum, and rank 0 alone writes checkpoints, progress and the model."""
    from musicgen_ops.cli import launch
    from musicgen_ops.pipeline.errors import PipelineError
    from musicgen_ops.pipeline.progress import JsonLinesProgressWriter, MultiReporter, RichProgressReporter
    from musicgen_ops.pipeline.training import TrainConfig, run_training
    from musicgen_ops.pipeline.training.distributed import DistributedContext, under_torchrun

    values = dict(locals())
    try:
        lora = LoraParameters(
            r=lora_r, alpha=lora_alpha, dropout=lora_dropout, target_modules=split_list(target_modules)
        )
        config = TrainConfig(
            **{name: values[name] for name in TrainingParameters.model_fields},
            lora=lora,
            data_dir=data_dir,
            output_dir=output_dir,
            base_model=base_model,
            device=device,
            resume=resume,
            merge=merge,
        )
    except ValidationError as err:
        exit_with_error(describe_option_errors(err, _OPTION_NAMES))
    if under_torchrun():
        launch.check_torchrun_devices(devices)
    elif devices is not None and devices > 1:
        launch.check_devices(devices, device)
        launch.relaunch(devices, context)
        return
    try:
        ranks = DistributedContext.from_environ()
        if not ranks.is_main:  # rank 0 alone shows progress and the result
            run_training(config)
            return
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
    console.print(
        f"{result.steps} steps in {result.wall_seconds:.1f} s, effective batch {result.effective_batch_size} "
        f"({result.world_size} process(es))"
    )
    console.print(f"model saved to [bold]{result.final_model_dir}[/]")
    typer.echo(json.dumps(result.to_dict()))


#: Fields whose option is not ``--<field-with-dashes>``.
_OPTION_NAMES = {
    "learning_rate": "lr",
    "r": "lora-r",
    "alpha": "lora-alpha",
    "dropout": "lora-dropout",
    "sample_prompts": "sample-prompt",
}


def register(app: typer.Typer) -> None:
    """Add `train`."""
    app.command("train")(train)
