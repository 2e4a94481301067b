"""Scale: 100 TrainingJobs at once, the operator SIGKILLed mid-way and restarted -> exactly 100 Jobs.

The operator runs as in production (``musicgen-ops operator``, the image's command, in its own process)
against the emulator; the test plays the Job controller (marks each Job active) and measures.
Figures are logged and kept in docs/operator.md ("Scale").
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.kube_api.conftest import CRDS, TJ, training_job
from tests.kube_emulator import EmulatorThread, KubeEmulator, write_kubeconfig

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
logger = logging.getLogger(__name__)
COUNT = 100
JOBS = "/apis/batch/v1/namespaces/default/jobs"
REPO = Path(__file__).resolve().parents[2]


def _start_operator(kubeconfig: Path, artifacts: Path, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'operator'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "KUBECONFIG": str(kubeconfig),
        "MUSICGEN_OPERATOR_WATCH_NAMESPACES": "default",
        "MUSICGEN_OPERATOR_ARTIFACTS_URI": f"file://{artifacts}",
        "MUSICGEN_OPERATOR_TRAINER_IMAGE": "registry.test/trainer:1",
        "MUSICGEN_OPERATOR_GENERATOR_IMAGE": "registry.test/generator:1",
        "MUSICGEN_OPERATOR_STORAGE_SECRET": "storage-creds",
        "MUSICGEN_OPERATOR_PROGRESS_POLL_SECONDS": "2",
        "MUSICGEN_OPERATOR_METRICS_PORT": "0",
    }
    command = [str(Path(sys.executable).parent / "musicgen-ops"), "operator", "--namespace", "default"]
    return subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _wait(what: str, check, timeout: float, interval: float = 0.1) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def _play_job_controller(api: httpx.Client, stop: threading.Event) -> None:
    """Mark every new Job active, as the Job controller does once its pod starts."""
    started: set[str] = set()
    while not stop.is_set():
        for job in api.get(JOBS).json()["items"]:
            name = job["metadata"]["name"]
            if name not in started:
                status = {"status": {"active": 1, "startTime": job["metadata"]["creationTimestamp"]}}
                response = api.patch(
                    f"{JOBS}/{name}/status",
                    json=status,
                    headers={"Content-Type": "application/merge-patch+json"},
                )
                if response.status_code == 200:
                    started.add(name)
        stop.wait(0.5)


def test_hundred_trainingjobs_with_an_operator_restart(tmp_path):
    emulator = KubeEmulator(crds=CRDS)
    with EmulatorThread(emulator) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        log = tmp_path / "operator.log"
        operator = _start_operator(kubeconfig, tmp_path / "artifacts", log)
        stop = threading.Event()
        controller = threading.Thread(target=_play_job_controller, args=(api, stop), daemon=True)
        try:
            watching = lambda: any(  # noqa: E731
                r.verb == "watch" and r.resource == "trainingjobs" for r in list(emulator.recorded)
            )
            _wait("the operator to watch TrainingJobs", watching, 60)
            controller.start()
            requests_before = len(emulator.recorded)
            started = time.monotonic()

            def create(indices: range) -> list[int]:
                with concurrent.futures.ThreadPoolExecutor(8) as pool:
                    return list(
                        pool.map(
                            lambda i: (
                                api.post(
                                    TJ, json=training_job(f"scale-{i:03d}", baseModel="tiny-random")
                                ).status_code
                            ),
                            indices,
                        )
                    )

            # Half the TrainingJobs, the operator SIGKILLed while it works on them, the other half created
            # while it is down, then a restart: the kill always lands mid-way, however fast the machine.
            half = COUNT // 2
            codes = create(range(half))
            _wait("the first Jobs", lambda: len(api.get(JOBS).json()["items"]) >= COUNT // 10, 60)
            operator.send_signal(signal.SIGKILL)
            operator.wait(10)
            jobs_at_kill = len(api.get(JOBS).json()["items"])
            codes += create(range(half, COUNT))
            assert codes == [201] * COUNT
            operator = _start_operator(kubeconfig, tmp_path / "artifacts", log)

            def all_running() -> bool:
                phases = Counter((o.get("status") or {}).get("phase") for o in api.get(TJ).json()["items"])
                return phases["Running"] == COUNT

            _wait("every TrainingJob Running", all_running, 120, interval=0.5)
            seconds = time.monotonic() - started
        finally:
            stop.set()
            operator.send_signal(signal.SIGTERM)
            try:
                operator.wait(15)
            except subprocess.TimeoutExpired:
                operator.kill()
        jobs = api.get(JOBS).json()["items"]
        per_owner = Counter(j["metadata"]["labels"].get("musicgen.io/trainingjob") for j in jobs)
        job_events = Counter(e.type for e in emulator.store.log if e.key == ("batch", "jobs"))
        requests = len(emulator.recorded) - requests_before
        logger.info(
            "scale: %d TrainingJobs, operator SIGKILLed at %d Jobs and restarted: %d Jobs, %d duplicates, "
            "%d API requests, %.1f s until all Running",
            COUNT,
            jobs_at_kill,
            len(jobs),
            sum(n - 1 for n in per_owner.values()),
            requests,
            seconds,
        )
        assert len(jobs) == COUNT and set(per_owner.values()) == {1}
        assert job_events["ADDED"] == COUNT and job_events["DELETED"] == 0  # no Job was ever recreated
        assert 0 < jobs_at_kill < COUNT, "the restart did not happen mid-way"
        assert seconds < 90, f"{seconds:.0f} s"
