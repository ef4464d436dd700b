"""Where credentials come from.

A `CredentialSource` answers "which Canvas and which Google credential does this sync use?".
`EnvCredentialSource` reads the server's environment (DESIGN.md contracts); the hub issue adds a
source that asks JupyterHub for the user's fresh `auth_state`. `ChainedCredentialSource` tries
sources in order. Tokens are reached through a `TokenProvider` so that a 401 can ask for a
fresh one exactly once (a refreshed service-account token, a re-read of the hub's auth_state).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from yarl import URL

from ..errors import ConfigurationError
from ..http.origin import Origin, safe_url
from ..http.session import TokenProvider
from .tokens import StaticToken

DRIVE_API_URL = URL("https://www.googleapis.com/drive/v3/")
DRIVE_READONLY_SCOPE = "https://www.googleapis.com/auth/drive.readonly"


@dataclass(frozen=True)
class CanvasCredentials:
    origin: Origin
    tokens: TokenProvider = field(repr=False)

    @property
    def base_url(self) -> URL:
        return URL(str(self.origin))


@dataclass(frozen=True)
class GoogleCredentials:
    api_url: URL
    tokens: TokenProvider = field(repr=False)
    # The service account's e-mail, when known: instructors must share folders with it.
    account_email: str | None = None

    @property
    def origin(self) -> Origin:
        return Origin.of(self.api_url)


class CredentialSource(Protocol):
    async def canvas(self) -> CanvasCredentials | None: ...

    async def google(self) -> GoogleCredentials | None: ...


class ServiceAccountToken:
    """Tokens minted with google-auth from a service-account key file (scope drive.readonly).

    google-auth honours the key's `token_uri`; refreshing is blocking, so it runs in a thread,
    and one lock keeps concurrent downloads from refreshing at once.
    """

    # Refresh this long before expiry, so a long download never starts with a dying token.
    MARGIN_SECONDS = 300

    def __init__(self, key_path: Path) -> None:
        self._credentials = load_service_account(key_path)
        self._lock = asyncio.Lock()

    @property
    def email(self) -> str:
        return str(self._credentials.service_account_email)

    def __repr__(self) -> str:
        return f"ServiceAccountToken({self.email})"

    async def token(self) -> str:
        async with self._lock:
            if not self._fresh():
                await self._refresh()
            return str(self._credentials.token)

    async def renew(self) -> bool:
        async with self._lock:
            await self._refresh()
        return True

    def _fresh(self) -> bool:
        import datetime

        creds = self._credentials
        if creds.token is None or creds.expiry is None:
            return False
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # google-auth: naive UTC
        return (creds.expiry - now).total_seconds() > self.MARGIN_SECONDS

    async def _refresh(self) -> None:
        import google.auth.exceptions
        import google.auth.transport.requests

        try:
            await asyncio.to_thread(
                self._credentials.refresh, google.auth.transport.requests.Request()
            )
        except google.auth.exceptions.RefreshError as error:
            raise ConfigurationError(
                "The hub's Google service account could not get an access token "
                f"({_first_line(error)}). Ask the hub admin to check the service-account key."
            ) from None
        except google.auth.exceptions.TransportError:
            raise ConfigurationError(
                "Google's token service could not be reached; try again in a few minutes."
            ) from None


def load_service_account(key_path: Path):  # -> google.oauth2.service_account.Credentials
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


def canvas_base_url(value: str) -> URL:
    """The origin a Canvas URL names (`https://canvas.example.edu`), for the hub's Canvas URL
    and the server's `CANVAS_BASE_URL` alike. Raises ValueError (a message for the admin,
    without user info or query) when it has a path, a query, a fragment or user info: the token
    goes to this origin's `/api/v1/...`, so `https://apps.example.edu/canvas/` would send it to
    another application on the same host."""
    try:
        url = URL(value.strip())
    except (ValueError, TypeError):
        raise ValueError("the Canvas URL is not a URL like https://canvas.example.edu") from None
    if not url.absolute or url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{safe_url(url)!r} is not a Canvas URL like https://canvas.example.edu")
    if (
        url.user is not None
        or url.password is not None
        or url.query_string
        or url.fragment
        or url.path not in ("", "/")
    ):
        raise ValueError(
            f"{safe_url(url)!r} must be just the Canvas address, like "
            "https://canvas.example.edu: without a path, a query or a user name"
        )
    return url.origin()


def canvas_origin(base_url: str, where: str) -> Origin:
    """The Canvas origin of a configured base URL (`where` names it for the admin); only an
    origin is accepted, with the hub's own check (`canvas_base_url`), and it must be https
    unless on loopback."""
    try:
        return Origin.of(canvas_base_url(base_url)).require_secure()
    except ValueError as error:
        raise ConfigurationError(f"{where}: {error}. Ask the hub admin to fix it.") from None
    except Exception:
        raise ConfigurationError(
            f"{where} is not a valid https URL; ask the hub admin to fix it."
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error.args[0]) if error.args else type(error).__name__
    return text.splitlines()[0][:200] if text else type(error).__name__


class EnvCredentialSource:
    """Credentials from the single-user server's environment (see DESIGN.md)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._service_account: ServiceAccountToken | None = None

    async def canvas(self) -> CanvasCredentials | None:
        base_url = self._environ.get("CANVAS_BASE_URL", "").strip()
        token = self._environ.get("CANVAS_ACCESS_TOKEN", "").strip()
        if not base_url or not token:
            return None
        return CanvasCredentials(canvas_origin(base_url, "CANVAS_BASE_URL"), StaticToken(token))

    async def google(self) -> GoogleCredentials | None:
        api_url = URL(self._environ.get("GOOGLE_DRIVE_API_URL", "").strip() or DRIVE_API_URL)
        if not api_url.path.endswith("/"):
            api_url = api_url.with_path(api_url.path + "/")
        Origin.of(api_url).require_secure()
        token = self._environ.get("GOOGLE_DRIVE_ACCESS_TOKEN", "").strip()
        if token:
            email = self._environ.get("GOOGLE_SERVICE_ACCOUNT_EMAIL") or None
            return GoogleCredentials(api_url, StaticToken(token), email)
        key_file = self._environ.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
        if key_file:
            if self._service_account is None:
                self._service_account = ServiceAccountToken(Path(key_file))
            return GoogleCredentials(api_url, self._service_account, self._service_account.email)
        return None


class ChainedCredentialSource:
    """The first source that has a credential wins (hub auth_state first, then environment)."""

    def __init__(self, *sources: CredentialSource) -> None:
        self._sources = sources

    async def canvas(self) -> CanvasCredentials | None:
        for source in self._sources:
            if (found := await source.canvas()) is not None:
                return found
        return None

    async def google(self) -> GoogleCredentials | None:
        for source in self._sources:
            if (found := await source.google()) is not None:
                return found
        return None
