"""Persistent store of asynchronous generation jobs: one SQLite file in the server's output folder.

A job is written when it is accepted (before the 202 answer), and again when it starts and ends, so
a restarted server still answers for finished jobs and re-runs the ones that were queued or running
when it stopped. Readers always get a fresh ``JobStatus`` built from the stored row (a snapshot),
never an object that the event loop is still changing.

Audio sent inline with a job (``audio_prompt_base64``, ``melody_base64``: JSON bodies and multipart
uploads alike) is not kept in the row: its bytes go to ``<folder>/job-inputs/<job-id>/<field>``
(written atomically before the row), the row's ``inputs`` column names the fields stored there, and
``unfinished`` puts them back into the request. The files are deleted when the job finishes or is
forgotten; a folder left by a crash between file and row is pruned with the expired jobs.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

from musicgen_ops.serving.schemas import GenerateRequest, GenerationResult, JobState, JobStatus

__all__ = ["INLINE_AUDIO_FIELDS", "JOBS_DB_NAME", "JOB_INPUTS_DIR", "JobStore"]

logger = logging.getLogger(__name__)

JOBS_DB_NAME = "jobs.sqlite3"
#: Folder (beside the database) holding the inline audio of queued jobs, one sub-folder per job.
JOB_INPUTS_DIR = "job-inputs"
#: Request fields holding inline audio (base64): stored as files, not in the row.
INLINE_AUDIO_FIELDS = ("audio_prompt_base64", "melody_base64")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id   TEXT PRIMARY KEY,
    state    TEXT NOT NULL,
    created  TEXT NOT NULL,
    finished TEXT,
    request  TEXT NOT NULL,
    result   TEXT,
    error    TEXT,
    inputs   TEXT
)
"""
_UNFINISHED = (JobState.QUEUED.value, JobState.RUNNING.value)


