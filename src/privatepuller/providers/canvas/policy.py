"""How Canvas says "slow down" and "log in again": the backoff policy of Canvas sessions.

Canvas throttles with a leaky bucket per token: `403 Forbidden (Rate Limit Exceeded)` (or 429)
when it overflows, and `X-Rate-Limit-Remaining` on every answer, which charges each request in
flight 50 up front. An expired or revoked token is a 401 with `WWW-Authenticate`; a 401 without
it is a permission error.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...http.backoff import BackoffPolicy, Verdict
from ...http.session import SessionOptions


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


CANVAS_POLICY = BackoffPolicy(
    "canvas",
    classify_canvas,
    max_attempts=8,
    max_delay=32.0,
    remaining_header="X-Rate-Limit-Remaining",
    upfront_cost=50.0,
)

CANVAS_OPTIONS = SessionOptions(CANVAS_POLICY)
