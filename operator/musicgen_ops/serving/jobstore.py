"""Persistent store of asynchronous generation jobs: one SQLite file in the server's output folder.

A job is written when it is accepted (before the 202 answer), and again when it starts and ends, so
a restarted server still answers for finished jobs and re-runs the ones that were queued or running
when it stopped. Readers always get a fresh ``JobStatus`` built from the stored row (a snapshot),
never an object that the event loop is still changing.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

from musicgen_ops.serving.schemas import GenerateRequest, GenerationResult, JobState, JobStatus

__all__ = ["JOBS_DB_NAME", "JobStore"]

JOBS_DB_NAME = "jobs.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id   TEXT PRIMARY KEY,
    state    TEXT NOT NULL,
    created  TEXT NOT NULL,
    finished TEXT,
    request  TEXT NOT NULL,
    result   TEXT,
    error    TEXT
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

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def add(self, job_id: str, request: GenerateRequest) -> JobStatus:
        """Record an accepted job (state ``queued``) and return its status."""
        created = datetime.now(timezone.utc)
        self._write(
            "INSERT INTO jobs (job_id, state, created, request) VALUES (?, ?, ?, ?)",
            (job_id, JobState.QUEUED.value, created.isoformat(), request.model_dump_json()),
        )
        return JobStatus(job_id=job_id, state=JobState.QUEUED, created=created)

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
        """Jobs queued or running when the server stopped, oldest first, with their requests."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, request FROM jobs WHERE state IN (?, ?) ORDER BY created", _UNFINISHED
            ).fetchall()
        return [(job_id, GenerateRequest.model_validate_json(request)) for job_id, request in rows]

    def expired(self, *, keep: int, finished_before: datetime) -> list[str]:
        """Finished jobs to forget: beyond the newest ``keep`` finished ones, or finished before a time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, finished FROM jobs WHERE finished IS NOT NULL ORDER BY finished DESC"
            ).fetchall()
        cutoff = finished_before.isoformat()
        return [job_id for index, (job_id, finished) in enumerate(rows) if index >= keep or finished < cutoff]

    def delete(self, job_ids: list[str]) -> None:
        """Forget jobs."""
        with self._lock:
            self._db.executemany("DELETE FROM jobs WHERE job_id = ?", [(j,) for j in job_ids])

    def count(self) -> int:
        """Jobs stored (any state)."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
