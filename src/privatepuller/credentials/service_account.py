"""The one service-account token minter: `drive.readonly` tokens from a Google key file.

On the hub it mints the token every user's `auth_state` carries (`privatepuller.hub`); on the
command line and in the demo it is the `TokenProvider` of `GOOGLE_APPLICATION_CREDENTIALS`.
Either way one minter serves everyone who shares the account: a token is minted once and kept
until it nears expiry, concurrent callers wait for the same refresh, and the key file is read
again when it changes (an admin can rotate the key without a restart).

google-auth is imported where it is used: only a hub or server with a key file needs it, and it
costs a tenth of a second to import.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, hub_or_alone

DRIVE_READONLY_SCOPE = "https://www.googleapis.com/auth/drive.readonly"
# A token this close to expiry is renewed first, so a long download never starts with a dying
# token. The hub asks with its own, longer margin (its servers keep a token for a while).
TOKEN_MARGIN = 300.0


@dataclass(frozen=True)
class MintedToken:
    access_token: str = field(repr=False)
    expires_at: float  # epoch seconds
    obtained_at: float
    service_account_email: str


class ServiceAccountMinter:
    """Mints (and caches) `drive.readonly` tokens for one service-account key file.

    As a `TokenProvider`, `token()` is a token valid for at least `TOKEN_MARGIN` seconds and
    `renew()` mints a new one.
    """

    def __init__(self, key_path: str | Path) -> None:
        self.key_path = Path(key_path)
        self._credentials: Any = None  # google.oauth2.service_account.Credentials
        self._key_mtime: float | None = None
        self._current: MintedToken | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ServiceAccountMinter({self.key_path})"

    @property
    def email(self) -> str:
        """The account's address (reads the key file; ConfigurationError when it cannot)."""
        return str(self._load().service_account_email)

    def check(self) -> str | None:
        """Read and parse the key without contacting Google: the problem, or None."""
        try:
            self._load()
        except ConfigurationError as error:
            return error.message
        return None

    async def minted(self, margin: float = TOKEN_MARGIN, *, force: bool = False) -> MintedToken:
        """A token valid for at least `margin` more seconds; ConfigurationError (an admin
        message without key material) when none can be minted."""
        async with self._lock:
            current = self._current
            if not force and current is not None and current.expires_at - time.time() > margin:
                return current
            self._current = await asyncio.to_thread(self._mint)
            return self._current

    # -- TokenProvider ------------------------------------------------------------------------

    async def token(self) -> str:
        return (await self.minted()).access_token

    async def renew(self) -> bool:
        await self.minted(force=True)
        return True

    # -- google-auth --------------------------------------------------------------------------

    def _load(self) -> Any:
        # Reload when the file changes, so an admin can rotate the key without a restart.
        try:
            mtime: float | None = self.key_path.stat().st_mtime
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
                f"The Google service account in {self.key_path} could not get an access token: "
                f"Google refused to issue a token ({_first_line(error)}); the key may have been "
                "deleted or disabled. "
                + hub_or_alone(
                    hub="Ask the hub admin to check the service-account key.",
                    alone="Check the key (GOOGLE_APPLICATION_CREDENTIALS) in Google Cloud's "
                    "console.",
                )
            ) from None
        except google.auth.exceptions.TransportError:
            raise ConfigurationError(
                "Google's token service could not be reached; try again in a few minutes."
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


def load_service_account(key_path: Path) -> Any:  # google.oauth2.service_account.Credentials
    """Read a service-account key file, with errors an admin can act on (no key material)."""
    from google.oauth2 import service_account

    try:
        info = json.loads(key_path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(
            f"The Google service-account key file {key_path} does not exist "
            "(GOOGLE_APPLICATION_CREDENTIALS)."
        ) from None
    except (PermissionError, IsADirectoryError):
        raise ConfigurationError(
            f"The Google service-account key file {key_path} is not readable by this server."
        ) from None
    except (OSError, UnicodeDecodeError, ValueError):
        raise ConfigurationError(
            f"The Google service-account key file {key_path} is not valid JSON."
        ) from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigurationError(
            f'{key_path} is not a Google service-account key (its "type" is not '
            '"service_account"). Create a JSON key for the service account in the Cloud console.'
        )
    missing = [k for k in ("client_email", "token_uri", "private_key") if not info.get(k)]
    if missing:
        raise ConfigurationError(
            f"The Google service-account key {key_path} is incomplete (it has no "
            f"{', '.join(missing)}). Download a new JSON key from the Cloud console."
        )
    try:
        return service_account.Credentials.from_service_account_info(
            info, scopes=[DRIVE_READONLY_SCOPE]
        )
    except (ValueError, KeyError, TypeError):
        raise ConfigurationError(
            f"The Google service-account key {key_path} is incomplete or its private key "
            "cannot be read."
        ) from None


def _first_line(error: BaseException) -> str:
    # RefreshError's args: (message, response body dict); the message is Google's error code
    # and description, never the assertion or the key.
    text = str(error.args[0]) if error.args else type(error).__name__
    return text.splitlines()[0][:200] if text else type(error).__name__
