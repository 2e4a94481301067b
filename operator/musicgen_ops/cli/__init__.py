"""The `musicgen-ops` command line.

Each command group lives in its own module under this package and registers itself with
`register(app)`. Heavy imports (torch, transformers, kopf, SDKs) happen inside the commands,
so `--help` is fast and the operator image needs no torch.
"""

from __future__ import annotations

import importlib
import sys

import typer

from musicgen_ops.contracts.names import DEBUG_ENV, LOG_JSON_ENV, LOG_LEVEL_ENV

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
        "WARNING", "--log-level", envvar=LOG_LEVEL_ENV, help="DEBUG, INFO, WARNING..."
    ),
    log_json: bool = typer.Option(
        False, "--log-json", envvar=LOG_JSON_ENV, help="Structured JSON log lines."
    ),
    debug: bool = typer.Option(
        False, "--debug", envvar=DEBUG_ENV, help="Show the full traceback of an error."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Global options: logging, tracebacks."""
    from musicgen_ops.cli import console as terminal
    from musicgen_ops.logs import configure_logging

    terminal.debug_enabled = debug
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


def run(args: list[str] | None = None) -> int:
    """Run the CLI on ``args`` (default: ``sys.argv[1:]``) and return the exit code.

    Every error ends as one ``error: ...`` line on stderr: usage errors exit 2, anything else 1.
    A traceback is shown only with ``--debug`` (or ``MUSICGEN_DEBUG=1``).
    """
    from musicgen_ops.cli import console as terminal

    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="musicgen-ops", standalone_mode=False)
    except typer.Exit as err:
        return err.exit_code
    except typer.Abort:
        terminal.print_error("aborted")
        return 1
    except typer.TyperException as err:  # usage errors (unknown command or option, bad value): exit 2
        context = getattr(err, "ctx", None)
        where = context.command_path if context is not None else "musicgen-ops"
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        terminal.print_error(f"{message} (see '{where} --help')")
        return getattr(err, "exit_code", 2)
    except KeyboardInterrupt:
        terminal.print_error("interrupted")
        return 130
    except Exception as err:
        if terminal.debug_enabled or "--debug" in (sys.argv[1:] if args is None else args):
            raise
        terminal.print_error(terminal.describe_error(err))
        return 1
    return code if isinstance(code, int) else 0


def main() -> None:
    """Entry point of the `musicgen-ops` console script."""
    sys.exit(run())
