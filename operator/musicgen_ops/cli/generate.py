"""CLI commands: generate (batch/Job mode: one track, or many from a JSONL requests file)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from musicgen_ops.cli.console import console, exit_with_error


def _read_requests(path: Path) -> list[dict]:
    """One JSON object per non-empty line; errors name the file and line."""
    if not path.is_file():
        exit_with_error(f"{path}: requests file not found")
    requests = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            exit_with_error(f"{path}:{number}: not valid JSON ({err.msg})")
        if not isinstance(item, dict):
            exit_with_error(f"{path}:{number}: expected a JSON object of generation parameters")
        requests.append(item)
    if not requests:
        exit_with_error(f"{path}: no requests in the file")
    return requests


def generate(
    model: str = typer.Option(
        "facebook/musicgen-small",
        "--model",
        "-m",
        help="Base model, trained checkpoint folder or ONNX export.",
    ),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="Text description of the music."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Seconds of audio."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default: random, reported)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Audio file for a single --prompt."),
    requests_file: Path | None = typer.Option(
        None, "--requests-file", help="JSONL: one object of generation parameters per line."
    ),
    output_dir: Path = typer.Option(
        Path("generated"), "--output-dir", help="Folder for --requests-file results."
    ),
    style: str | None = typer.Option(None, "--style", help="Genre/style folded into the prompt."),
    bpm: float | None = typer.Option(None, "--bpm", help="Tempo folded into the prompt."),
    key: str | None = typer.Option(None, "--key", help="Musical key, e.g. C, F#, Bb."),
    scale: str | None = typer.Option(None, "--scale", help="major, minor, dorian, ..."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature (0-2, 0: greedy)."),
    top_k: int = typer.Option(250, "--top-k", help="Top-k sampling (0: off)."),
    guidance_scale: float = typer.Option(3.0, "--guidance-scale", help="Classifier-free guidance."),
    output_format: str = typer.Option(
        "wav", "--format", help="wav or flac (default for --output: its suffix)."
    ),
    engine: str = typer.Option(
        "auto", "--engine", help="auto (fast on CUDA, else torch), torch, fast or onnx."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N."),
    dtype: str | None = typer.Option(None, "--dtype", help="float32, bfloat16 or float16 (torch engine)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Requests generated together."),
    window_seconds: float = typer.Option(30.0, "--window-seconds", help="Longest single generate() window."),
    context_seconds: float = typer.Option(10.0, "--context-seconds", help="Audio each new window continues."),
    spectrogram: bool = typer.Option(False, "--spectrogram", help="Also write spectrogram PNGs."),
) -> None:
    """Generate music to files: one track (--prompt, --output) or many (--requests-file, --output-dir)."""
    from musicgen_ops.pipeline.errors import PipelineError
    from musicgen_ops.serving.batch import generate_to_files, validate_parameters
    from musicgen_ops.serving.errors import ServingError

    if (prompt is None) == (requests_file is None):
        exit_with_error("give exactly one of --prompt or --requests-file")
    audio_paths = None
    if requests_file is not None:
        raw = _read_requests(requests_file)
    else:
        if output is not None and output.suffix.lstrip(".").lower() in ("wav", "flac"):
            output_format = output.suffix.lstrip(".").lower()
        raw = [
            {
                "prompt": prompt,
                "duration_seconds": duration,
                "random_seed": seed,
                "style": style,
                "target_bpm": bpm,
                "key": key,
                "scale": scale,
                "temperature": temperature,
                "top_k": top_k,
                "guidance_scale": guidance_scale,
                "output_format": output_format,
            }
        ]
        output = output or Path(f"generated.{output_format}")
        audio_paths = [output]
    try:
        params = [validate_parameters({k: v for k, v in item.items() if v is not None}) for item in raw]
        with console.status(f"generating {len(params)} track(s) with {model}"):
            results = generate_to_files(
                params,
                model,
                output_dir,
                engine=engine,
                device=device,
                dtype=dtype,
                audio_paths=audio_paths,
                max_batch_size=batch_size,
                window_seconds=window_seconds,
                context_seconds=context_seconds,
                spectrogram=spectrogram,
            )
    except (ServingError, PipelineError, ValueError) as err:
        exit_with_error(str(err))
    for result in results:
        console.print(
            f"[green]wrote[/] {result.audio_path}  {result.duration_seconds:.2f} s  seed {result.seed}  "
            f"RTF {result.real_time_factor:.2f}"
        )


def register(app: typer.Typer) -> None:
    """Add ``generate`` to the CLI."""
    app.command("generate")(generate)
