"""Asynchronous jobs persist in the output folder: restarts, crashes, drain and retention."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from musicgen_ops.serving.errors import JobNotFoundError, ServiceDrainingError
from musicgen_ops.serving.jobstore import JobStore
from musicgen_ops.serving.schemas import GenerateRequest, JobState
from musicgen_ops.serving.service import GenerationService

REQUEST = {"prompt": "x", "duration_seconds": 0.05, "random_seed": 3}


async def _wait_finished(service: GenerationService, job_id: str, timeout: float = 60) -> JobState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = service.get_job(job_id).state
        if state in (JobState.SUCCEEDED, JobState.FAILED):
            return state
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} still {state.value} after {timeout} s")


async def _started(settings, engine_factory) -> GenerationService:
    service = GenerationService(settings, engine_factory=engine_factory)
    await service.start()
    return service


async def test_finished_job_is_readable_after_a_restart(settings, engine_factory):
    first = await _started(settings, engine_factory)
    job = first.submit_job(REQUEST)
    assert await _wait_finished(first, job.job_id) == JobState.SUCCEEDED
    await first.close()

    second = await _started(settings, engine_factory)
    try:
        again = second.get_job(job.job_id)
        assert again.state == JobState.SUCCEEDED and again.result.seed == 3
        assert os.path.isfile(again.result.audio_path)
    finally:
        await second.close()


async def test_unfinished_jobs_are_re_run_after_a_crash(settings, engine_factory):
    crashed = await _started(settings, engine_factory)
    ids = [crashed.submit_job(REQUEST | {"random_seed": seed}).job_id for seed in range(3)]
    await crashed.close()  # cancels the work, as a killed process would lose it
    store = JobStore(settings.output_dir)
    assert {store.get(i).state for i in ids} <= {JobState.QUEUED, JobState.RUNNING}
    store.close()

    restarted = await _started(settings, engine_factory)
    try:
        for seed, job_id in enumerate(ids):
            assert await _wait_finished(restarted, job_id) == JobState.SUCCEEDED
            assert restarted.get_job(job_id).result.seed == seed
    finally:
        await restarted.close()


async def test_drain_finishes_admitted_work_and_refuses_new(settings, engine_factory):
    service = await _started(settings, engine_factory)
    try:
        ids = [service.submit_job(REQUEST).job_id for _ in range(4)]
        assert await service.drain(grace_seconds=60) is True
        assert [service.get_job(i).state for i in ids] == [JobState.SUCCEEDED] * 4
        with pytest.raises(ServiceDrainingError, match="shutting down"):
            service.submit_job(REQUEST)
        with pytest.raises(ServiceDrainingError):
            await service.generate_track(REQUEST)
    finally:
        await service.close()


async def test_drain_grace_period_leaves_jobs_for_the_next_server(settings, engine_factory):
    service = await _started(settings, engine_factory)
    job_id = service.submit_job(REQUEST | {"duration_seconds": 2.0}).job_id
    assert await service.drain(grace_seconds=0.01) is False
    await service.close()
    assert JobStore(settings.output_dir).get(job_id).state in (JobState.QUEUED, JobState.RUNNING)


async def test_retention_deletes_old_jobs_and_their_folders(settings, engine_factory):
    settings.max_jobs = 2
    service = await _started(settings, engine_factory)
    try:
        ids = []
        for _ in range(4):
            ids.append(service.submit_job(REQUEST).job_id)
            await _wait_finished(service, ids[-1])
        service.forget_expired_jobs()  # each submission also forgets; 2 of 4 are kept
        jobs_dir = settings.output_dir / "jobs"
        assert sorted(p.name for p in jobs_dir.iterdir()) == sorted(ids[2:])
        assert service.jobs.count() == 2
        with pytest.raises(JobNotFoundError, match="deleted by retention"):
            service.get_job(ids[0])
        settings.job_retention_seconds = 1e-6
        assert service.forget_expired_jobs() == 2 and not list(jobs_dir.iterdir())
    finally:
        await service.close()


def test_store_round_trips_the_request(tmp_path):
    store = JobStore(tmp_path)
    request = GenerateRequest(prompt="a, b", duration_seconds=1.5, style="jazz", trained_model_id="m")
    store.add("abc", request)
    assert store.unfinished() == [("abc", request)]
    store.finish("abc", error="InferenceError: boom")
    assert store.get("abc").state == JobState.FAILED and store.get("abc").error == "InferenceError: boom"
    assert store.unfinished() == [] and store.get("nope") is None
