"""CLI: `musicgen-ops export` — a trained checkpoint to merged weights, TorchScript, ONNX and INT8 ONNX."""

from __future__ import annotations

from pathlib import Path

import typer

from musicgen_ops.cli.console import console, exit_with_error


def export(
    checkpoint: Path = typer.Option(
        ...,
        "--checkpoint",
        "-c",
        help="Training output's final_model/ (LoRA adapter) or a merged model folder.",
    ),
    output_dir: Path = typer.Option(
        ..., "--output-dir", "-o", help="Folder to write (replaced if an export)."
    ),
    formats: str = typer.Option(
        "merged,torchscript,onnx,onnx-int8",
        "--formats",
        "-f",
        help="Comma-separated: merged, torchscript, onnx, onnx-int8.",
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version (14..20)."),
) -> None:
    """Merge the LoRA adapter into the base model and export it; writes export_manifest.json last."""
    from musicgen_ops.pipeline.errors import PipelineError
    from musicgen_ops.pipeline.export.exporter import export_trained_model_from_checkpoint

    def progress(message: str) -> None:
        console.print(f"[cyan]•[/] {message}")

    try:
        with console.status("exporting"):
            manifest = export_trained_model_from_checkpoint(
                checkpoint, output_dir, formats, opset_version=opset, progress=progress
            )
    except PipelineError as err:
        exit_with_error(str(err))
    print_export_summary(output_dir, manifest)


def print_export_summary(output_dir: Path, manifest: dict) -> None:
    """A table of the written model files and their sizes."""
    from rich.table import Table

    table = Table(title=f"export to {output_dir}")
    table.add_column("file", overflow="fold")
    table.add_column("size", justify="right")
    for entry in manifest["files"]:
        if entry["path"].endswith((".onnx", ".pt", ".safetensors")):
            table.add_row(entry["path"], _human(entry["size"]))
    console.print(table)
    console.print(
        f"formats: {', '.join(manifest['formats'])}; total {_human(manifest['total_size'])}; "
        f"manifest: {output_dir / 'export_manifest.json'}"
    )


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def register(app: typer.Typer) -> None:
    """Add `export` to the CLI."""
    app.command("export")(export)
