"""How Google Drive says "slow down": the backoff policy of Drive sessions.

Retry 429, 403 `userRateLimitExceeded`/`rateLimitExceeded` and 5xx with truncated exponential
backoff; never 400, 404 or other 403s. A 401 asks for a fresh token once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ...http.backoff import BackoffPolicy, Verdict
from ...http.session import SessionOptions

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


# All students share one service account and so one quota: be patient (rclone: 10 retries).
GOOGLE_POLICY = BackoffPolicy("google", classify_google, max_attempts=10, max_delay=32.0)

GOOGLE_OPTIONS = SessionOptions(GOOGLE_POLICY)
