"""CLI commands: generate (batch/Job mode: one track, or many from a JSONL requests file)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import get_args

import typer

from musicgen_ops.cli.console import console, exit_with_error
from musicgen_ops.cli.options import field_option
from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.contracts.generation import GenerationParameters, OutputFormat

OUTPUT_FORMATS = get_args(OutputFormat)


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


P = GenerationParameters


def _format_of(output: Path) -> str:
    """The audio format an ``--output`` file name asks for (its suffix); other suffixes are refused."""
    suffix = output.suffix.lstrip(".").lower()
    if suffix not in OUTPUT_FORMATS:
        exit_with_error(
            f"--output {output}: cannot write {suffix or 'files without a suffix'!s}; "
            f"use a name ending in {' or '.join('.' + f for f in OUTPUT_FORMATS)}"
        )
    return suffix


def _check_writable(folder: Path) -> None:
    """Fail before loading any model when results could not be written into ``folder``."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                exit_with_error(f"{parent} is a file, not a folder: results cannot be written under it")
            if not os.access(parent, os.W_OK | os.X_OK):
                exit_with_error(f"{parent}: no permission to write there")
            return


def _check_melodies(params: list[GenerationParameters]) -> None:
    """Fail before loading any model when a ``--melody`` file is not there."""
    from musicgen_ops.pipeline.melody import local_melody_path

    for item in params:
        if item.melody_uri and not local_melody_path(item.melody_uri).expanduser().is_file():
            exit_with_error(f"--melody {item.melody_uri}: no such file")


