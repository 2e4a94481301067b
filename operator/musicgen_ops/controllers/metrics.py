"""Prometheus metrics of the operator itself, served on MUSICGEN_OPERATOR_METRICS_PORT."""

from __future__ import annotations

import logging
import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

logger = logging.getLogger(__name__)

RECONCILES = Counter("musicgen_operator_reconciles_total", "Handler invocations.", ["resource", "handler"])
ERRORS = Counter(
    "musicgen_operator_reconcile_errors_total", "Handler failures by kind.", ["resource", "handler", "error"]
)
PHASES = Gauge("musicgen_operator_resources", "Custom resources by phase.", ["resource", "phase"])
TRAINING_SECONDS = Histogram(
    "musicgen_operator_training_duration_seconds",
    "Wall time of finished training Jobs.",
    ["outcome"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, float("inf")),
)
GENERATION_SECONDS = Histogram(
    "musicgen_operator_generation_duration_seconds", "Wall time of finished generation Jobs.", ["outcome"]
)

_phases: dict[tuple[str, str, str], str] = {}
_lock = threading.Lock()
_server_started = False


def record_phase(resource: str, namespace: str, name: str, phase: str | None) -> None:
    """Remember a resource's phase (None: deleted) and refresh the by-phase gauge."""
    with _lock:
        key = (resource, namespace, name)
        if phase is None:
            _phases.pop(key, None)
        else:
            _phases[key] = phase
        counts: dict[str, int] = {}
        for (res, _, _), value in _phases.items():
            if res == resource:
                counts[value] = counts.get(value, 0) + 1
        for labels in list(PHASES._metrics):  # reset phases that dropped to zero
            if labels[0] == resource and labels[1] not in counts:
                PHASES.labels(*labels).set(0)
        for value, count in counts.items():
            PHASES.labels(resource, value).set(count)


def start_metrics_server(port: int, registry: CollectorRegistry = REGISTRY) -> bool:
    """Serve /metrics on ``port`` (once per process; 0 disables). Returns whether it started."""
    global _server_started
    if port <= 0 or _server_started:
        return False
    start_http_server(port, registry=registry)
    _server_started = True
    logger.info("metrics served on :%d/metrics", port)
    return True