class JobStore:
    """Jobs by id in ``<folder>/jobs.sqlite3`` (WAL journal: a crash loses no committed job).

    Args:
        folder: the server's output folder (created when missing).
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / JOBS_DB_NAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "inputs" not in columns:  # a store written before inputs moved out of the row
            self._db.execute("ALTER TABLE jobs ADD COLUMN inputs TEXT")
        self.inputs_dir = folder / JOB_INPUTS_DIR

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def add(self, job_id: str, request: GenerateRequest) -> JobStatus:
        """Record an accepted job (state ``queued``) and return its status; its inline audio goes to files."""
        created = datetime.now(timezone.utc)
        inputs = self._write_inputs(job_id, request)
        try:
            self._write(
                "INSERT INTO jobs (job_id, state, created, request, inputs) VALUES (?, ?, ?, ?, ?)",
                (
                    job_id,
                    JobState.QUEUED.value,
                    created.isoformat(),
                    request.model_dump_json(exclude=set(inputs)),
                    json.dumps(inputs) if inputs else None,
                ),
            )
        except BaseException:
            self._remove_inputs(job_id)
            raise
        return JobStatus(job_id=job_id, state=JobState.QUEUED, created=created)

    def _write_inputs(self, job_id: str, request: GenerateRequest) -> dict[str, str]:
        """Write the request's inline audio to files; returns ``field -> encoding`` (``bytes``: the
        decoded audio; ``text``: a value that is not valid base64, kept verbatim for the job to refuse)."""
        inputs: dict[str, str] = {}
        for name in INLINE_AUDIO_FIELDS:
            value = getattr(request, name)
            if value is None:
                continue
            try:
                data, encoding = base64.b64decode(value, validate=True), "bytes"
            except (binascii.Error, ValueError):
                data, encoding = value.encode("utf-8"), "text"
            folder = self.inputs_dir / job_id
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / f".{name}.partial"
            with open(partial, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, folder / name)
            inputs[name] = encoding
        return inputs

    def _read_inputs(self, job_id: str, inputs: dict[str, str]) -> dict[str, str]:
        """The inline fields of a stored job, read back from its files (``OSError`` when one is gone)."""
        values = {}
        for name, encoding in inputs.items():
            data = (self.inputs_dir / job_id / name).read_bytes()
            values[name] = base64.b64encode(data).decode("ascii") if encoding == "bytes" else data.decode()
        return values

    def _remove_inputs(self, job_id: str) -> None:
        shutil.rmtree(self.inputs_dir / job_id, ignore_errors=True)

    def mark_running(self, job_id: str) -> None:
        """The job's generation started."""
        self._write("UPDATE jobs SET state = ? WHERE job_id = ?", (JobState.RUNNING.value, job_id))

    def finish(
        self, job_id: str, *, result: GenerationResult | None = None, error: str | None = None
    ) -> None:
        """Record the outcome: ``succeeded`` with a result, or ``failed`` with an error."""
        state = JobState.SUCCEEDED if result is not None else JobState.FAILED
        self._write(
            "UPDATE jobs SET state = ?, finished = ?, result = ?, error = ? WHERE job_id = ?",
            (
                state.value,
                datetime.now(timezone.utc).isoformat(),
                result.model_dump_json() if result is not None else None,
                error,
                job_id,
            ),
        )
        self._remove_inputs(job_id)  # the audio was only needed to run it

    def get(self, job_id: str) -> JobStatus | None:
        """A snapshot of the job, or None when unknown."""
        with self._lock:
            row = self._db.execute(
                "SELECT job_id, state, created, finished, result, error FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        if row is None:
            return None
        job_id, state, created, finished, result, error = row
        return JobStatus(
            job_id=job_id,
            state=JobState(state),
            created=datetime.fromisoformat(created),
            finished=datetime.fromisoformat(finished) if finished else None,
            result=GenerationResult.model_validate_json(result) if result else None,
            error=error,
        )

    def unfinished(self) -> list[tuple[str, GenerateRequest]]:
        """Jobs queued or running when the server stopped, oldest first, with their requests (inline audio
        read back from its files; a job whose files are gone is marked failed, saying so)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, request, inputs FROM jobs WHERE state IN (?, ?) ORDER BY created", _UNFINISHED
            ).fetchall()
        jobs = []
        for job_id, request, inputs in rows:
            stored = json.loads(inputs) if inputs else {}
            try:
                values = self._read_inputs(job_id, stored)
            except OSError as err:
                logger.warning("job %s: its stored audio cannot be read (%s)", job_id, err)
                self.finish(
                    job_id,
                    error=f"{', '.join(stored)}: the audio sent with this job is no longer stored "
                    "on the server (removed while it waited); submit it again",
                )
                continue
            params = GenerateRequest.model_validate_json(request)
            jobs.append((job_id, params.model_copy(update=values) if values else params))
        return jobs

    def expired(self, *, keep: int, finished_before: datetime) -> list[str]:
        """Finished jobs to forget: beyond the newest ``keep`` finished ones, or finished before a time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, finished FROM jobs WHERE finished IS NOT NULL ORDER BY finished DESC"
            ).fetchall()
        cutoff = finished_before.isoformat()
        return [job_id for index, (job_id, finished) in enumerate(rows) if index >= keep or finished < cutoff]

    def delete(self, job_ids: list[str]) -> None:
        """Forget jobs (and any audio they still had stored)."""
        with self._lock:
            self._db.executemany("DELETE FROM jobs WHERE job_id = ?", [(j,) for j in job_ids])
        for job_id in job_ids:
            self._remove_inputs(job_id)

    def prune_inputs(self, older_than: datetime) -> int:
        """Delete stored audio no unfinished job refers to (left by a crash between file and row) when
        written before ``older_than``; returns the folders removed."""
        if not self.inputs_dir.is_dir():
            return 0
        with self._lock:
            rows = self._db.execute("SELECT job_id FROM jobs WHERE state IN (?, ?)", _UNFINISHED).fetchall()
        waiting = {job_id for (job_id,) in rows}
        removed = 0
        for folder in self.inputs_dir.iterdir():
            try:
                written = datetime.fromtimestamp(folder.stat().st_mtime, timezone.utc)
            except OSError:
                continue
            if folder.name not in waiting and written < older_than:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def count(self) -> int:
        """Jobs stored (any state)."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