def generate(
    model: str = typer.Option(
        "facebook/musicgen-small",
        "--model",
        "-m",
        help="Base model, trained checkpoint folder, published model folder or export.",
    ),
    prompt: str | None = field_option(P, "prompt", "-p"),
    duration_seconds: float = field_option(P, "duration_seconds", "--duration", "-d"),
    random_seed: int | None = field_option(P, "random_seed", "--seed"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Audio file for a single --prompt."),
    requests_file: Path | None = typer.Option(
        None, "--requests-file", help="JSONL: one object of generation parameters per line."
    ),
    output_dir: Path = typer.Option(
        Path("generated"), "--output-dir", help="Folder for --requests-file results."
    ),
    style: str | None = field_option(P, "style"),
    target_bpm: float | None = field_option(P, "target_bpm", "--bpm"),
    key: str | None = field_option(P, "key"),
    scale: str | None = field_option(P, "scale"),
    temperature: float = field_option(P, "temperature"),
    top_k: int = field_option(P, "top_k"),
    top_p: float = field_option(P, "top_p"),
    guidance_scale: float = field_option(P, "guidance_scale"),
    output_format: str = field_option(
        P,
        "output_format",
        "--format",
        help="wav, flac, mp3, ogg or opus (lossy ones where libsndfile writes them; opus at 48 kHz; "
        "default for --output: its suffix).",
    ),
    sample_rate: int | None = field_option(P, "sample_rate", "--rate"),
    bit_depth: int = field_option(P, "bit_depth"),
    target_lufs: float | None = field_option(P, "target_lufs", "--loudness"),
    true_peak_dbtp: float = field_option(P, "true_peak_dbtp"),
    melody_uri: str | None = field_option(
        P,
        "melody_uri",
        "--melody",
        help="Audio file (WAV/MP3/FLAC) whose melody the music follows (musicgen-melody models only).",
    ),
    audio_prompt: Path | None = field_option(
        P,
        "audio_prompt_uri",
        "--audio-prompt",
        help="Audio file to continue (any rate/channels): the track starts with it and lasts --duration "
        "in all.",
    ),
    engine: str = typer.Option(
        "auto", "--engine", help="auto (fast on CUDA, else torch), torch, fast, onnx or torchscript."
    ),
    model_format: str = typer.Option(
        "auto", "--model-format", help="Artifact of a model folder: auto, adapter, merged, onnx, onnx-int8..."
    ),
    decoder: str = field_option(
        ServeEnvironment,
        "decoder",
        help="Codes to audio for requests naming none: encodec, or mbd (MultiBand Diffusion, seeded).",
    ),
    mbd_weights: str = field_option(ServeEnvironment, "mbd_weights"),
    mbd_sampling_steps: int = field_option(ServeEnvironment, "mbd_sampling_steps", "--mbd-steps"),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when visible), cpu, cuda, cuda:N."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16 or float16 (torch/fast)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Requests generated together."),
    window_seconds: float = field_option(ServeEnvironment, "window_seconds"),
    stride_seconds: float = field_option(ServeEnvironment, "stride_seconds"),
    spectrogram: bool = typer.Option(False, "--spectrogram", help="Also write spectrogram PNGs."),
) -> None:
    """Generate music to files: one track (--prompt, --output) or many (--requests-file, --output-dir)."""
    from musicgen_ops.jobs.generate_job import fetch_audio_prompt
    from musicgen_ops.pipeline.errors import PipelineError
    from musicgen_ops.pipeline.generation.batch import generate_to_files, validate_parameters
    from musicgen_ops.pipeline.inference.decoders.mbd_checkpoint import (
        TINY_RANDOM,
        MbdWeightsError,
        resolve_mbd_file,
    )
    from musicgen_ops.storage.base import StorageError

    if (prompt is None) == (requests_file is None):
        exit_with_error("give exactly one of --prompt or --requests-file")
    audio_paths = None
    if requests_file is not None:
        raw = _read_requests(requests_file)
    else:
        if output is not None:
            output_format = _format_of(output)
            _check_writable(output.parent)
        if audio_prompt is not None:
            if not audio_prompt.is_file():
                exit_with_error(f"--audio-prompt {audio_prompt}: no such file")
            audio_prompt = audio_prompt.resolve()
        options = {
            "prompt": prompt,
            "duration_seconds": duration_seconds,
            "random_seed": random_seed,
            "style": style,
            "target_bpm": target_bpm,
            "key": key,
            "scale": scale,
            "temperature": temperature,
            "top_k": top_k,
            "top_p": top_p,
            "guidance_scale": guidance_scale,
            "output_format": output_format,
            "sample_rate": sample_rate,
            "bit_depth": bit_depth,
            "target_lufs": target_lufs,
            "true_peak_dbtp": true_peak_dbtp,
            "melody_uri": melody_uri,
            "audio_prompt_uri": None if audio_prompt is None else str(audio_prompt),
        }
        raw = [{k: v for k, v in options.items() if v is not None}]
        output = output or Path(f"generated.{output_format}")
        audio_paths = [output]
    if requests_file is not None:
        _check_writable(output_dir)
    scratch = Path(tempfile.mkdtemp(prefix="audio-prompts-"))  # audio prompts, fetched as the job does
    try:
        params = [validate_parameters(item) for item in raw]
        _check_melodies(params)
        decoder_options = None
        if any((p.decoder or decoder) == "mbd" for p in params):
            from musicgen_ops.storage.base_models import resolve_base_model

            weights = resolve_base_model(mbd_weights)  # found before the model is loaded: fail fast
            weights = weights if weights == TINY_RANDOM else str(resolve_mbd_file(weights))
            decoder_options = {"mbd": {"weights": weights, "sampling_steps": mbd_sampling_steps}}
        with console.status(f"generating {len(params)} track(s) with {model}"):
            results = generate_to_files(
                params,
                model,
                output_dir,
                engine=engine,
                device=device,
                dtype=dtype,
                model_format=model_format,
                decoder=decoder,
                decoder_options=decoder_options,
                audio_paths=audio_paths,
                max_batch_size=batch_size,
                window_seconds=window_seconds,
                stride_seconds=stride_seconds,
                fetch_audio_prompt=lambda uri: fetch_audio_prompt(uri, scratch),
                spectrogram=spectrogram,
            )
    except MbdWeightsError as err:
        exit_with_error(f"--decoder mbd: {str(err).removeprefix('error: ')} (see --mbd-weights)")
    except (PipelineError, ValueError, StorageError) as err:
        exit_with_error(str(err))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for result in results:
        console.print(
            f"[green]wrote[/] {result.audio_path}  {result.duration_seconds:.2f} s  seed {result.seed}  "
            f"RTF {result.real_time_factor:.2f}"
        )


def register(app: typer.Typer) -> None:
    """Add ``generate`` to the CLI."""
    app.command("generate")(generate)
