"""One backoff mechanism, with a policy per provider.

A policy classifies a response (retry because throttled, retry because the server failed, ask
for a fresh token, or give up) and computes the delay: `Retry-After` when the server sends it,
otherwise truncated exponential backoff with jitter (Google's documented algorithm, which also
suits Canvas's leaky bucket: the bucket drains while we wait).
"""

from __future__ import annotations

import asyncio
import enum
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


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
    # Canvas charges each request in flight this much up front (its leaky bucket's pre-flight
    # cost): with X-Rate-Limit-Remaining known, at most remaining ÷ this run at once.
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
        from dataclasses import replace

        return replace(
            self,
            base_delay=self.base_delay * factor,
            max_delay=self.max_delay * factor,
            jitter=self.jitter * factor,
        )


def classify_canvas(status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
    if status < 400:
        return Verdict.OK
    if status == 429 or (status == 403 and b"Rate Limit Exceeded" in body):
        return Verdict.THROTTLED
    if status == 401 and "WWW-Authenticate" in headers:
        # Expired or invalid token; a 401 without the header is a permission error.
        return Verdict.RENEW_TOKEN
    if status >= 500:
        return Verdict.SERVER_ERROR
    return Verdict.FAIL


GOOGLE_RETRY_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})


def google_error_reason(body: bytes) -> str | None:
    """`error.errors[0].reason` of a Drive error body, or None (HTML 502 pages, empty bodies)."""
    try:
        error = json.loads(body)["error"]
        errors = error.get("errors") or []
        return str(errors[0]["reason"]) if errors else None
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def classify_google(status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
    if status < 400:
        return Verdict.OK
    if status == 429:
        return Verdict.THROTTLED
    if status == 403 and google_error_reason(body) in GOOGLE_RETRY_REASONS:
        return Verdict.THROTTLED
    if status == 401:
        return Verdict.RENEW_TOKEN
    if status >= 500:
        return Verdict.SERVER_ERROR
    return Verdict.FAIL  # 400, 404 and every other 403 are final


CANVAS_POLICY = BackoffPolicy("canvas", classify_canvas, max_attempts=8, max_delay=32.0)
# All students share one service account and so one quota: be patient (rclone: 10 retries).
GOOGLE_POLICY = BackoffPolicy("google", classify_google, max_attempts=10, max_delay=32.0)


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
