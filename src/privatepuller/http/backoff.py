"""One backoff mechanism; each provider gives it a policy.

A policy classifies a response with its provider's classifier (retry because throttled, retry
because the server failed, ask for a fresh token, or give up) and computes the delay:
`Retry-After` when the server sends it, otherwise truncated exponential backoff with jitter
(which also suits a leaky-bucket rate limit: the bucket drains while we wait). A provider that
reports its remaining budget in a header names it (`remaining_header`): the session then runs
at most as many requests at once as that budget pays for up front.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace


class Verdict(enum.Enum):
    OK = "ok"
    THROTTLED = "throttled"  # retry after backing off; lower concurrency
    SERVER_ERROR = "server_error"  # retry after backing off
    RENEW_TOKEN = "renew_token"  # ask the token provider for a fresh token once, then retry
    FAIL = "fail"  # not retried: the caller maps it to a clear error


Classifier = Callable[[int, Mapping[str, str], bytes], Verdict]


@dataclass(frozen=True)
class BackoffPolicy:
    name: str
    classify: Classifier = field(repr=False)
    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 32.0
    jitter: float = 1.0
    # A response header with the budget left (None: the provider sends none), and what each
    # request in flight costs up front: with the budget known, at most budget ÷ cost at once.
    remaining_header: str | None = None
    upfront_cost: float = 50.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), self.max_delay * 4)
            except ValueError:
                pass  # an HTTP date; fall back to our own schedule
        exponential = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        return exponential + random.uniform(0, self.jitter)

    def scaled(self, factor: float) -> BackoffPolicy:
        """The same policy on a faster clock (tests and benchmarks)."""
        return replace(
            self,
            base_delay=self.base_delay * factor,
            max_delay=self.max_delay * factor,
            jitter=self.jitter * factor,
        )


class AdaptiveLimit:
    """A concurrency limit that halves when throttled and creeps back up when healthy."""

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self._active = 0
        self._changed = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._active < self.limit)
            self._active += 1

    async def release(self) -> None:
        async with self._changed:
            self._active -= 1
            self._changed.notify_all()

    async def throttled(self) -> None:
        async with self._changed:
            self.limit = max(1, self.limit // 2)

    async def observe_remaining(self, remaining: float, upfront_cost: float) -> None:
        """As many requests at once as the remaining budget pays for up front (at least one)."""
        async with self._changed:
            self.limit = min(self.maximum, max(1, int(remaining // upfront_cost)))
            self._changed.notify_all()

    async def healthy(self) -> None:
        async with self._changed:
            if self.limit < self.maximum:
                self.limit += 1
                self._changed.notify_all()
