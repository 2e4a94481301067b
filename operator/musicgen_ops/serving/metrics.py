"""Prometheus metrics of the generation service, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

PREFIX = "musicgen_serve"


class ServingMetrics:
    """Requests, latency, batch sizes, queue depth, model cache and audio produced."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests", "Generation requests by outcome.", ["outcome"], registry=r
        )
        self.latency = Histogram(
            f"{PREFIX}_request_latency_seconds",
            "Seconds from admission to files written.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Requests per batched forward pass.",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
            registry=r,
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth", "Requests admitted (waiting or running).", registry=r
        )
        self.cache_events = Counter(
            f"{PREFIX}_model_cache_events", "Model cache hits, misses and evictions.", ["event"], registry=r
        )
        self.models_loaded = Gauge(f"{PREFIX}_models_loaded", "Engines in the model cache.", registry=r)
        self.audio_seconds = Counter(f"{PREFIX}_audio_seconds", "Seconds of audio generated.", registry=r)

    def cache_event(self, kind: str) -> None:
        """Count a model cache ``hit``, ``miss`` or ``eviction``."""
        self.cache_events.labels(event=kind).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
