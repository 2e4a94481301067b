"""CLI: `musicgen-ops preprocess` — a folder of tracks into 32 kHz mono clips and manifest.json."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

from musicgen_ops.cli.console import console, exit_with_error, progress_bar

if TYPE_CHECKING:
    from musicgen_ops.pipeline.audio import PreprocessResult


def preprocess(
    input_dir: Path = typer.Option(
        ..., "--input-dir", "-i", help="Folder of WAV/MP3/FLAC tracks (searched recursively)."
    ),
    output_dir: Path = typer.Option(
        ..., "--output-dir", "-o", help="Where clips/ and manifest.json are written."
    ),
    target_sr: int = typer.Option(
        32_000, "--target-sr", help="Output sample rate (MusicGen's codec: 32000)."
    ),
    duration: float = typer.Option(30.0, "--duration", help="Clip length in seconds."),
    last_clip: str = typer.Option("pad", "--last-clip", help="Last short window: pad, keep or drop."),
    min_clip: float = typer.Option(1.0, "--min-clip", help="Drop a last window shorter than this (seconds)."),
    normalization: str = typer.Option("peak", "--normalization", help="peak (-1 dBFS) or rms (-20 dBFS)."),
    channels: int = typer.Option(
        1, "--channels", help="1: mono clips; 2: stereo clips (for the stereo MusicGen checkpoints)."
    ),
) -> None:
    """Decode, resample, normalise and cut tracks into clips; prompts from sidecar .txt, prompts.csv/json
    or file names. Re-running skips finished tracks and keeps prompts you edited in manifest.json."""
    from musicgen_ops.pipeline.audio import AudioDataPreprocessor
    from musicgen_ops.pipeline.errors import PipelineError
    from musicgen_ops.pipeline.manifest import PromptSource

    try:
        preprocessor = AudioDataPreprocessor(
            target_sample_rate=target_sr,
            target_duration=duration,
            last_clip=_choice(last_clip, ("pad", "keep", "drop"), "--last-clip"),
            min_clip_duration=min_clip,
            normalization=_choice(normalization, ("peak", "rms"), "--normalization"),
            channels=int(_choice(str(channels), ("1", "2"), "--channels")),
        )
        if not input_dir.is_dir():
            exit_with_error(f"input folder {input_dir} does not exist")
        if output_dir.exists() and not output_dir.is_dir():
            exit_with_error(f"output folder {output_dir} is a file, not a folder")
        PromptSource(input_dir)  # a bad prompts.csv/json fails here, before the progress bar
        tracks = preprocessor.find_tracks(input_dir, exclude=output_dir)
        with progress_bar() as progress:
            task = progress.add_task("preprocessing", total=len(tracks))
            result = preprocessor.preprocess_directory(
                input_dir, output_dir, on_track=lambda _: progress.advance(task)
            )
    except (PipelineError, ValueError) as err:
        exit_with_error(str(err))
    print_preprocess_summary(result)


def print_preprocess_summary(result: PreprocessResult) -> None:
    """A table of what was done and what was skipped, and why."""
    from rich.markup import escape
    from rich.table import Table

    colours = {"processed": "green", "up to date": "cyan", "skipped": "red"}
    table = Table(title="preprocessing summary")
    table.add_column("source", overflow="fold")
    table.add_column("status")
    table.add_column("clips / reason", overflow="fold")
    for source, status, detail in result.summary_rows():
        table.add_row(escape(source), f"[{colours[status]}]{status}[/]", escape(detail))
    console.print(table)
    console.print(
        f"{len(result.entries)} clips ({result.total_duration:.1f} s) in [bold]{result.output_dir}[/]; "
        f"{len(result.skipped)} file(s) skipped; manifest: {result.manifest_path}"
    )


def _choice(
    value: str, allowed: tuple[str, ...], option: str
) -> Literal["pad", "keep", "drop", "peak", "rms"]:
    if value not in allowed:
        raise typer.BadParameter(f"{option} must be one of {', '.join(allowed)}, not {value!r}")
    return value  # type: ignore[return-value]


def register(app: typer.Typer) -> None:
    """Add `preprocess`."""
    app.command("preprocess")(preprocess)
