"""The `musicgen-ops` command line.

Each command group lives in its own module under this package and registers itself with
`register(app)`. Heavy imports (torch, transformers, kopf, SDKs) happen inside the commands,
so `--help` is fast and the operator image needs no torch.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="musicgen-ops",
    help="Fine-tune MusicGen with LoRA, export it and generate music — locally or on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    """``--version``: print the one version (package, chart appVersion, image tags) and exit."""
    if value:
        from musicgen_ops import __version__

        typer.echo(f"musicgen-ops {__version__}")
        raise typer.Exit()


@app.callback()
def _configure(
    log_level: str = typer.Option(
        "WARNING", "--log-level", envvar="MUSICGEN_LOG_LEVEL", help="DEBUG, INFO, WARNING..."
    ),
    log_json: bool = typer.Option(
        False, "--log-json", envvar="MUSICGEN_LOG_JSON", help="Structured JSON log lines."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Global options: logging."""
    from musicgen_ops.logs import configure_logging

    configure_logging(log_level, json_lines=log_json)


# Modules under musicgen_ops.cli, in the order their commands appear in --help.
COMMAND_MODULES = (
    "demo",
    "preprocess",
    "train",
    "export",
    "generate",
    "serve",
    "studio",
    "storage",
    "models",
    "cluster",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Entry point of the `musicgen-ops` console script."""
    app()
