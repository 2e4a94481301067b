"""Shared terminal output for CLI commands: one rich console, progress bars, error exits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
#: Set by ``--debug``: errors reaching the top show their traceback.
debug_enabled = False


def progress_bar() -> Progress:
    """A rich progress bar with count, elapsed and remaining time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def print_error(message: str) -> None:
    """Print one ``error: ...`` line (no markup interpretation of the message)."""
    console.print("[bold red]error:[/] ", end="")
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def exit_with_error(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line (no stack trace) and exit."""
    print_error(message)
    raise typer.Exit(code)


def describe_error(err: BaseException) -> str:
    """One line for an error that reached the top of the CLI: what failed, on which file, what to do."""
    from pydantic import ValidationError

    from musicgen_ops.contracts.base import describe_validation_error

    if isinstance(err, ValidationError):
        return f"invalid {err.title}: " + "; ".join(describe_validation_error(err))
    if isinstance(err, OSError) and err.filename is not None and not _is_project_error(err):
        target = f"{err.filename} -> {err.filename2}" if err.filename2 else str(err.filename)
        reason = err.strerror or type(err).__name__
        return f"{target}: {reason}" + _OS_HINTS.get(type(err), "")
    if _is_project_error(err) or isinstance(err, (OSError, ValueError)):
        return str(err) or type(err).__name__
    return f"unexpected {type(err).__name__}: {err} (run with --debug for the traceback and report it)"


_OS_HINTS: dict[type, str] = {
    NotADirectoryError: " (expected a folder: give a folder path, not a file)",
    IsADirectoryError: " (expected a file, got a folder)",
    FileNotFoundError: " (check the path)",
    PermissionError: " (check the file's permissions and owner)",
    FileExistsError: " (remove it or choose another path)",
}


def _is_project_error(err: BaseException) -> bool:
    from musicgen_ops.pipeline.errors import PipelineError
    from musicgen_ops.storage.base import StorageError

    return isinstance(err, (PipelineError, StorageError))


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn storage errors into one ``error:`` line and exit code 1."""
    from musicgen_ops.storage import StorageError

    try:
        yield
    except StorageError as err:
        exit_with_error(str(err))
