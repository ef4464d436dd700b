"""Canvas's request throttle: a leaky bucket per access token.

A copy of canvas-lms `app/middleware/request_throttle.rb` and
`request_throttle/increment_bucket.lua`: every request first adds a pre-flight
("up front") cost, is refused while the bucket is at or above the high-water mark, and
on completion swaps the pre-flight cost for its real cost. The bucket leaks at a
constant rate and never holds more than `maximum`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottlePolicy:
    """Bucket settings; defaults are Instructure's hosted values.

    canvas-lms defaults to hwm 600 / maximum 800, Instructure documents 700 for its
    cloud ("API Rate Limiting", community.canvaslms.com); outflow 10/s and an up-front
    cost of 50 are the same in both.
    """

    high_water_mark: float = 700.0
    leak_rate: float = 10.0
    preflight_cost: float = 50.0
    # Canvas charges CPU + DB seconds; a fixed cost per request keeps the fake
    # deterministic. `cost_per_second` adds the handler's own processing time
    # (injected latency is waiting, not work, and never counts).
    cost_per_request: float = 1.0
    cost_per_second: float = 0.0
    maximum: float = 800.0
    enabled: bool = True
    # Canvas sends no Retry-After; turn this on to test clients that honour it.
    send_retry_after: bool = False


@dataclass
class _Bucket:
    count: float
    touched: float


class LeakyBuckets:
    def __init__(self, policy: ThrottlePolicy) -> None:
        self.policy = policy
        self._buckets: dict[str, _Bucket] = {}

    def increment(self, key: str, amount: float) -> float:
        """Leak, add `amount`, clamp to [0, maximum]; return the new level."""
        now = time.monotonic()
        bucket = self._buckets.setdefault(key, _Bucket(0.0, now))
        if bucket.count > 0:
            bucket.count -= self.policy.leak_rate * (now - bucket.touched)
        bucket.count = min(max(bucket.count + amount, 0.0), self.policy.maximum)
        bucket.touched = now
        return bucket.count

    def level(self, key: str) -> float:
        return self.increment(key, 0.0)

    def is_full(self, level: float) -> bool:
        return self.policy.enabled and level >= self.policy.high_water_mark

    def remaining(self, level: float) -> float:
        return self.policy.high_water_mark - level

    def retry_after(self, level: float) -> int:
        """Whole seconds until a new request (with its pre-flight cost) would pass."""
        excess = level + self.policy.preflight_cost - self.policy.high_water_mark
        return max(1, math.ceil(excess / self.policy.leak_rate)) if self.policy.leak_rate else 60
