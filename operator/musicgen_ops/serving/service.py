"""GenerationService: model cache, request batching, a device concurrency limit and a bounded queue.

No HTTP here. The flow of one request (``generate_track``):

1. validate the parameters (every bad field listed) and *admit* it: beyond ``max_queue`` requests
   waiting or running the answer is ``ServiceBusyError`` (HTTP 429), never an unbounded queue;
2. get the model's engine from the LRU cache (loaded in a worker thread on a miss); a request for
   another audio decoder gets a view of that engine sharing its weights (``engines``), built once;
   requests with different decoders never share a batch;
3. decode its audio inputs (melody, audio prompt: ``audio_inputs``);
4. join the open batch for its ``batch_key`` (same model, length and sampling settings) or open one
   (``batching.Batcher``: collects for ``batch_window_ms``, runs in a worker thread);
5. the request's own files are written (atomically) and its ``GenerationResult`` returned.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.contracts.generation import GenerationParameters
from musicgen_ops.pipeline.errors import InvalidParametersError
from musicgen_ops.pipeline.generation.batch import decoder_name, prepare, run_batch, validate_parameters
from musicgen_ops.pipeline.generation.writer import write_result
from musicgen_ops.pipeline.models import set_base_model_resolver
from musicgen_ops.serving.audio_inputs import request_audio
from musicgen_ops.serving.batching import Batcher
from musicgen_ops.serving.cache import ModelCache
from musicgen_ops.serving.engines import (
    DecoderOptions,
    EngineFactory,
    EngineKey,
    decoder_unavailable,
    engine_variant,
    open_served_engine,
)
from musicgen_ops.serving.errors import JobNotFoundError, ServiceBusyError, ServiceDrainingError
from musicgen_ops.serving.jobstore import JobStore
from musicgen_ops.serving.metrics import ServingMetrics
from musicgen_ops.serving.prompts import check_request_prompt
from musicgen_ops.serving.resolver import model_list, resolve_model, resolve_model_origin
from musicgen_ops.serving.schemas import GenerateRequest, GenerationResult, JobStatus, ModelList
from musicgen_ops.storage.base_models import resolve_base_model

logger = logging.getLogger(__name__)


class GenerationService:
    """Generates tracks for many concurrent callers with a handful of cached models.

    Args:
        settings: limits, paths and engine choice.
        metrics: Prometheus metrics (a private registry when omitted).
        engine_factory: ``model reference -> engine``; default ``open_engine`` with the settings'
            engine, device, dtype and decoder (tests pass a factory returning a shared engine).
    """

    def __init__(
        self,
        settings: ServeEnvironment,
        *,
        metrics: ServingMetrics | None = None,
        engine_factory: EngineFactory | None = None,
    ) -> None:
        self.settings = settings
        # Base models named by a mirrored URI (or a hub id with MUSICGEN_BASE_MODEL_MIRROR) load from the
        # node cache: installed once for the process, not on every model lookup.
        set_base_model_resolver(resolve_base_model)
        self.metrics = metrics or ServingMetrics()
        self._engine_factory = engine_factory or self._open_engine
        self.cache = ModelCache(
            self._load,
            max_models=settings.max_cached_models,
            max_bytes=settings.max_cache_bytes,
            on_event=self.metrics.cache_event,
        )
        self.decoders = DecoderOptions(settings)
        self.batcher = Batcher(settings, self.metrics, self._spawn)
        self._admitted = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.jobs = JobStore(settings.output_dir)
        self._tasks: set[asyncio.Task] = set()
        self.ready = False
        self.draining = False
        self.startup_error: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load (and warm up) the preloaded models; ``ready`` is True when done."""
        try:
            for model_id in self.settings.preload:
                engine = await self.engine(EngineKey(model_id, self.settings.decoder))
                if self.settings.warmup:
                    await self._warmup(model_id, engine)
            self.forget_expired_jobs()
            self._resume_jobs()
            self.ready = True
        except Exception as err:
            self.startup_error = f"{type(err).__name__}: {err}"
            logger.exception("preloading %s failed", self.settings.preload)
            raise

    async def _warmup(self, model_id: str, engine: Any) -> None:
        """Capture the engine's CUDA graphs (fast engine), then one short generation, so the first request
        pays for no lazy initialisation."""
        started = time.perf_counter()
        if callable(capture := getattr(engine, "warmup", None)):
            report = await asyncio.to_thread(capture)
            logger.info("model %s: engine warm-up %s", model_id, report)
        params = GenerateRequest(prompt="warm up", duration_seconds=0.2, random_seed=0)
        request = prepare(params, engine.sample_rate)
        await asyncio.to_thread(
            run_batch,
            engine,
            [request],
            window_seconds=self.settings.window_seconds,
            stride_seconds=self.settings.stride_seconds,
        )
        logger.info("model %s warmed up in %.2f s", model_id, time.perf_counter() - started)

    async def drain(self, grace_seconds: float | None = None) -> bool:
        """Stop accepting work and wait (at most the grace period) for admitted work to finish.

        Returns True when everything finished; jobs still unfinished stay in the job store and are
        re-run by the next server that starts on the same output folder.
        """
        grace = self.settings.drain_seconds if grace_seconds is None else grace_seconds
        self.draining = True
        logger.info("draining: %d requests queued or running, grace %.1f s", self._admitted, grace)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=grace)
        except asyncio.TimeoutError:
            logger.warning("drain grace period over with %d requests unfinished", self._admitted)
            return False
        return True

    async def close(self) -> None:
        """Cancel running jobs (they stay queued in the job store) and drop the models."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.cache.clear()
        self.jobs.close()

    # -- models ----------------------------------------------------------------------------------
    def _open_engine(self, reference: str, decoder: str | None = None) -> Any:
        return open_served_engine(self.settings, reference, decoder)

    def _load(self, model: str) -> tuple[Any, str | None]:
        """The model's engine (decoding with the server's decoder) and the public origin it came from."""
        from musicgen_ops.pipeline.inference.decoders.mbd_checkpoint import MbdWeightsError

        reference, origin = resolve_model_origin(model, self.settings)
        try:
            return self._engine_factory(reference), origin
        except MbdWeightsError as err:
            raise decoder_unavailable(self.settings, self.settings.decoder, err) from err

    async def engine(self, key: EngineKey) -> Any:
        """The engine for a model and decoder: the model's cached engine, or a view of it decoding with
        another decoder (same weights, built once per model and decoder)."""
        if key.decoder == self.settings.decoder:
            return await self.cache.get_variant(key.model, key.decoder, _same, primary=key.decoder)
        options = await self.decoders.options(key.decoder)  # missing weights: refused before any load
        return await self.cache.get_variant(
            key.model,
            key.decoder,
            lambda engine: self._variant(engine, key, options),
            primary=self.settings.decoder,
        )

    def _variant(self, engine: Any, key: EngineKey, options: dict[str, Any] | None) -> tuple[Any, int]:
        """``engine`` decoding with ``key.decoder`` (a view sharing its weights) and the bytes it adds."""
        from musicgen_ops.pipeline.inference.decoders.mbd_checkpoint import MbdWeightsError

        def open_separately() -> Any:  # exports and test doubles cannot share their weights
            reference = resolve_model(key.model, self.settings)
            return self._engine_factory(reference, decoder=key.decoder)

        try:
            return engine_variant(engine, key.decoder, options, open_separately)
        except MbdWeightsError as err:
            raise decoder_unavailable(self.settings, key.decoder, err) from err

    @staticmethod
    def model_key(params: GenerateRequest, settings: ServeEnvironment) -> str:
        """The model a request uses."""
        return params.trained_model_id or settings.default_model

    @classmethod
    def engine_key(cls, params: GenerateRequest, settings: ServeEnvironment) -> EngineKey:
        """Cache key of the engine a request uses: its model and its decoder (the server's by default)."""
        return EngineKey(cls.model_key(params, settings), params.decoder or settings.decoder)

    def list_models(self) -> ModelList:
        """Loaded models (most recently used last) and the ones available to load."""
        return model_list(self.cache, self.settings)

    # -- generation ------------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        """Requests admitted and not finished."""
        return self._admitted

    def _admit(self, *, force: bool = False) -> None:
        if self.draining and not force:
            self.metrics.requests.labels(outcome="busy").inc()
            raise ServiceDrainingError("server is shutting down: retry (another replica will answer)")
        if self._admitted >= self.settings.max_queue and not force:
            self.metrics.requests.labels(outcome="busy").inc()
            raise ServiceBusyError(
                f"server busy: {self._admitted} requests queued or running "
                f"(limit {self.settings.max_queue}); retry later"
            )
        self._admitted += 1
        self._idle.clear()
        self.metrics.queue_depth.set(self._admitted)

    def _release(self) -> None:
        self._admitted -= 1
        if self._admitted == 0:
            self._idle.set()
        self.metrics.queue_depth.set(self._admitted)

    async def generate_track(
        self,
        parameters: GenerateRequest | dict[str, Any],
        output_dir: str | Path | None = None,
        *,
        name: str | None = None,
    ) -> GenerationResult:
        """Generate one track and write ``<output_dir>/<name>.<format>`` plus its JSON sidecar.

        Raises:
            InvalidParametersError: bad parameters (every bad field listed).
            ServiceBusyError: the queue is full.
            ModelNotFoundError: unknown ``trained_model_id``.
            InferenceError: generation failed.
        """
        params = self._validate(parameters)
        self._admit()
        try:
            return await self._generate(params, Path(output_dir or self.settings.output_dir), name)
        finally:
            self._release()

    def _validate(self, parameters: GenerateRequest | dict[str, Any]) -> GenerateRequest:
        try:
            params = validate_parameters(
                parameters, model=GenerateRequest, max_duration_seconds=self.settings.max_duration_seconds
            )
            check_request_prompt(params, self.settings)  # refused before any work: never an arbitrary file
            return params
        except InvalidParametersError:
            self.metrics.requests.labels(outcome="invalid").inc()
            raise

    async def _generate(
        self, params: GenerateRequest, output_dir: Path, name: str | None
    ) -> GenerationResult:
        started = time.perf_counter()
        try:
            key = self.engine_key(params, self.settings)
            engine = await self.engine(key)
            self.metrics.models_loaded.set(len(self.cache.entries()))
            melody, prompt = await asyncio.to_thread(request_audio, params, self.settings, engine, key.model)
            request = prepare(params, engine.sample_rate, melody=melody, prompt_audio=prompt)
            outcome = await self.batcher.submit(str(key), engine, request)
            path = output_dir / f"{name or request.request_id}.{params.output_format}"
            result = await asyncio.to_thread(
                write_result,
                path,
                outcome.audio,
                sample_rate=engine.sample_rate,
                result_id=name or request.request_id,
                model_id=key.model,
                conditioning_text=request.conditioning_text,
                parameters=GenerationParameters.pick(params),
                seed=request.seed,
                output_format=params.output_format,
                windows=outcome.windows,
                batch_size=outcome.batch_size,
                started=started,
                clock=time.perf_counter,
                spectrogram=self.settings.spectrogram if params.spectrogram is None else params.spectrogram,
                decoder=decoder_name(engine),
            )
        except Exception:
            self.metrics.requests.labels(outcome="error").inc()
            raise
        self.metrics.requests.labels(outcome="ok").inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        self.metrics.audio_seconds.inc(result.duration_seconds)
        return result

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- asynchronous jobs -----------------------------------------------------------------------
    def submit_job(self, parameters: GenerateRequest | dict[str, Any]) -> JobStatus:
        """Admit a request, record it in the job store and generate it in the background.

        Poll ``get_job`` for the result; the job survives a restart (it is re-run if unfinished).
        """
        params = self._validate(parameters)
        self._admit()
        try:
            job = self.jobs.add(secrets.token_hex(8), params)
        except Exception:
            self._release()
            raise
        self.forget_expired_jobs()
        self._spawn(self._run_job(job.job_id, params))
        return job

    def _resume_jobs(self) -> None:
        """Re-run the jobs a previous server accepted and did not finish (crash or drain timeout)."""
        unfinished = self.jobs.unfinished()
        if unfinished:
            logger.warning("re-running %d unfinished jobs from %s", len(unfinished), self.jobs.path)
        for job_id, params in unfinished:
            self._admit(force=True)
            self._spawn(self._run_job(job_id, params))

    async def _run_job(self, job_id: str, params: GenerateRequest) -> None:
        try:
            self.jobs.mark_running(job_id)
            result = await self._generate(params, self._job_dir(job_id), job_id)
        except asyncio.CancelledError:
            raise  # server stopping: the job stays unfinished and is re-run after the restart
        except Exception as err:
            self.jobs.finish(job_id, error=f"{type(err).__name__}: {err}")
        else:
            self.jobs.finish(job_id, result=result)
        finally:
            self._release()

    def _job_dir(self, job_id: str) -> Path:
        return self.settings.output_dir / "jobs" / job_id

    def get_job(self, job_id: str) -> JobStatus:
        """A snapshot of a job's status (``JobNotFoundError`` when unknown or forgotten)."""
        job = self.jobs.get(job_id)
        if job is None:
            kept = f"the last {self.settings.max_jobs} finished jobs are kept"
            raise JobNotFoundError(
                f"job {job_id[:64]!r} not found (unknown, or deleted by retention: {kept} "
                f"for {self.settings.job_retention_seconds:g} s)"
            )
        return job

    def forget_expired_jobs(self) -> int:
        """Delete finished jobs (and their folders) beyond ``max_jobs`` or older than the retention, and
        stored audio no unfinished job refers to."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=self.settings.job_retention_seconds)
        expired = self.jobs.expired(keep=self.settings.max_jobs, finished_before=cutoff)
        for job_id in expired:
            shutil.rmtree(self._job_dir(job_id), ignore_errors=True)
        self.jobs.delete(expired)
        self.jobs.prune_inputs(older_than=cutoff)
        return len(expired)


def _same(engine: Any) -> tuple[Any, int]:
    return engine, 0
