"""Credentials from JupyterHub: the user's fresh `auth_state`, read at every sync.

On the hub, `privatepuller.hub` keeps the student's Canvas token (and a Google token minted
from the hub's service account) in the user's encrypted `auth_state` and renews them before
they expire. Environment variables set at spawn time freeze for the server's lifetime, so the
server asks the hub instead, with its own `$JUPYTERHUB_API_TOKEN`:

    GET $JUPYTERHUB_API_URL/users/$JUPYTERHUB_USER        Authorization: token ...

Not `/user`: that handler never fills in `auth_state` (jupyterhub/jupyterhub#5103). The
response only carries `auth_state` when both the `user` and the `server` roles have
`admin:auth_state!user` (docs/admin.md); without them this source stands aside and the
environment (`EnvCredentialSource`) is used. The request also makes the hub run
`refresh_user` when the user's auth is older than `auth_refresh_age`, so the answer already
holds renewed tokens.

With JupyterHub's `internal_ssl`, the hub's API is https with certificates of the hub's own
CA, and it asks for a client certificate: the server's, which JupyterHub names in
`JUPYTERHUB_SSL_KEYFILE`, `JUPYTERHUB_SSL_CERTFILE` and `JUPYTERHUB_SSL_CLIENT_CA` (the CA),
as jupyterhub's own `HubAuth` uses them.

The hub's answer contains tokens: it is never logged, and neither is anything taken from it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from yarl import URL

from ..errors import ConfigurationError, NotConfigured
from .auth_state import (
    HUB_STATUS_AUTH_STATE_DISABLED,
    HUB_STATUS_ENV,
    HUB_STATUS_NO_CANVAS_LOGIN,
    google_entry,
    our_section,
    text,
)
from .sources import (
    CanvasCredentials,
    CredentialSource,
    EnvCredentialSource,
    GoogleCredentials,
    canvas_origin,
    chained,
    drive_api_url,
)

log = logging.getLogger("privatepuller")

NO_CANVAS_LOGIN = (
    "Your hub login does not include a Canvas login (you may have logged in another way, or "
    "before Canvas login was set up on this hub). Log out of the hub, log in again with "
    "Canvas, then click the link once more."
)
AUTH_STATE_DISABLED = (
    "This hub is not set up to pass your Canvas login to your server (its auth_state is turned "
    "off). Ask your hub administrator to enable it; privatepuller's admin guide "
    "(docs/admin.md) says how."
)
_STATUS_MESSAGES = {
    HUB_STATUS_AUTH_STATE_DISABLED: AUTH_STATE_DISABLED,
    HUB_STATUS_NO_CANVAS_LOGIN: NO_CANVAS_LOGIN,
}

Provider = Literal["canvas", "google"]


@dataclass(frozen=True)
class HubAnswer:
    """What the hub said about the user: `readable` is False when the model had no
    `auth_state` key (the server's token lacks `admin:auth_state`)."""

    readable: bool
    auth_state: dict[str, Any] | None


class HubToken:
    """A token that came from the hub; `renew()` asks the hub again (once per 401)."""

    def __init__(self, source: HubCredentialSource, provider: Provider, value: str) -> None:
        self._source = source
        self._provider = provider
        self._value = value
        self._generation = 0
        self._failed_generation = -1
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"HubToken({self._provider})"

    async def token(self) -> str:
        return self._value

    async def renew(self) -> bool:
        # Several downloads can hit the same 401 at once: the first asks the hub, the others
        # learn its result instead of asking again.
        generation = self._generation
        async with self._lock:
            if self._generation != generation:
                return True
            if self._failed_generation == generation:
                return False
            fresh = await self._source.fresh_token(self._provider)
            if fresh and fresh != self._value:
                self._value = fresh
                self._generation += 1
                return True
            self._failed_generation = generation
            return False


class HubCredentialSource:
    """Canvas and Google credentials from the user's `auth_state`, read from the hub.

    Constructed with no arguments it reads `JUPYTERHUB_API_URL`, `JUPYTERHUB_API_TOKEN` and
    `JUPYTERHUB_USER` (set by JupyterHub in every single-user server); without them it has
    nothing to offer and returns None, so the next source in a chain is used.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        renew_delay: float = 1.0,
        cache_seconds: float = 5.0,
        timeout: float = 15.0,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._api_url = self._environ.get("JUPYTERHUB_API_URL", "").strip().rstrip("/")
        self._api_token = self._environ.get("JUPYTERHUB_API_TOKEN", "").strip()
        self._user = self._environ.get("JUPYTERHUB_USER", "").strip()
        # A 401 may race the hub's own refresh of the same token: give it a moment.
        self.renew_delay = renew_delay
        # One sync asks for credentials a few times (resolve, fetch): one hub request serves
        # them all. A renewal always bypasses this.
        self.cache_seconds = cache_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl: ssl.SSLContext | None = None
        self._cached: tuple[float, HubAnswer] | None = None
        self._lock = asyncio.Lock()
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"HubCredentialSource(user={self._user!r})"

    @property
    def configured(self) -> bool:
        """True inside a JupyterHub single-user server (the hub API and a token are known)."""
        return bool(self._api_url and self._api_token and self._user)

    # -- CredentialSource ----------------------------------------------------------------

    async def canvas(self) -> CanvasCredentials | None:
        answer = await self._answer()
        if answer is None or not answer.readable:
            self._explain_missing_canvas(answer)
            return None
        state = answer.auth_state or {}
        token = text(state.get("access_token"))
        if not token:
            self._explain_missing_canvas(answer)
            return None
        section = our_section(state)
        base_url = (
            text(section.get("canvas_base_url")) or self._environ.get("CANVAS_BASE_URL", "").strip()
        )
        if not base_url:
            self._warn_once(
                "no-base-url",
                "privatepuller: the hub's auth_state has a Canvas token but no Canvas URL; is "
                "privatepuller.hub's modify_auth_state_hook configured on the hub?",
            )
            return None
        origin = canvas_origin(base_url, "The hub's Canvas URL")
        return CanvasCredentials(origin, HubToken(self, "canvas", token))

    async def google(self) -> GoogleCredentials | None:
        answer = await self._answer()
        if answer is None or not answer.readable or not answer.auth_state:
            return None
        google = google_entry(answer.auth_state)
        if google is None:
            return None
        token = text(google.get("access_token"))
        if not token:
            problem = text(google.get("error"))
            if problem and not self._environ_has_google():
                raise ConfigurationError(problem)
            return None
        api_url = drive_api_url(self._environ)
        email = text(google.get("service_account_email")) or None
        return GoogleCredentials(api_url, HubToken(self, "google", token), email)

    # -- talking to the hub ----------------------------------------------------------------

    async def fresh_token(self, provider: Provider) -> str | None:
        """Ask the hub again, bypassing the cache (after a 401)."""
        if self.renew_delay > 0:
            await asyncio.sleep(self.renew_delay)
        answer = await self._answer(fresh=True)
        if answer is None or not answer.auth_state:
            return None
        state = answer.auth_state
        if provider == "canvas":
            return text(state.get("access_token")) or None
        google = google_entry(state)
        return text(google.get("access_token")) or None if google is not None else None

    async def _answer(self, *, fresh: bool = False) -> HubAnswer | None:
        if not self.configured:
            return None
        async with self._lock:
            now = time.monotonic()
            if (
                not fresh
                and self._cached is not None
                and now - self._cached[0] < self.cache_seconds
            ):
                return self._cached[1]
            answer = await self._ask_hub()
            self._cached = None if answer is None else (time.monotonic(), answer)
            return answer

    async def _ask_hub(self) -> HubAnswer | None:
        """The user's model from the hub, or None when the hub could not be asked."""
        url = URL(f"{self._api_url}/users/{_quote_segment(self._user)}", encoded=True)
        headers = {"Authorization": f"token {self._api_token}", "Accept": "application/json"}
        try:
            tls = self._internal_ssl() if url.scheme == "https" else None
        except (OSError, ssl.SSLError) as error:
            self._warn_once(
                "internal-ssl",
                "privatepuller: cannot use the hub's internal_ssl certificates named in "
                "JUPYTERHUB_SSL_* (%s); using the server's environment instead.",
                type(error).__name__,
            )
            return None
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout, trust_env=False) as http,
                http.get(url, headers=headers, allow_redirects=False, ssl=tls or True) as response,
            ):
                if response.status != 200:
                    # The status alone: the body is the hub's, but never risk echoing it.
                    self._warn_once(
                        f"status-{response.status}",
                        "privatepuller: the hub answered HTTP %d when asked for %s's "
                        "auth_state; using the server's environment instead.",
                        response.status,
                        self._user,
                    )
                    return None
                model = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            self._warn_once(
                "unreachable",
                "privatepuller: could not ask the hub for %s's auth_state (%s); using the "
                "server's environment instead.",
                self._user,
                type(error).__name__,
            )
            return None
        if not isinstance(model, dict):
            return None
        if "auth_state" not in model:
            self._warn_once(
                "not-readable",
                "privatepuller: this server's token may not read its user's auth_state, so "
                "Canvas tokens cannot be renewed while the server runs. Give the 'user' and "
                "'server' roles the scope admin:auth_state!user (see docs/admin.md).",
            )
            return HubAnswer(False, None)
        state = model["auth_state"]
        return HubAnswer(True, state if isinstance(state, dict) else None)

    def _internal_ssl(self) -> ssl.SSLContext | None:
        """The client side of JupyterHub's internal_ssl (as jupyterhub.utils.make_ssl_context
        makes it), or None without it: then the system's CAs verify the hub as usual."""
        keyfile = self._environ.get("JUPYTERHUB_SSL_KEYFILE", "").strip()
        certfile = self._environ.get("JUPYTERHUB_SSL_CERTFILE", "").strip()
        if not keyfile or not certfile:
            return None
        if self._ssl is None:
            cafile = self._environ.get("JUPYTERHUB_SSL_CLIENT_CA", "").strip() or None
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
            context.load_cert_chain(certfile, keyfile)
            self._ssl = context
        return self._ssl

    # -- explanations ----------------------------------------------------------------------

    def _explain_missing_canvas(self, answer: HubAnswer | None) -> None:
        """Raise a clear error when we know why there is no Canvas login and the environment
        has none either; otherwise return, so the environment answers."""
        if self._environ.get("CANVAS_ACCESS_TOKEN", "").strip():
            return
        status = self._environ.get(HUB_STATUS_ENV, "")
        if answer is not None and answer.readable:
            # The hub itself says this user's auth_state holds no Canvas token.
            raise NotConfigured(_STATUS_MESSAGES.get(status, NO_CANVAS_LOGIN))
        if status in _STATUS_MESSAGES:
            raise NotConfigured(_STATUS_MESSAGES[status])

    def _environ_has_google(self) -> bool:
        return bool(
            self._environ.get("GOOGLE_DRIVE_ACCESS_TOKEN", "").strip()
            or self._environ.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
        )

    def _warn_once(self, topic: str, message: str, *args: object) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            log.warning(message, *args)


# The server's default (`c.PrivatePuller.credential_sources`) and the command line's: the
# hub's fresh auth_state when running under JupyterHub, then the environment (a token set by
# hand, or by the hub at spawn).
DEFAULT_SOURCES: tuple[type[HubCredentialSource] | type[EnvCredentialSource], ...] = (
    HubCredentialSource,
    EnvCredentialSource,
)


def default_credential_source(environ: Mapping[str, str] | None = None) -> CredentialSource:
    """`DEFAULT_SOURCES`, chained (what the command line uses); outside a hub, the
    environment alone."""
    sources = [source(environ) for source in DEFAULT_SOURCES]
    return chained(*(s for s in sources if not isinstance(s, HubCredentialSource) or s.configured))


def _quote_segment(name: str) -> str:
    return quote(name, safe="")
