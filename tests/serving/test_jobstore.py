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


def _clip(seconds: float = 0.2, rate: int = 32_000) -> bytes:
    import io

    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(
        buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV", subtype="FLOAT"
    )
    return buffer.getvalue()


def _row(store: JobStore, job_id: str) -> tuple[int, str | None]:
    return store._db.execute(
        "SELECT length(request), inputs FROM jobs WHERE job_id = ?", (job_id,)
    ).fetchone()


def test_inline_audio_is_stored_as_files_not_in_the_row(tmp_path):
    import base64

    clip = _clip()
    store = JobStore(tmp_path)
    request = GenerateRequest(prompt="x", audio_prompt_base64=base64.b64encode(clip).decode())
    store.add("abc", request)
    size, inputs = _row(store, "abc")
    assert size < 1000 and inputs == '{"audio_prompt_base64": "bytes"}'  # the row holds a reference only
    stored = tmp_path / "job-inputs" / "abc" / "audio_prompt_base64"
    assert stored.read_bytes() == clip and not list(stored.parent.glob(".*"))  # the bytes, renamed into place
    store.close()
    reopened = JobStore(tmp_path)  # a restart reads the audio back into the request
    assert reopened.unfinished() == [("abc", request)]
    reopened.finish("abc", error="x")
    assert not stored.parent.exists() and reopened.unfinished() == []


def test_invalid_base64_is_kept_verbatim_and_lost_files_fail_the_job(tmp_path):
    import shutil

    store = JobStore(tmp_path)
    odd = GenerateRequest(prompt="x", melody_base64="not base64!")
    store.add("odd", odd)
    assert store.unfinished() == [("odd", odd)]  # the job itself refuses it when it runs
    shutil.rmtree(tmp_path / "job-inputs" / "odd")
    assert store.unfinished() == []
    lost = store.get("odd")
    assert lost.state == JobState.FAILED and "melody_base64: the audio sent with this job" in lost.error


def test_expired_and_orphaned_inputs_are_deleted(tmp_path):
    import base64
    from datetime import datetime, timedelta, timezone

    store = JobStore(tmp_path)
    request = GenerateRequest(prompt="x", audio_prompt_base64=base64.b64encode(_clip()).decode())
    store.add("queued", request)
    store.add("forgotten", request)
    orphan = tmp_path / "job-inputs" / "crashed"  # file written, row never committed
    orphan.mkdir()
    (orphan / "audio_prompt_base64").write_bytes(b"x")
    store.delete(["forgotten"])
    assert not (tmp_path / "job-inputs" / "forgotten").exists()
    assert store.prune_inputs(older_than=datetime.now(timezone.utc) - timedelta(hours=1)) == 0  # too recent
    assert store.prune_inputs(older_than=datetime.now(timezone.utc) + timedelta(seconds=1)) == 1
    assert sorted(p.name for p in (tmp_path / "job-inputs").iterdir()) == ["queued"]  # still waiting


async def test_a_queued_job_keeps_its_audio_across_a_restart(settings, engine_factory):
    import base64

    clip = base64.b64encode(_clip(seconds=0.1)).decode()
    body = REQUEST | {"duration_seconds": 0.3, "audio_prompt_base64": clip}
    reference = await _started(settings, engine_factory)
    try:
        expected = await reference.generate_track(body)
        plain = await reference.generate_track(REQUEST | {"duration_seconds": 0.3})
        assert plain.audio_sha256 != expected.audio_sha256
    finally:
        await reference.close()
    crashed = await _started(settings, engine_factory)
    job_id = crashed.submit_job(body).job_id
    await crashed.close()  # before it ran
    inputs = settings.output_dir / "job-inputs" / job_id
    assert (inputs / "audio_prompt_base64").is_file()

    restarted = await _started(settings, engine_factory)
    try:
        assert await _wait_finished(restarted, job_id) == JobState.SUCCEEDED
        assert restarted.get_job(job_id).result.audio_sha256 == expected.audio_sha256  # the clip was used
        assert not inputs.exists()  # deleted once the job finished
    finally:
        await restarted.close()
