"""The operator: every @kopf handler, thin and typed, delegating to one module per resource.

Run it with ``musicgen-ops operator`` (or ``kopf run -m musicgen_ops.controllers.main``).
Handlers react to spec changes only (create, resume, update of ``spec``); status writes never
re-trigger them. Daemons follow running Jobs. kopf keeps its own bookkeeping in annotations
(prefix musicgen.io), so the strict status schemas never prune it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from musicgen_ops.api.common import GROUP, VERSION
from musicgen_ops.controllers import generationrequest, metrics, trainedmodel, trainingjob
from musicgen_ops.controllers.config import load_config
from musicgen_ops.controllers.context import Context
from musicgen_ops.controllers.kube import (
    GENERATION_REQUESTS,
    TRAINING_JOBS,
    Kube,
    connection_from_environment,
)
from musicgen_ops.controllers.lifetime import expire_after_ttl, expires

FINALIZER = f"{GROUP}/finalizer"


def instrumented(resource: str) -> Callable:
    """Count invocations and failures of a handler in Prometheus."""

    def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fn)
        async def handler(**kwargs: Any) -> Any:
            metrics.RECONCILES.labels(resource, fn.__name__).inc()
            try:
                return await fn(**kwargs)
            except kopf.TemporaryError:
                raise
            except Exception as err:
                metrics.ERRORS.labels(resource, fn.__name__, type(err).__name__).inc()
                raise

        return handler

    return wrap


@kopf.on.startup()
async def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_: Any
) -> None:
    """Load MUSICGEN_OPERATOR_* settings, set kopf's persistence and watch timeouts, start /metrics."""
    config = load_config()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Watches can stall silently (no error, no events): make the server end them and reconnect.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.INFO
    memo.context = Context(config=config, kube=Kube(connection_from_environment()))
    metrics.start_metrics_server(config.metrics_port)
    logger.info(
        "musicgen operator: namespaces=%s artifacts=%s", config.namespaces or "all", config.artifacts_uri
    )


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Close the API client."""
    context = getattr(memo, "context", None)
    if context is not None:
        await context.kube.close()


# --- TrainingJob ----------------------------------------------------------------------------


@kopf.on.create(GROUP, VERSION, "trainingjobs")
@kopf.on.resume(GROUP, VERSION, "trainingjobs")
@kopf.on.update(GROUP, VERSION, "trainingjobs", field="spec")
@instrumented("trainingjobs")
async def reconcile_trainingjob(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Validate the spec and create (or find) the training Job."""
    await trainingjob.reconcile(body, memo.context)


def _training_active(status: Mapping[str, Any], **_: Any) -> bool:
    return trainingjob.is_active(status)


@kopf.daemon(GROUP, VERSION, "trainingjobs", when=_training_active, cancellation_timeout=5)
async def follow_trainingjob(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Copy progress.json and the Job's outcome into the status while the run is active."""
    await trainingjob.follow(body, memo.context, stopped)


@kopf.daemon(GROUP, VERSION, "trainingjobs", when=expires, cancellation_timeout=5)
async def expire_trainingjob(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Delete a finished TrainingJob after spec.ttlSecondsAfterFinished."""
    await expire_after_ttl(body, memo.context, stopped, TRAINING_JOBS)


@kopf.on.delete(GROUP, VERSION, "trainingjobs")
@instrumented("trainingjobs")
async def delete_trainingjob(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Delete the training Job; the TrainedModel and artifacts stay."""
    await trainingjob.delete(body, memo.context)


# --- TrainedModel ---------------------------------------------------------------------------


@kopf.on.create(GROUP, VERSION, "trainedmodels")
@kopf.on.resume(GROUP, VERSION, "trainedmodels")
@kopf.on.update(GROUP, VERSION, "trainedmodels", field="spec")
@instrumented("trainedmodels")
async def reconcile_trainedmodel(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Check the artifacts and create or remove the generator Deployment and Service."""
    await trainedmodel.reconcile(body, memo.context)


def _model_invalid(status: Mapping[str, Any], spec: Mapping[str, Any], **_: Any) -> bool:
    missing = (status or {}).get("missing") or []
    return (status or {}).get("phase") == "Invalid" and bool(missing)


@kopf.daemon(GROUP, VERSION, "trainedmodels", when=_model_invalid, cancellation_timeout=5)
async def recheck_trainedmodel(
    body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """Look again for the artifacts of an Invalid model until they are complete."""
    await trainedmodel.recheck(body, memo.context, stopped)


def _model_serving(spec: Mapping[str, Any], status: Mapping[str, Any], **_: Any) -> bool:
    return trainedmodel.is_serving(spec, status)


@kopf.daemon(GROUP, VERSION, "trainedmodels", when=_model_serving, cancellation_timeout=5)
async def watch_trainedmodel_server(
    body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """Report the generator's readyReplicas; notice a lost Deployment within one poll."""
    await trainedmodel.watch_serving(body, memo.context, stopped)


@kopf.on.delete(GROUP, VERSION, "trainedmodels")
@instrumented("trainedmodels")
async def delete_trainedmodel(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Remove the server; delete artifacts only with deletionPolicy: Delete."""
    await trainedmodel.delete(body, memo.context)


# --- GenerationRequest ----------------------------------------------------------------------


@kopf.on.create(GROUP, VERSION, "generationrequests")
@kopf.on.resume(GROUP, VERSION, "generationrequests")
@instrumented("generationrequests")
async def reconcile_generationrequest(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Resolve the model (waiting while not Ready) and create the generator Job."""
    await generationrequest.reconcile(body, memo.context)


def _generation_running(status: Mapping[str, Any], **_: Any) -> bool:
    return generationrequest.is_running(status)


@kopf.daemon(GROUP, VERSION, "generationrequests", when=_generation_running, cancellation_timeout=5)
async def follow_generationrequest(
    body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """Read the Job's outcome and result JSON into the status."""
    await generationrequest.follow(body, memo.context, stopped)


@kopf.daemon(GROUP, VERSION, "generationrequests", when=expires, cancellation_timeout=5)
async def expire_generationrequest(
    body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """Delete a finished GenerationRequest after spec.ttlSecondsAfterFinished."""
    await expire_after_ttl(body, memo.context, stopped, GENERATION_REQUESTS)


@kopf.on.delete(GROUP, VERSION, "generationrequests")
@instrumented("generationrequests")
async def delete_generationrequest(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Delete the generator Job; the audio stays in storage."""
    await generationrequest.delete(body, memo.context)
