"""Trainings of the local backend: ``train-job`` as a subprocess, one at a time, progress from progress.json.

The subprocess gets exactly the environment the operator gives a training Job
(:meth:`TrainJobEnvironment.to_env`), with ``file://`` storage. A studio restart re-queues a run that
was running; train-job then resumes from the checkpoints it mirrored under ``runs/<id>/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from musicgen_ops.contracts.environment import JOB_ENV_PREFIX, TrainJobEnvironment
from musicgen_ops.contracts.progress import TrainingProgress
from musicgen_ops.contracts.training import TrainingRecipe
from musicgen_ops.storage import StorageError, model_uri, open_object
from musicgen_ops.studio.local.state import StudioState, utc_now
from musicgen_ops.studio.settings import StudioSettings

logger = logging.getLogger(__name__)

TRAIN_JOB_MODULE = "musicgen_ops.jobs.train_job"
#: How often the running train-job writes progress.json (a local file: cheap).
PROGRESS_INTERVAL_SECONDS = 1.0


def run_uri(settings: StudioSettings, training_id: str) -> str:
    """Folder URI of a run: checkpoints/, progress.json, the job's log and termination message."""
    return f"{settings.artifacts_uri}/runs/{training_id}"


def job_environment(settings: StudioSettings, row: dict[str, Any], dataset_uri: str) -> TrainJobEnvironment:
    """The train-job environment of a training row: what the operator would write for a TrainingJob."""
    recipe = TrainingRecipe.model_validate_json(row["recipe"])
    run = run_uri(settings, row["id"])
    folder = settings.root / "runs" / row["id"]
    return TrainJobEnvironment(
        namespace="studio",
        resource_name=row["id"],
        work_dir=folder / "work",
        device=settings.device,
        termination_log=folder / "termination-log",
        dataset_uri=dataset_uri,
        base_model=row["base_model"],
        model_id=row["model_id"],
        artifacts_uri=settings.artifacts_uri,
        output_uri=model_uri(settings.artifacts_uri, row["model_id"]),
        run_uri=run,
        progress_uri=f"{run}/progress.json",
        lora=recipe.lora,
        training=recipe.training,
        export_formats=recipe.export_formats,
        resume=True,
        progress_interval_seconds=PROGRESS_INTERVAL_SECONDS,
    )


def subprocess_environ(job: TrainJobEnvironment) -> dict[str, str]:
    """This process's environment without any ``MUSICGEN_JOB_*`` variable, plus the job's."""
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith(JOB_ENV_PREFIX)}
    environ.update({item["name"]: item["value"] for item in job.to_env()})
    return environ


def is_train_job(pid: int) -> bool:
    """Whether ``pid`` is alive and is a train-job (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return TRAIN_JOB_MODULE.encode() in cmdline


def stop_process_group(pid: int) -> None:
    """SIGTERM the process group a train-job leads; a gone process is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)


class TrainingRunner:
    """Starts queued trainings one at a time and records their progress and outcome."""

    def __init__(self, settings: StudioSettings, state: StudioState, dataset_uri: Any) -> None:
        self.settings = settings
        self.state = state
        self.dataset_uri = dataset_uri
        self.process: asyncio.subprocess.Process | None = None
        self.current: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def recover(self) -> None:
        """After a restart: runs left 'running' go back to the queue (their old process is stopped)."""
        for row in self.state.select("trainings", "state = 'running'"):
            if row["pid"] and is_train_job(row["pid"]):
                stop_process_group(row["pid"])
            self.state.update("trainings", row["id"], state="queued", pid=None)
            logger.info("training %s re-queued after a restart (it resumes from its checkpoints)", row["id"])

    async def start(self) -> None:
        """Start the scheduling loop."""
        self.recover()
        self._task = asyncio.create_task(self._loop())

    def wake(self) -> None:
        """Look at the queue now (a training was created or cancelled)."""
        self._wake.set()

    async def close(self) -> None:
        """Stop the loop and the running train-job (it resumes after the next start)."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.process and self.process.returncode is None:
            stop_process_group(self.process.pid)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.process.wait(), 10)

    def cancel(self, training_id: str) -> None:
        """Stop a training's process if it is the running one (the row is already marked cancelled)."""
        if self.current == training_id and self.process and self.process.returncode is None:
            stop_process_group(self.process.pid)
        self.wake()

    async def _loop(self) -> None:
        while True:
            try:
                if self.process is None:
                    await self._launch_next()
                else:
                    await self._watch()
            except Exception:  # keep scheduling whatever one run did
                logger.exception("training scheduler step failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
            self._wake.clear()

    async def _launch_next(self) -> None:
        queued = self.state.select("trainings", "state = 'queued'")
        if not queued:
            return
        row = queued[-1]  # oldest first
        try:
            job = job_environment(self.settings, row, self.dataset_uri(row["dataset"]))
        except (ValidationError, ValueError) as err:
            self.state.update(
                "trainings", row["id"], state="failed", error=f"error: {err}", finished=utc_now()
            )
            return
        folder = self.settings.root / "runs" / row["id"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "termination-log").unlink(missing_ok=True)
        with open(folder / "train-job.log", "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                TRAIN_JOB_MODULE,
                env=subprocess_environ(job),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self.current = row["id"]
        self.state.update(
            "trainings", row["id"], state="running", pid=self.process.pid, started=row["started"] or utc_now()
        )
        logger.info("training %s started (pid %d)", row["id"], self.process.pid)

    async def _watch(self) -> None:
        assert self.process is not None and self.current is not None
        training_id = self.current
        code = self.process.returncode  # read before progress.json, so the last write is seen
        self.read_progress(training_id)
        if code is None:
            return
        self.process, self.current = None, None
        row = self.state.get("trainings", training_id)
        if row is None or row["state"] == "cancelled":
            return
        if code == 0:
            self.state.update("trainings", training_id, state="completed", finished=utc_now(), pid=None)
        else:
            reason = self._termination_message(training_id) or f"train-job exited with code {code}"
            self.state.update(
                "trainings", training_id, state="failed", error=reason, finished=utc_now(), pid=None
            )
        logger.info("training %s finished with exit code %d", training_id, code)

    def _termination_message(self, training_id: str) -> str:
        path = self.settings.root / "runs" / training_id / "termination-log"
        return path.read_text(encoding="utf-8").strip() if path.is_file() else ""

    def read_progress(self, training_id: str) -> TrainingProgress | None:
        """Read progress.json of a run into the state (and its loss into the curve)."""
        store, key = open_object(f"{run_uri(self.settings, training_id)}/progress.json")
        try:
            progress = TrainingProgress.model_validate_json(store.get_bytes(key))
        except (StorageError, ValidationError):
            return None
        self.state.update("trainings", training_id, progress=progress.to_dict())
        if progress.loss is not None or progress.val_loss is not None:
            self.state.add_point(training_id, progress.step, progress.epoch, progress.loss, progress.val_loss)
        return progress
