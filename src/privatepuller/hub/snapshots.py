"""One sync of a Drive folder on the hub serves every student who asks for it.

`SingleFlight(refresh).get(ref)` answers with the folder's latest snapshot (a commit in a bare
origin on the service's disk). Concurrent requests for the same folder share one refresh
(single flight); a snapshot younger than `min_relist_seconds` is served without asking Drive
again. A refresh that fails is not remembered: its waiters all get the error, and the next
request tries again. Progress of a refresh (waits for Drive's quota, files as they land) goes to
every request waiting on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A progress event of a refresh, as sent to students' servers ({"output": "..."} lines, or
# {"listed": n, "bytes": b}).
Event = dict[str, Any]
Listener = Callable[[Event], None]


@dataclass(frozen=True)
class SnapshotRef:
    """A Drive item a link names: the item's id is the capability, its resource key a secret."""

    kind: str  # "folder" | "file"
    item_id: str
    resource_key: str | None = field(default=None, repr=False)

    @property
    def cache_key(self) -> tuple[str, str, str | None]:
        # With its resource key: a link without the key (or with another) is answered as Drive
        # answers it (an item the account reaches only through a link needs its key), not
        # with what a request that had the key was given.
        return (self.kind, self.item_id, self.resource_key)


@dataclass(frozen=True)
class ServedSnapshot:
    name: str  # the folder's (or file's) own name
    commit: str  # the origin's commit for this snapshot
    origin: Path  # the bare repository holding it
    source_id: str  # names the origin (students' servers name their local origins by it)
    # What students are told: files left out and why, and what the listing held.
    report: dict[str, Any]


class _Flight[T]:
    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self.task: asyncio.Future[T] | None = None

    def emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            listener(event)


class SingleFlight[T]:
    """Answers for Drive items, made at most once at a time per item and reused for
    `min_relist_seconds` (0: made anew for every request that does not join one running)."""

    def __init__(
        self,
        make: Callable[[SnapshotRef, Listener], Awaitable[T]],
        *,
        min_relist_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make = make
        self.min_relist_seconds = min_relist_seconds
        self._clock = clock
        self._latest: dict[tuple[str, str, str | None], tuple[T, float]] = {}
        self._flights: dict[tuple[str, str, str | None], _Flight[T]] = {}
        self.made = 0  # how many answers were made (tests, benchmarks)

    def latest(self, ref: SnapshotRef, max_age: float) -> T | None:
        """The last answer made for `ref` if younger than `max_age` seconds, else None. A
        snapshot a student was just given is fetched from this one: its bundle must not cost
        another listing, even when `min_relist_seconds` is shorter than the fetch."""
        latest = self._latest.get(ref.cache_key)
        if latest is None or self._clock() - latest[1] >= max_age:
            return None
        return latest[0]

    async def get(self, ref: SnapshotRef, listener: Listener | None = None) -> T:
        key = ref.cache_key
        if (latest := self._latest.get(key)) is not None:
            value, made_at = latest
            if self._clock() - made_at < self.min_relist_seconds:
                return value
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight()
            flight.task = asyncio.ensure_future(self._run(key, ref, flight))
            # Its waiters may all have gone (pages closed): the error is still retrieved.
            flight.task.add_done_callback(lambda task: task.cancelled() or task.exception())
        elif listener is not None:
            listener({"output": "Another student's request is already copying this folder"})
        if listener is not None:
            flight.listeners.append(listener)
        assert flight.task is not None
        try:
            # Shielded: a student who closes their page does not cancel everyone's sync.
            return await asyncio.shield(flight.task)
        finally:
            if listener is not None and listener in flight.listeners:
                flight.listeners.remove(listener)

    async def _run(
        self, key: tuple[str, str, str | None], ref: SnapshotRef, flight: _Flight[T]
    ) -> T:
        try:
            self.made += 1
            started = self._clock()
            value = await self._make(ref, flight.emit)
            self._latest[key] = (value, started)  # as old as the listing it came from
            return value
        finally:
            self._flights.pop(key, None)
