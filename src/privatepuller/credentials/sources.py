"""Where credentials come from.

A `CredentialSource` answers "which Canvas and which Google credential does this sync use?".
`EnvCredentialSource` reads the server's environment (DESIGN.md contracts);
`privatepuller.credentials.hub` asks JupyterHub for the user's fresh `auth_state`.
`ChainedCredentialSource` tries sources in order. Tokens are reached through a `TokenProvider`
so that a 401 can ask for a fresh one exactly once (a refreshed service-account token, a re-read
of the hub's auth_state).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from yarl import URL

from ..errors import ConfigurationError, hub_or_alone
from ..http.origin import Origin, safe_url
from ..http.session import TokenProvider
from .service_account import ServiceAccountMinter
from .tokens import StaticToken

DRIVE_API_URL = URL("https://www.googleapis.com/drive/v3/")


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


def drive_api_url(environ: Mapping[str, str]) -> URL:
    """The Drive API's URL: `GOOGLE_DRIVE_API_URL` (tests, the demo), else Google's; https
    unless on loopback."""
    api_url = URL(environ.get("GOOGLE_DRIVE_API_URL", "").strip() or DRIVE_API_URL)
    if not api_url.path.endswith("/"):
        api_url = api_url.with_path(api_url.path + "/")
    Origin.of(api_url).require_secure()
    return api_url


def canvas_origin(base_url: str, where: str) -> Origin:
    """The Canvas origin of a configured base URL (`where` names it for the admin); only an
    origin is accepted, with the hub's own check (`canvas_base_url`), and it must be https
    unless on loopback."""
    fix = hub_or_alone(hub="Ask the hub admin to fix it.", alone=f"Fix {where}, then try again.")
    try:
        return Origin.of(canvas_base_url(base_url)).require_secure()
    except ValueError as error:
        raise ConfigurationError(f"{where}: {error}. {fix}") from None
    except Exception:
        raise ConfigurationError(f"{where} is not a valid https URL. {fix}") from None


class EnvCredentialSource:
    """Credentials from the single-user server's environment (see DESIGN.md)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._service_account: ServiceAccountMinter | None = None

    async def canvas(self) -> CanvasCredentials | None:
        base_url = self._environ.get("CANVAS_BASE_URL", "").strip()
        token = self._environ.get("CANVAS_ACCESS_TOKEN", "").strip()
        if not base_url or not token:
            return None
        return CanvasCredentials(canvas_origin(base_url, "CANVAS_BASE_URL"), StaticToken(token))

    async def google(self) -> GoogleCredentials | None:
        api_url = drive_api_url(self._environ)
        token = self._environ.get("GOOGLE_DRIVE_ACCESS_TOKEN", "").strip()
        if token:
            email = self._environ.get("GOOGLE_SERVICE_ACCOUNT_EMAIL") or None
            return GoogleCredentials(api_url, StaticToken(token), email)
        key_file = self._environ.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
        if key_file:
            if self._service_account is None:
                self._service_account = ServiceAccountMinter(key_file)
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


def chained(*sources: CredentialSource) -> CredentialSource:
    """One source, or a `ChainedCredentialSource` of several (in order)."""
    return sources[0] if len(sources) == 1 else ChainedCredentialSource(*sources)
