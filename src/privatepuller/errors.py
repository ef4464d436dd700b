"""Errors a student, instructor or admin can act on.

Every failure that reaches a person is a `PullError`: `code` is machine-readable (it becomes
nbgitpuller's `error.code`), `str(error)` is a sentence for a student. Messages never contain
credentials; URLs in them never carry a query string.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Set by JupyterHub in every single-user server and service it starts.
HUB_VARIABLES = ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL")


def under_hub(environ: Mapping[str, str] | None = None) -> bool:
    """Does privatepuller run under JupyterHub (a student's server, the hub's service), rather
    than on its own (the command line, a plain Jupyter server)?"""
    environ = os.environ if environ is None else environ
    return any(environ.get(name, "").strip() for name in HUB_VARIABLES)


def hub_or_alone(*, hub: str, alone: str) -> str:
    """The words of a message whose advice depends on where privatepuller runs: under a hub,
    the admin sets credentials up and logging in again renews them; on its own, the person
    running it sets the environment variables."""
    return hub if under_hub() else alone


class PullError(Exception):
    """A sync failed for a reason we can explain."""

    code = "unknown"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotConfigured(PullError):
    """No credentials for the provider this link needs."""

    code = "not_configured"


class UnsupportedURL(PullError):
    """A link that is neither Canvas nor Google Drive, or a form we cannot pull."""

    code = "unsupported_url"


class WrongHost(PullError):
    """A Canvas link on a host other than the configured Canvas: the token is not sent."""

    code = "wrong_host"


class LoginExpired(PullError):
    """The token is expired, revoked or invalid (Canvas 401 with WWW-Authenticate, Google 401)."""

    code = "login_expired"


class NoAccess(PullError):
    """The credential is valid but may not read this folder or file."""

    code = "no_access"


class NotFound(PullError):
    code = "not_found"


class RateLimited(PullError):
    """Throttled for longer than the retry budget."""

    code = "rate_limited"


class ListingFailed(PullError):
    """Reading a folder's list (or what a link names) failed in a way retries did not fix: the
    provider answered something unexpected, a partial or looping list, an error status."""

    code = "listing_failed"


class DownloadFailed(PullError):
    """Downloading a file failed in a way retries did not fix."""

    code = "download_failed"


class SyncBusy(PullError):
    """Another sync of the same folder is running."""

    code = "busy"


class MergeFailed(PullError):
    """nbgitpuller could not merge; the student can back up and resync."""

    code = "merge"


class UnsafeRequest(PullError):
    """A request the read-only session refuses to send (not GET/HEAD, not https, wrong origin)."""

    code = "unsafe_request"


class ConfigurationError(PullError):
    """Something the hub admin has to fix (unreadable key file, bad settings)."""

    code = "configuration"


class DiskFull(PullError):
    code = "disk_full"


class TooBig(PullError):
    """A listing with more pages or entries than the configured bounds."""

    code = "too_big"


class TimedOut(PullError):
    """A sync that did not finish listing and downloading within its deadline."""

    code = "timed_out"
