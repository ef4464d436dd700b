"""Each click's resolution, shared by its progress page and its stream.

A click is two requests: the page (`git-pull`), which resolves the link to name the default
folder, and, a moment later, the stream the page opens (`git-pull/api`), which syncs. The page
starts the resolution here, under the click (user and link); the stream takes it (waiting for
it if it is still running) instead of asking the provider, and reading credentials, a second
time. The resolution carries the credentials it was made with, so the sync reads none again.

Entries are short-lived and few: each is taken by one stream at most, is dropped after
`ttl` seconds, and the oldest go when there are more than `max_entries`. The next click's page
always resolves afresh.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

from ..pull import Resolved

TTL_SECONDS = 300.0
MAX_ENTRIES = 64

Click = tuple[str, Hashable]  # (user name, link): whose click on which link


class Resolutions:
    def __init__(
        self,
        ttl: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Click, tuple[float, asyncio.Task[Resolved]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def start(
        self, click: Click, resolve: Callable[[], Awaitable[Resolved]]
    ) -> asyncio.Task[Resolved]:
        """Resolve afresh for a page, replacing an earlier entry of the same click."""
        task = asyncio.ensure_future(resolve())
        task.add_done_callback(_retrieve)  # a failure nobody takes is no "never retrieved"
        self._entries.pop(click, None)
        self._entries[click] = (self._clock(), task)
        self._expire()
        return task

    def take(self, click: Click) -> asyncio.Task[Resolved] | None:
        """The page's resolution for a stream (once), or None: then the stream resolves."""
        self._expire()
        entry = self._entries.pop(click, None)
        return None if entry is None else entry[1]

    def _expire(self) -> None:
        oldest = self._clock() - self.ttl
        while self._entries:
            click, (started, _) = next(iter(self._entries.items()))
            if started >= oldest and len(self._entries) <= self.max_entries:
                break
            del self._entries[click]


def _retrieve(task: asyncio.Task[Resolved]) -> None:
    if not task.cancelled():
        task.exception()
