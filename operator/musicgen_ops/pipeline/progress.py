"""Training progress: one event type, a protocol for whoever listens, and two listeners.

The trainer calls ``reporter.on_progress(event)`` after each optimizer step, each evaluation and at
the end. Events are the ``progress.json`` contract
(:class:`~musicgen_ops.contracts.progress.TrainingProgress`).
The CLI shows a rich progress bar; the Kubernetes job forwards events to object storage (see
``musicgen_ops.jobs.reporting``); :class:`JsonLinesProgressWriter` appends them to a local file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from musicgen_ops.contracts.progress import TrainingPhase as Phase
from musicgen_ops.contracts.progress import TrainingProgress as ProgressEvent

__all__ = [
    "JsonLinesProgressWriter",
    "MultiReporter",
    "Phase",
    "ProgressEvent",
    "ProgressReporter",
    "RichProgressReporter",
]


@runtime_checkable
class ProgressReporter(Protocol):
    """Receives progress events; must be cheap and must not raise."""

    def on_progress(self, event: ProgressEvent) -> None: ...


class JsonLinesProgressWriter:
    """Appends one JSON object per event to a file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def on_progress(self, event: ProgressEvent) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(event.model_dump_json() + "\n")


class RichProgressReporter:
    """A terminal progress bar with loss, validation loss and ETA; use as a context manager."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("epoch {task.fields[epoch]:.2f}  loss {task.fields[loss]}  val {task.fields[val]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = None

    def __enter__(self) -> RichProgressReporter:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def on_progress(self, event: ProgressEvent) -> None:
        loss = f"{event.loss:.4f}" if event.loss is not None else "-"
        val = f"{event.val_loss:.4f}" if event.val_loss is not None else "-"
        if self._task is None:
            self._task = self._progress.add_task(
                "training", total=event.total_steps, epoch=0.0, loss="-", val="-"
            )
        self._progress.update(
            self._task,
            completed=event.step,
            total=event.total_steps,
            epoch=event.epoch,
            loss=loss,
            val=val,
            description=event.phase,
        )


class MultiReporter:
    """Forwards every event to several reporters."""

    def __init__(self, *reporters: ProgressReporter | None) -> None:
        self.reporters = [r for r in reporters if r is not None]

    def on_progress(self, event: ProgressEvent) -> None:
        for reporter in self.reporters:
            reporter.on_progress(event)


class BaselineStamp:
    """Forwards events with the base model's validation loss filled in, so every progress snapshot has it."""

    def __init__(self, reporter: ProgressReporter, base_val_loss: float | None) -> None:
        self.reporter = reporter
        self.base_val_loss = base_val_loss

    def on_progress(self, event: ProgressEvent) -> None:
        self.reporter.on_progress(event.model_copy(update={"base_val_loss": self.base_val_loss}))
