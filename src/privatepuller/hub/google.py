"""Google Drive tokens minted on the hub from its service-account key.

The key file stays on the hub; user servers only ever see short-lived `drive.readonly` access
tokens. Every user gets the same service account, so one token serves the whole hub: it is
minted once and shared until it nears expiry, not once per user.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..credentials.sources import load_service_account
from ..errors import ConfigurationError

# What a student sees on the page when the hub cannot mint Drive tokens; the admin gets the
# reason in the hub log (it can name files and Google's error, which the student cannot act on).
STUDENT_MESSAGE = (
    "Google Drive links do not work on this hub right now: the hub's Google service account "
    "is not set up correctly. Please tell your hub administrator (the hub log says why)."
)


@dataclass(frozen=True)
class MintedToken:
    access_token: str = field(repr=False)
    expires_at: float  # epoch seconds
    obtained_at: float
    service_account_email: str

    def as_auth_state(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "expires_at": self.expires_at,
            "obtained_at": self.obtained_at,
            "service_account_email": self.service_account_email,
        }


class ServiceAccountMinter:
    """Mints (and caches) `drive.readonly` tokens for the hub's service account."""

    def __init__(self, key_path: str | Path, *, log: logging.Logger | None = None) -> None:
        self.key_path = Path(key_path)
        self._log = log
        self._credentials: Any = None
        self._key_mtime: float | None = None
        self._current: MintedToken | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ServiceAccountMinter({self.key_path})"

    def check(self) -> str | None:
        """Read and parse the key without contacting Google: the problem, or None."""
        try:
            self._load()
        except ConfigurationError as error:
            return error.message
        return None

    async def token(self, margin: float, *, force: bool = False) -> MintedToken:
        """A token valid for at least `margin` more seconds; ConfigurationError (an admin
        message without key material) when none can be minted."""
        async with self._lock:
            current = self._current
            if not force and current is not None and current.expires_at - time.time() > margin:
                return current
            self._current = await asyncio.to_thread(self._mint)
            return self._current

    def _load(self) -> Any:
        # Reload when the file changes, so an admin can rotate the key without a hub restart.
        try:
            mtime = self.key_path.stat().st_mtime
        except OSError:
            mtime = None
        if self._credentials is None or mtime != self._key_mtime:
            self._credentials = load_service_account(self.key_path)
            self._key_mtime = mtime
        return self._credentials

    def _mint(self) -> MintedToken:
        import google.auth.exceptions
        import google.auth.transport.requests

        credentials = self._load()
        try:
            credentials.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.RefreshError as error:
            raise ConfigurationError(
                f"Google refused to issue a token for the service account in {self.key_path} "
                f"({_first_line(error)}); the key may have been deleted or disabled."
            ) from None
        except google.auth.exceptions.TransportError:
            raise ConfigurationError(
                "Google's token service could not be reached from the hub; Drive tokens will "
                "be retried at the next refresh."
            ) from None
        expiry = credentials.expiry  # naive UTC (google-auth's convention)
        if expiry is None:
            expires_at = time.time() + 3600
        else:
            expires_at = expiry.replace(tzinfo=datetime.UTC).timestamp()
        return MintedToken(
            access_token=str(credentials.token),
            expires_at=expires_at,
            obtained_at=time.time(),
            service_account_email=str(credentials.service_account_email),
        )


def _first_line(error: BaseException) -> str:
    # RefreshError's args: (message, response body dict); the message is Google's error code
    # and description, never the assertion or the key.
    text = str(error.args[0]) if error.args else type(error).__name__
    return text.splitlines()[0][:200] if text else type(error).__name__
