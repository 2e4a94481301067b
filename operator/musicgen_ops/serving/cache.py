"""An LRU cache of loaded generation engines, bounded by model count and by memory.

One entry per model: the engine first opened for it and its *variants* (e.g. one per audio decoder),
engines that share its weights and differ only in a small part (``variant``). An entry's memory counts
the shared weights once plus each variant's own bytes; eviction drops a model with all its variants.
Loading runs in a worker thread; concurrent requests for the same model (or variant) wait for one load.
An evicted engine stays alive while a running batch still holds it, then is freed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from musicgen_ops.serving.schemas import CacheStats

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class CacheEntry:
    """A loaded model: its engine, the variants sharing its weights, and what they cost together."""

    key: Hashable
    engine: Any
    memory_bytes: int
    source: str | None
    #: Variant name (e.g. audio decoder) -> engine sharing ``engine``'s weights (``engine`` itself included).
    variants: dict[Hashable, Any] = field(default_factory=dict)


def engine_memory(engine: Any) -> int:
    """Bytes an engine holds (``memory_bytes`` when it reports one, else 0)."""
    try:
        return int(getattr(engine, "memory_bytes", 0) or 0)
    except (TypeError, ValueError):
        return 0


async def single_flight(
    pending: dict[Hashable, asyncio.Future[T]], key: Hashable, work: Callable[[], Awaitable[T]]
) -> T:
    """Run ``work`` once for concurrent callers with the same ``key``: a caller arriving while it runs
    awaits that run's result (or error) instead of starting another."""
    running = pending.get(key)
    if running is not None:
        return await asyncio.shield(running)
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    pending[key] = future
    try:
        result = await work()
    except BaseException as err:
        future.set_exception(err)
        future.exception()  # mark retrieved: waiters re-raise it, nobody else must
        raise
    else:
        future.set_result(result)
        return result
    finally:
        del pending[key]


class ModelCache:
    """LRU of loaded models (any hashable key, e.g. a model id), each with its variants (``get_variant``).

    Args:
        loader: ``key -> (engine, source)``, called in a worker thread on a miss; ``source`` is what
            ``entries()`` show (where the model came from).
        max_models: most models kept loaded (a model's variants share its slot).
        max_bytes: memory budget; least recently used engines are evicted beyond it (the newest
            engine always stays, even when it alone exceeds the budget).
        on_event: called with ``"hit"``, ``"miss"`` or ``"eviction"`` (for metrics).
    """

    def __init__(
        self,
        loader: Callable[[Hashable], tuple[Any, str]],
        *,
        max_models: int,
        max_bytes: int,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self._loader = loader
        self.max_models = max_models
        self.max_bytes = max_bytes
        self._on_event = on_event or (lambda kind: None)
        self._entries: OrderedDict[Hashable, CacheEntry] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Future[CacheEntry]] = {}
        self._building: dict[tuple[Hashable, Hashable], asyncio.Future[Any]] = {}
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def entries(self) -> list[CacheEntry]:
        """Loaded engines, least recently used first."""
        return list(self._entries.values())

    @property
    def total_bytes(self) -> int:
        """Memory of every loaded engine."""
        return sum(e.memory_bytes for e in self._entries.values())

    def stats(self) -> CacheStats:
        """Counts and occupancy."""
        return CacheStats(
            hits=self.hits,
            misses=self.misses,
            evictions=self.evictions,
            models=len(self._entries),
            bytes=self.total_bytes,
            max_models=self.max_models,
            max_bytes=self.max_bytes,
        )

    async def get(self, key: Hashable) -> Any:
        """The engine for ``key``, loading it on a miss (one load for concurrent callers)."""
        return (await self._entry(key)).engine

    async def get_variant(
        self,
        key: Hashable,
        variant: Hashable,
        build: Callable[[Any], tuple[Any, int]],
        *,
        primary: Hashable | None = None,
    ) -> Any:
        """The ``variant`` of model ``key``: loads the model on a miss, then builds the variant once.

        Args:
            key: the model.
            variant: e.g. an audio decoder name.
            build: ``engine -> (variant engine, bytes it adds)``, called in a worker thread with the
                model's engine (the bytes: what the variant holds that the engine does not).
            primary: the variant the model's engine itself is (registered on load).
        """
        entry = await self._entry(key, primary=primary)
        engine = entry.variants.get(variant)
        if engine is not None:
            return engine

        async def build_variant() -> Any:
            engine, extra = await asyncio.to_thread(build, entry.engine)
            entry.variants[variant] = engine
            entry.memory_bytes += int(extra)
            if self._entries.get(key) is entry:  # still cached: the budget counts the variant now
                self._evict(keep=key)
            logger.info("model %s: variant %s added (%.1f MB)", key, variant, int(extra) / 1e6)
            return engine

        return await single_flight(self._building, (key, variant), build_variant)

    async def _entry(self, key: Hashable, *, primary: Hashable | None = None) -> CacheEntry:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            self._on_event("hit")
            return entry
        if key in self._loading:  # someone else is loading it: share that load
            self.hits += 1
            self._on_event("hit")
        else:
            self.misses += 1
            self._on_event("miss")

        async def load() -> CacheEntry:
            engine, source = await asyncio.to_thread(self._loader, key)
            entry = CacheEntry(key=key, engine=engine, memory_bytes=engine_memory(engine), source=source)
            if primary is not None:
                entry.variants[primary] = engine
            self._entries[key] = entry
            self._evict(keep=key)
            logger.info("model %s loaded from %s (%.1f MB)", key, entry.source, entry.memory_bytes / 1e6)
            return entry

        return await single_flight(self._loading, key, load)

    def _evict(self, keep: Hashable) -> None:
        evicted = False
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_models or self.total_bytes > self.max_bytes
        ):
            victim = next(k for k in self._entries if k != keep)
            entry = self._entries.pop(victim)
            self.evictions += 1
            self._on_event("eviction")
            logger.info("model %s evicted (%.1f MB)", victim, entry.memory_bytes / 1e6)
            for engine in _owners(entry):
                close = getattr(engine, "close", None)
                if callable(close):
                    close()
            del entry
            evicted = True
        if evicted:
            gc.collect()

    def clear(self) -> None:
        """Drop every engine (memory is returned when the last batch using one finishes)."""
        self._entries.clear()


def _owners(entry: CacheEntry) -> list[Any]:
    """The engines of an entry that own what they hold: its engine, and variants opened separately (a view
    sharing the engine's model is closed with it, not twice)."""
    model = getattr(entry.engine, "model", None)
    separate = [
        v
        for v in entry.variants.values()
        if v is not entry.engine and (model is None or getattr(v, "model", None) is not model)
    ]
    return [entry.engine, *separate]
