"""Shared terminal output for CLI commands: one rich console, progress bars, error exits."""

from __future__ import annotations

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


def exit_with_error(message: str, code: int = 1) -> NoReturn:
    """Print one clear error line (no stack trace) and exit."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
