"""CLI commands: serve (the generator Deployment's process: FastAPI under uvicorn)."""

from __future__ import annotations

from pathlib import Path

import typer

from musicgen_ops.cli.console import exit_with_error
from musicgen_ops.cli.options import describe_option_errors, field_option
from musicgen_ops.contracts.environment import ServeEnvironment


def serve(
    host: str | None = typer.Option(None, "--host", help="Bind address [env MUSICGEN_SERVE_HOST, 0.0.0.0]."),
    port: int | None = typer.Option(None, "--port", help="Port [env MUSICGEN_SERVE_PORT, 8080]."),
    model: list[str] | None = typer.Option(
        None, "--model", "-m", help="Model id/path to preload (repeatable); the first is the default model."
    ),
    warmup: bool | None = typer.Option(
        None, "--warmup/--no-warmup", help="Generate a short clip with each preloaded model before ready."
    ),
    engine: str | None = field_option(ServeEnvironment, "engine", default=None),
    model_format: str | None = field_option(ServeEnvironment, "model_format", default=None),
    device: str | None = field_option(ServeEnvironment, "device", default=None),
    dtype: str | None = field_option(ServeEnvironment, "dtype", default=None),
    decoder: str | None = field_option(ServeEnvironment, "decoder", default=None),
    models_root: Path | None = typer.Option(
        None, "--models-root", help="Local folder of <model-id>/ models."
    ),
    models_uri: str | None = typer.Option(
        None, "--models-uri", help="Artifact root (s3://, az://, file://)."
    ),
    log_level: str = typer.Option("info", "--uvicorn-log-level", help="uvicorn's log level."),
) -> None:
    """Serve the generation API (POST /v1/generate, /v1/jobs, /v1/models, /healthz, /readyz, /metrics).

    Every option can also come from ``MUSICGEN_SERVE_*`` env vars (options win); an unknown
    ``MUSICGEN_SERVE_*`` variable is an error.
    """
    from pydantic import ValidationError

    from musicgen_ops.contracts.base import UnknownEnvironmentError

    overrides = {
        "host": host,
        "port": port,
        "warmup": warmup,
        "engine": engine,
        "device": device,
        "dtype": dtype,
        "model_format": model_format,
        "decoder": decoder,
        "models_root": models_root,
        "models_uri": models_uri,
    }
    if model:
        overrides["preload"] = list(model)
        overrides["default_model"] = model[0]
    try:
        settings = ServeEnvironment.from_environ(**{k: v for k, v in overrides.items() if v is not None})
    except UnknownEnvironmentError as err:
        exit_with_error(str(err))
    except ValidationError as err:
        exit_with_error("invalid server settings: " + describe_option_errors(err))

    from musicgen_ops.serving.app import create_app
    from musicgen_ops.serving.server import run

    run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the CLI."""
    app.command("serve")(serve)
