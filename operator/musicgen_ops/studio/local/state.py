"""The studio's SQLite state: trainings, their loss points, generations. A restart loses nothing."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS trainings (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, dataset TEXT NOT NULL, base_model TEXT NOT NULL,
    model_id TEXT NOT NULL, recipe TEXT NOT NULL, created TEXT NOT NULL, started TEXT, finished TEXT,
    error TEXT, pid INTEGER, progress TEXT
);
CREATE TABLE IF NOT EXISTS loss_points (
    training_id TEXT NOT NULL, step INTEGER NOT NULL, epoch REAL NOT NULL, loss REAL, val_loss REAL,
    PRIMARY KEY (training_id, step)
);
CREATE TABLE IF NOT EXISTS generations (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, model TEXT NOT NULL, model_ref TEXT NOT NULL,
    is_base INTEGER NOT NULL, parameters TEXT NOT NULL, created TEXT NOT NULL, compare_id TEXT,
    error TEXT, result TEXT
);
"""


def utc_now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat()


class StudioState:
    """One SQLite file, used from the event loop and worker threads (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.row_factory = sqlite3.Row
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.executescript(SCHEMA)
        self._lock = threading.Lock()

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            yield self._connection.cursor()

    def insert(self, table: str, values: dict[str, Any]) -> None:
        """Insert one row."""
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})", [_cell(v) for v in values.values()]
            )

    def update(self, table: str, row_id: str, **values: Any) -> None:
        """Set columns of the row ``row_id``."""
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self._cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {assignments} WHERE id = ?",
                [*(_cell(v) for v in values.values()), row_id],
            )

    def delete(self, table: str, row_id: str) -> None:
        """Delete the row ``row_id`` (no error when there is none)."""
        with self._cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))

    def get(self, table: str, row_id: str) -> dict[str, Any] | None:
        """One row as a dict, or None."""
        with self._cursor() as cursor:
            row = cursor.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone()
        return dict(row) if row else None

    def select(self, table: str, where: str = "1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows matching ``where``, newest first."""
        with self._cursor() as cursor:
            rows = cursor.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY created DESC", params)
            return [dict(row) for row in rows.fetchall()]

    def add_point(
        self, training_id: str, step: int, epoch: float, loss: float | None, val_loss: float | None
    ) -> None:
        """Record (or refresh) the loss at ``step``."""
        with self._cursor() as cursor:
            cursor.execute(
                "INSERT INTO loss_points VALUES (?, ?, ?, ?, ?) ON CONFLICT (training_id, step) DO UPDATE "
                "SET epoch = excluded.epoch, loss = coalesce(excluded.loss, loss), "
                "val_loss = coalesce(excluded.val_loss, val_loss)",
                (training_id, step, epoch, loss, val_loss),
            )

    def points(self, training_id: str) -> list[dict[str, Any]]:
        """The loss curve of a training, by step."""
        with self._cursor() as cursor:
            rows = cursor.execute(
                "SELECT step, epoch, loss, val_loss FROM loss_points WHERE training_id = ? ORDER BY step",
                (training_id,),
            )
            return [dict(row) for row in rows.fetchall()]

    def delete_points(self, training_id: str) -> None:
        """Forget a training's loss curve."""
        with self._cursor() as cursor:
            cursor.execute("DELETE FROM loss_points WHERE training_id = ?", (training_id,))

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._connection.close()


def _cell(value: Any) -> Any:
    """Python values as SQLite cells: dicts/lists as JSON, bools as 0/1."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value
