"""The real server process under load: SIGTERM drains (no accepted job lost), SIGKILL + restart re-runs.

Bounded: tiny random model on CPU, loopback only, 16 clients for a few seconds per phase.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

CLIENTS = 16
LOAD_SECONDS = 2.0
REQUEST = {"prompt": "drums", "duration_seconds": 0.3}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``musicgen-ops serve`` in a child process on loopback, sharing one output folder across restarts."""

    def __init__(self, output_dir: Path, log: Path) -> None:
        self.output_dir = output_dir
        self.log = log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MUSICGEN_")},
            "OMP_NUM_THREADS": "1",
            "MUSICGEN_SERVE_OUTPUT_DIR": str(self.output_dir),
            "MUSICGEN_SERVE_WINDOW_SECONDS": "0.2",
            "MUSICGEN_SERVE_STRIDE_SECONDS": "0.1",
            "MUSICGEN_SERVE_MAX_QUEUE": "24",
            "MUSICGEN_SERVE_DRAIN_SECONDS": "60",
            "MUSICGEN_SERVE_DEVICE": "cpu",
        }
        command = [sys.executable, "-c", "from musicgen_ops.cli import main; main()", "serve"]
        command += ["--model", "tiny-random", "--no-warmup", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("a") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("server not ready after 120 s:\n" + self.log.read_text()[-3000:])

    def stop(self, sig: int, timeout: float = 90) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def job_states(self) -> dict[str, str]:
        with sqlite3.connect(self.output_dir / "jobs.sqlite3") as db:
            return dict(db.execute("SELECT job_id, state FROM jobs").fetchall())


class Load:
    """CLIENTS threads posting async jobs until stopped; records every answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.accepted: list[str] = []
        self.statuses: list[int] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    response = client.post("/v1/generate", params={"mode": "async"}, json=REQUEST)
                except httpx.TransportError:
                    time.sleep(0.05)  # server gone or restarting
                    continue
                self.statuses.append(response.status_code)
                if response.status_code == 202:
                    self.accepted.append(response.json()["job_id"])
                else:
                    time.sleep(0.05)

    def wait_accepted(self, count: int, timeout: float = 60) -> None:
        """Keep the load on for LOAD_SECONDS and until ``count`` jobs were accepted."""
        started = time.monotonic()
        while time.monotonic() - started < LOAD_SECONDS or len(self.accepted) < count:
            waited = time.monotonic() - started
            assert waited < timeout, f"only {len(self.accepted)} accepted: {self.statuses}"
            time.sleep(0.05)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=40)


def _wait_all_succeeded(server: Server, job_ids: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=10) as client:
        pending = set(job_ids)
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                job = client.get(f"/v1/jobs/{job_id}").json()
                assert job["state"] != "failed", job
                if job["state"] == "succeeded":
                    assert job["audio_url"] and job["result"]["audio_path"] == f"{job_id}.wav", job
                    pending.discard(job_id)
            time.sleep(0.2)
    assert not pending, f"{len(pending)} of {len(job_ids)} accepted jobs never finished"


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sigkill_restart_re_runs_and_sigterm_drains(tmp_path):
    server = Server(tmp_path / "out", tmp_path / "server.log")
    server.start()

    # SIGKILL under load: what was accepted and unfinished is still in the job store.
    with Load(server.url) as load:
        load.wait_accepted(CLIENTS)
        server.stop(signal.SIGKILL)
    killed = list(load.accepted)
    assert killed and set(load.statuses) <= {202, 429}, sorted(set(load.statuses))
    unfinished = [j for j, s in server.job_states().items() if s in ("queued", "running")]
    assert unfinished, "the load never queued more work than the server finished"

    # Restart on the same folder (it re-runs them), load again, then SIGTERM: readiness turns 503,
    # new work is refused, and every job accepted by either server has succeeded when the process exits.
    server.start()
    _wait_all_succeeded(server, unfinished)
    with Load(server.url) as load:
        load.wait_accepted(CLIENTS)
        server.process.send_signal(signal.SIGTERM)
        seen_draining = False
        while server.process.poll() is None and not seen_draining:
            try:
                ready = httpx.get(f"{server.url}/readyz", timeout=2)
            except httpx.TransportError:
                break
            seen_draining = ready.status_code == 503 and ready.json()["status"] == "draining"
            time.sleep(0.02)
        exit_code = server.process.wait(timeout=90)
    assert seen_draining, "readiness never turned 503 while draining"
    assert exit_code in (0, -signal.SIGTERM), server.log.read_text()[-3000:]
    assert set(load.statuses) <= {202, 429, 503}, sorted(set(load.statuses))
    states = server.job_states()
    lost = [j for j in killed + load.accepted if states.get(j) != "succeeded"]
    assert not lost, f"{len(lost)} of {len(killed) + len(load.accepted)} accepted jobs lost"
