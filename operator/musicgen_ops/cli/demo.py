"""CLI: `musicgen-ops demo` — the whole pipeline on one machine with the tiny random MusicGen."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from musicgen_ops.cli.console import console, exit_with_error


def demo(
    output_dir: Path = typer.Option(
        Path("demo-output"), "--output-dir", "-o", help="Where every step writes."
    ),
    base_model: str = typer.Option(
        "tiny-random", "--base-model", help="tiny-random (no download) or facebook/musicgen-small if cached."
    ),
    epochs: int = typer.Option(3, "--epochs", help="Training epochs over the demo clips."),
    seconds: float = typer.Option(4.0, "--seconds", help="Seconds of audio to generate at the end."),
) -> None:
    """Render a small music dataset, preprocess it, LoRA-train, export to ONNX and generate — then show
    where everything is. Needs no cluster, no cloud account and no model download."""
    from rich.table import Table

    from musicgen_ops.cli.preprocess import print_preprocess_summary
    from musicgen_ops.contracts.training import LoraParameters
    from musicgen_ops.pipeline.audio import AudioDataPreprocessor
    from musicgen_ops.pipeline.demo_data import render_demo_dataset
    from musicgen_ops.pipeline.errors import PipelineError
    from musicgen_ops.pipeline.progress import RichProgressReporter
    from musicgen_ops.pipeline.training import TrainConfig, run_training

    started = time.monotonic()
    outputs: list[tuple[str, Path]] = []
    try:
        console.rule("[bold]1/5 demo dataset")
        raw = render_demo_dataset(output_dir / "raw_audio", seconds=8.0)
        outputs.append(("raw tracks + prompts.csv", raw))

        console.rule("[bold]2/5 preprocess")
        result = AudioDataPreprocessor(target_duration=2.0).preprocess_directory(
            raw, output_dir / "preprocessed"
        )
        print_preprocess_summary(result)
        outputs.append(("clips + manifest.json", result.output_dir))

        console.rule(f"[bold]3/5 LoRA fine-tuning of {base_model}")
        config = TrainConfig(
            data_dir=result.output_dir,
            output_dir=output_dir / "checkpoints",
            base_model=base_model,
            epochs=epochs,
            batch_size=4,
            learning_rate=3e-3,
            lora=LoraParameters(r=8),
            val_fraction=0.15,
            save_steps=10,
            resume=True,
        )
        with RichProgressReporter() as reporter:
            trained = run_training(config, reporter)
        losses = ", ".join(f"{x:.3f}" for x in trained.train_loss_per_epoch)
        validation = ""
        if trained.val_loss is not None and trained.base_val_loss is not None:
            base, tuned = trained.base_val_loss, trained.val_loss
            validation = f"; validation: base model {base:.3f} -> fine-tuned {tuned:.3f}"
        elif trained.val_loss is not None:
            validation = f"; validation: {trained.val_loss:.3f}"
        console.print(f"loss per epoch: {losses}{validation}")
        outputs.append(("trained LoRA adapter", trained.final_model_dir))
        if trained.loss_curve:
            outputs.append(("loss curve", trained.loss_curve))

        console.rule("[bold]4/5 export")
        outputs.extend(_export(trained.final_model_dir, output_dir / "exported"))

        console.rule("[bold]5/5 generate")
        outputs.extend(_generate(trained.final_model_dir, output_dir / "generated", seconds))
    except PipelineError as err:
        exit_with_error(str(err))

    table = Table(title=f"demo finished in {time.monotonic() - started:.0f} s")
    table.add_column("what")
    table.add_column("where", overflow="fold")
    for what, where in outputs:
        table.add_row(what, str(where))
    console.print(table)


def _export(model_dir: Path, output_dir: Path) -> list[tuple[str, Path]]:
    """Export the trained model to ONNX (+ INT8) for the ONNX Runtime engine."""
    from musicgen_ops.pipeline.export.exporter import export_trained_model_from_checkpoint

    export_trained_model_from_checkpoint(model_dir, output_dir, ["onnx", "onnx-int8"], progress=console.print)
    return [("ONNX + INT8 ONNX export", output_dir)]


def _generate(model_dir: Path, output_dir: Path, seconds: float) -> list[tuple[str, Path]]:
    """Generate one track with the trained model through the pipeline's generation path."""
    from musicgen_ops.pipeline.generation.batch import generate_to_files

    request = {
        "prompt": "upbeat funk groove",
        "target_bpm": 110,
        "key": "E",
        "scale": "minor",
        "duration_seconds": seconds,
        "random_seed": 0,
    }
    (result,) = generate_to_files([request], model_dir, output_dir, spectrogram=True, model_id="demo")
    console.print(
        f"generated {result.duration_seconds:.1f} s in {result.wall_seconds:.1f} s "
        f"(conditioning: {result.conditioning_text!r}, seed {result.seed})"
    )
    outputs = [
        ("generated audio", Path(result.audio_path)),
        ("generation sidecar", Path(result.sidecar_path)),
    ]
    if result.spectrogram_path:
        outputs.append(("spectrogram", Path(result.spectrogram_path)))
    return outputs


def register(app: typer.Typer) -> None:
    """Add `demo`."""
    app.command("demo")(demo)
