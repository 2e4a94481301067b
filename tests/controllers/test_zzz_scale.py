"""Scale: many TrainingJobs created at once with an operator restart in the middle.

Exactly one Job per TrainingJob, no duplicate creates, every run Running within a stated time. Runs last
(its thousands of requests slow the emulator for whatever follows). The figures are in docs/operator.md.
"""

from __future__ import annotations

import logging
import os
import time

import pytest

from tests.controllers.conftest import TEST_AGENT, unique
from tests.controllers.helpers import training_job

pytestmark = pytest.mark.emulator
logger = logging.getLogger(__name__)

#: How many TrainingJobs (the issue's figure). Today's kmock emulator serves each request in time
#: proportional to its whole history and cannot keep up (docs/operator.md); MUSICGEN_SCALE_COUNT lowers it.
COUNT = int(os.environ.get("MUSICGEN_SCALE_COUNT", "100"))
#: Seconds from the first create to every TrainingJob Running, restart included.
TIME_LIMIT = 150.0


@pytest.mark.skip(reason="needs the strict emulator (h-emu): today's emulator times out (>10 s a request)")
def test_many_trainingjobs_with_a_restart_make_exactly_one_job_each(cluster, record_property):
    batch = unique("scale")
    names = [f"{batch}-{i:03d}" for i in range(COUNT)]
    # Poll slowly, as a real operator does (15 s by default), so 100 daemons do not flood the emulator.
    cluster.operator.restart(MUSICGEN_OPERATOR_PROGRESS_POLL_SECONDS="3")
    requests_before = len(cluster.emulator.recorded)
    started = time.monotonic()
    for name in names[: COUNT // 2]:
        cluster.create("trainingjobs", training_job(name))
    cluster.operator.restart()  # mid-way: some handled, some not, some perhaps mid-reconcile
    for name in names[COUNT // 2 :]:
        cluster.create("trainingjobs", training_job(name))

    def jobs_of_batch():
        return [j for j in cluster.list("jobs") if j["metadata"]["name"].startswith(batch)]

    cluster.wait_for("a Job per TrainingJob", lambda: len(jobs_of_batch()) >= COUNT, timeout=TIME_LIMIT)
    for job in jobs_of_batch():  # play the Job controller: every pod starts
        cluster.patch("jobs", job["metadata"]["name"], {"status": {"active": 1}}, sub="status")

    def running():
        items = cluster.list("trainingjobs")
        return sum(
            1
            for t in items
            if t["metadata"]["name"] in names and (t.get("status") or {}).get("phase") == "Running"
        )

    remaining = max(1.0, TIME_LIMIT - (time.monotonic() - started))
    cluster.wait_for("every TrainingJob Running", lambda: running() == COUNT, timeout=remaining)
    elapsed = time.monotonic() - started
    jobs = jobs_of_batch()
    creates = [
        r
        for r in cluster.emulator.recorded[requests_before:]
        if r.user_agent != TEST_AGENT and r.resource == "jobs" and r.verb == "create"
    ]
    requests = len(cluster.emulator.recorded) - requests_before
    record_property("scale_seconds", round(elapsed, 1))
    record_property("scale_api_requests", requests)
    logger.warning(
        "scale: %d Jobs, %d creates, %d API requests, %.1f s", len(jobs), len(creates), requests, elapsed
    )
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(f"{n}-train" for n in names)
    assert len(creates) == COUNT, f"{len(creates) - COUNT} duplicate Job creates"
    assert elapsed < TIME_LIMIT
    cluster.operator.restart(MUSICGEN_OPERATOR_PROGRESS_POLL_SECONDS="0.3")
