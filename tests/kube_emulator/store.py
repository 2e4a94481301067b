"""Objects in memory, keyed for O(1) access, with one resourceVersion counter and a bounded event log
that watches resume from (410 Gone when a watch asks for a version older than the log keeps)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace or "", name)


@dataclass(eq=False)
class Watcher:
    """One open watch: what it wants, and a queue the store feeds."""

    key: Key
    namespace: str | None
    accepts: Callable[[dict[str, Any]], bool]
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


@dataclass(frozen=True)
class Event:
    """One change, as it goes out on a watch."""

    revision: int
    key: Key
    type: str
    object: dict[str, Any]


class Store:
    """All objects of all types; every write gets the next resourceVersion and an event."""

    def __init__(self, log_size: int = 50_000) -> None:
        self.objects: dict[Key, dict[ObjectKey, dict[str, Any]]] = collections.defaultdict(dict)
        self.revision = 0
        self.log: collections.deque[Event] = collections.deque(maxlen=log_size)
        self.watchers: set[Watcher] = set()

    def next_revision(self) -> str:
        """Reserve the next resourceVersion."""
        self.revision += 1
        return str(self.revision)

    def get(self, key: Key, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object or None."""
        return self.objects[key].get((namespace or "", name))

    def list(self, key: Key, namespace: str | None) -> list[dict[str, Any]]:
        """Objects of one type, in one namespace or all (sorted by namespace and name, like etcd)."""
        items = self.objects[key]
        return [obj for (ns, _), obj in sorted(items.items()) if namespace is None or ns == namespace]

    def put(self, key: Key, obj: dict[str, Any], event_type: str) -> None:
        """Store ``obj`` (its resourceVersion already set) and publish the event."""
        meta = obj["metadata"]
        self.objects[key][(meta.get("namespace") or "", meta["name"])] = obj
        self._publish(Event(int(meta["resourceVersion"]), key, event_type, obj))

    def remove(self, key: Key, obj: dict[str, Any]) -> None:
        """Forget ``obj`` (its final resourceVersion already set) and publish DELETED."""
        meta = obj["metadata"]
        self.objects[key].pop((meta.get("namespace") or "", meta["name"]), None)
        self._publish(Event(int(meta["resourceVersion"]), key, "DELETED", obj))

    def _publish(self, event: Event) -> None:
        self.log.append(event)
        namespace = event.object["metadata"].get("namespace")
        for watcher in self.watchers:
            if watcher.key == event.key and watcher.namespace in (None, namespace):
                watcher.queue.put_nowait(event)

    def since(self, watcher: Watcher, revision: int) -> list[Event] | None:
        """Events after ``revision`` for a watcher, or None when the log no longer reaches back."""
        if self.log and revision < self.log[0].revision - 1 and revision < self.revision:
            return None
        namespace = watcher.namespace
        return [
            e
            for e in self.log
            if e.revision > revision
            and e.key == watcher.key
            and namespace in (None, e.object["metadata"].get("namespace"))
        ]
