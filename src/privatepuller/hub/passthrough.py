"""Token passthrough on the hub: Canvas login state and Google tokens to user servers.

    from privatepuller.hub import CanvasPassthrough

    passthrough = CanvasPassthrough(
        "https://canvas.example.edu",
        google_service_account_key="/etc/jupyterhub/secrets/drive-sa.json",  # optional
    )
    passthrough.configure(c)   # GenericOAuthenticator, auth_state, hooks, roles

What each hook does, and why:

- `modify_auth_state_hook` (OAuthenticator, on login and on every refresh): stamps when the
  Canvas token was obtained (OAuthenticator keeps no issue time), records the Canvas URL, and
  puts a Google token minted from the hub's service account into `auth_state`.
- `refresh_user_hook` (OAuthenticator 17.3+): renews the Canvas token with its refresh token
  *before* it expires (OAuthenticator's own refresh only reacts after Canvas rejected a token,
  and the hub would meanwhile hand the dead token to servers). Otherwise it defers to
  OAuthenticator, which checks the token with Canvas and runs `modify_auth_state_hook`, which
  renews the Google token.
- `auth_state_hook` (Spawner, once per spawn): `CANVAS_BASE_URL`, `CANVAS_ACCESS_TOKEN`,
  `GOOGLE_DRIVE_ACCESS_TOKEN` in the server's environment. They freeze at spawn, which is why
  servers also read `auth_state` from the hub at every sync (`privatepuller.credentials.hub`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from inspect import isawaitable
from pathlib import Path
from typing import Any

from tornado.httpclient import HTTPClientError
from tornado.web import HTTPError
from traitlets.log import get_logger

from ..credentials.auth_state import (
    AUTH_STATE_KEY,
    HUB_STATUS_AUTH_STATE_DISABLED,
    HUB_STATUS_ENV,
    HUB_STATUS_NO_CANVAS_LOGIN,
    OBTAINED_AT_KEY,
    canvas_expires_at,
    google_is_fresh,
    google_problem,
    google_token,
    new_section,
    our_section,
)
from ..credentials.service_account import ServiceAccountMinter
from ..errors import ConfigurationError
from .canvas import CANVAS_SCOPES, canvas_oauth_settings, normalize_canvas_url

# What a student sees on the page when the hub cannot mint Drive tokens; the admin gets the
# reason in the hub log (it can name files and Google's error, which the student cannot act on).
DRIVE_NOT_SET_UP = (
    "Google Drive links do not work on this hub right now: the hub's Google service account "
    "is not set up correctly. Please tell your hub administrator (the hub log says why)."
)

# The scope that lets a user's server read its own user's auth_state. Both roles need it: a
# token's scopes are the intersection of its role's and its owner's (jupyterhub scopes.py).
AUTH_STATE_SCOPE = "admin:auth_state!user"
PASSTHROUGH_ROLES: tuple[dict[str, Any], ...] = (
    {"name": "user", "scopes": ["self", AUTH_STATE_SCOPE]},
    {
        "name": "server",
        "scopes": ["users:activity!user", "access:servers!server", AUTH_STATE_SCOPE],
    },
)

# Renew tokens this long before they expire. It must exceed the hub's auth_refresh_age (300 s
# by default; servers may be handed a token up to that long after the last refresh) plus the
# length of a sync, so no sync starts with a token that dies half way.
DEFAULT_REFRESH_MARGIN = 900.0
# The same admin problem (a broken key file) is logged at most this often.
LOG_REPEAT_SECONDS = 600.0

Hook = Callable[..., Any]


class CanvasPassthrough:
    """Hooks and settings for a hub whose users log in with Canvas (GenericOAuthenticator)."""

    def __init__(
        self,
        canvas_url: str,
        *,
        google_service_account_key: str | Path | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        username_claim: str = "login_id",
        scopes: Iterable[str] = CANVAS_SCOPES,
        export_tokens_to_env: bool = True,
    ) -> None:
        self.canvas_url = normalize_canvas_url(canvas_url)
        self.refresh_margin = float(refresh_margin)
        self.username_claim = username_claim
        self.scopes = tuple(scopes)
        # Servers that read auth_state from the hub do not need the (frozen) env copies; an
        # admin who does not want tokens in pod specs can turn them off.
        self.export_tokens_to_env = export_tokens_to_env
        self.google = (
            ServiceAccountMinter(google_service_account_key) if google_service_account_key else None
        )
        self._logged: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"CanvasPassthrough({self.canvas_url!r}, google={self.google!r})"

    # traitlets deep-copies every config value when it loads it into an object, and copying a
    # bound method copies its instance: each hook would get its own CanvasPassthrough, with its
    # own Google token cache. One per hub is the point, so copies are the object itself.
    def __copy__(self) -> CanvasPassthrough:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> CanvasPassthrough:
        return self

    # -- settings -----------------------------------------------------------------------------

    def oauth_settings(self) -> dict[str, Any]:
        """GenericOAuthenticator settings (authorize/token/userdata URLs, scope, token_params,
        username_claim, login_service) for this Canvas."""
        return canvas_oauth_settings(
            self.canvas_url, username_claim=self.username_claim, scopes=self.scopes
        )

    @staticmethod
    def load_roles() -> list[dict[str, Any]]:
        """`c.JupyterHub.load_roles` entries that let servers read their user's auth_state."""
        return [{"name": r["name"], "scopes": list(r["scopes"])} for r in PASSTHROUGH_ROLES]

    def configure(
        self,
        c: Any,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        oauth_callback_url: str | None = None,
    ) -> None:
        """Apply everything to a jupyterhub_config.py `c`, keeping what the admin already set:
        hooks set before this call still run (after ours), existing `user`/`server` roles
        gain the auth_state scope, and explicit `username_claim`/`login_service` win."""
        if "authenticator_class" not in c.JupyterHub:
            c.JupyterHub.authenticator_class = "generic-oauth"
        auth = c.GenericOAuthenticator
        for name, value in self.oauth_settings().items():
            if name in ("username_claim", "login_service") and name in auth:
                continue
            if name == "token_params":
                value = {**(auth.token_params if "token_params" in auth else {}), **value}
            setattr(auth, name, value)
        if client_id is not None:
            auth.client_id = client_id
        if client_secret is not None:
            auth.client_secret = client_secret
        if oauth_callback_url is not None:
            auth.oauth_callback_url = oauth_callback_url
        auth.enable_auth_state = True
        auth.modify_auth_state_hook = _then(
            self.modify_auth_state_hook,
            auth.modify_auth_state_hook if "modify_auth_state_hook" in auth else None,
            pass_result=True,
        )
        auth.refresh_user_hook = _first_answer(
            auth.refresh_user_hook if "refresh_user_hook" in auth else None,
            self.refresh_user_hook,
        )
        c.Spawner.auth_state_hook = _then(
            self.auth_state_hook,
            c.Spawner.auth_state_hook if "auth_state_hook" in c.Spawner else None,
        )
        c.JupyterHub.load_roles = merge_roles(
            list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
        )
        self._check_config(c)

    def _check_config(self, c: Any) -> None:
        log = _app_log()
        keys = c.CryptKeeper.keys if "keys" in c.CryptKeeper else None
        if not os.environ.get("JUPYTERHUB_CRYPT_KEY", "").strip() and not keys:
            log.error(
                "privatepuller: JUPYTERHUB_CRYPT_KEY is not set. The hub encrypts each "
                "student's Canvas login (auth_state) with it and will refuse to start without "
                "it. Generate one with `openssl rand -hex 32`, give it to the hub as the "
                "JUPYTERHUB_CRYPT_KEY environment variable (Zero to JupyterHub generates one "
                "itself), and keep it: changing it logs every student out of Canvas passthrough."
            )
        for section in ("Authenticator", "GenericOAuthenticator"):
            age = c[section].auth_refresh_age if "auth_refresh_age" in c[section] else None
            if age is not None and (age <= 0 or age >= self.refresh_margin):
                log.warning(
                    "privatepuller: %s.auth_refresh_age = %s: Canvas tokens are renewed only "
                    "when the hub refreshes a user, so it should be positive and well below "
                    "the refresh margin (%d s), or servers may get expired tokens.",
                    section,
                    age,
                    self.refresh_margin,
                )
        if self.google is not None and (problem := self.google.check()):
            log.error("privatepuller: Google Drive tokens cannot be minted: %s", problem)

    # -- OAuthenticator hooks -----------------------------------------------------------------

    async def modify_auth_state_hook(self, authenticator: Any, auth_state: dict[str, Any]) -> Any:
        now = time.time()
        token_response = auth_state.get("token_response")
        obtained_at = now
        expires_at: float | None = None
        if isinstance(token_response, dict):
            # OAuthenticator reuses this dict on refreshes that kept the token, so setdefault
            # keeps the original issue time; a renewed token arrives in a fresh dict.
            obtained_at = float(token_response.setdefault(OBTAINED_AT_KEY, now))
            expires_in = token_response.get("expires_in")
            if isinstance(expires_in, int | float) and expires_in > 0:
                expires_at = obtained_at + float(expires_in)
        ours = new_section(self.canvas_url, obtained_at, expires_at)
        if self.google is not None:
            ours["google"] = await self._google_state(_log_of(authenticator))
        auth_state[AUTH_STATE_KEY] = ours
        return auth_state

    async def refresh_user_hook(
        self, authenticator: Any, user: Any, auth_state: dict[str, Any] | None
    ) -> bool | dict[str, Any] | None:
        log = _log_of(authenticator)
        if not auth_state:
            log.warning(
                "privatepuller: user %s has no auth_state (they did not log in through Canvas, "
                "or logged in before auth_state was enabled); they must log in with Canvas "
                "again before Canvas links work.",
                user.name,
            )
            return None  # OAuthenticator then asks for a fresh login
        expires_at = canvas_expires_at(auth_state)
        refresh_token = auth_state.get("refresh_token")
        if expires_at is None or not refresh_token:
            return None
        remaining = expires_at - time.time()
        if remaining > self.refresh_margin:
            return None  # OAuthenticator checks the token; modify_auth_state_hook does Google
        log.info(
            "privatepuller: renewing %s's Canvas token (%s)",
            user.name,
            f"expires in {int(remaining)} s" if remaining > 0 else "expired",
        )
        try:
            params = authenticator.build_refresh_token_request_params(refresh_token)
            token_info = await authenticator.get_token_info(None, params)
        except Exception as error:
            log.warning(
                "privatepuller: Canvas refused to renew %s's login (%s): the refresh token was "
                "revoked or the developer key changed. They must log in to the hub again.",
                user.name,
                describe_error(error),
            )
            return False
        if not token_info.get("refresh_token"):
            token_info["refresh_token"] = refresh_token  # Canvas does not rotate it
        try:
            # The same path OAuthenticator's refresh_user takes after a refresh (userdata,
            # modify_auth_state_hook, groups), so the result is a complete auth model.
            model: dict[str, Any] = await authenticator._token_to_auth_model(token_info)
        except Exception as error:
            log.warning(
                "privatepuller: Canvas issued %s a new token but rejected it (%s); they must "
                "log in to the hub again.",
                user.name,
                describe_error(error),
            )
            return False
        return model

    # -- Spawner hook ---------------------------------------------------------------------

    async def auth_state_hook(self, spawner: Any, auth_state: dict[str, Any] | None) -> None:
        log = _log_of(spawner)
        name = spawner.user.name
        env = dict(spawner.environment)  # a copy: never mutate a dict shared through config
        env.pop(HUB_STATUS_ENV, None)
        authenticator = getattr(spawner, "authenticator", None)
        if authenticator is not None and not getattr(authenticator, "enable_auth_state", True):
            log.error(
                "privatepuller: auth_state is disabled, so %s's server gets no Canvas token. "
                "Set c.GenericOAuthenticator.enable_auth_state = True and JUPYTERHUB_CRYPT_KEY "
                "(see privatepuller's docs/admin.md).",
                name,
            )
            env[HUB_STATUS_ENV] = HUB_STATUS_AUTH_STATE_DISABLED
            spawner.environment = env
            return
        if not auth_state or not auth_state.get("access_token"):
            log.warning(
                "privatepuller: %s has no Canvas login in auth_state (they did not log in "
                "through Canvas, or before auth_state was enabled); their server starts "
                "without a Canvas token until they log in again with Canvas.",
                name,
            )
            env[HUB_STATUS_ENV] = HUB_STATUS_NO_CANVAS_LOGIN
            spawner.environment = env
            return
        ours = our_section(auth_state)
        env["CANVAS_BASE_URL"] = str(ours.get("canvas_base_url") or self.canvas_url)
        if self.export_tokens_to_env:
            env["CANVAS_ACCESS_TOKEN"] = str(auth_state["access_token"])
        if self.google is not None:
            google = ours.get("google")
            if not google_is_fresh(google, self.refresh_margin):
                # Spawns normally follow a refresh (refresh_pre_spawn), but not when the admin
                # turned refreshing off: mint here too.
                google = await self._google_state(log)
            assert isinstance(google, dict)
            if google.get("access_token"):
                if self.export_tokens_to_env:
                    env["GOOGLE_DRIVE_ACCESS_TOKEN"] = str(google["access_token"])
                env["GOOGLE_SERVICE_ACCOUNT_EMAIL"] = str(google.get("service_account_email"))
        spawner.environment = env

    # -- helpers ----------------------------------------------------------------------------

    async def _google_state(self, log: Any) -> dict[str, Any]:
        assert self.google is not None
        try:
            minted = await self.google.minted(self.refresh_margin)
        except ConfigurationError as error:
            self._log_problem(log, "privatepuller: Google Drive tokens cannot be minted: %s", error)
            return google_problem(DRIVE_NOT_SET_UP)
        except Exception as error:  # never let Drive trouble break a Canvas login
            self._log_problem(
                log, "privatepuller: minting a Google Drive token failed: %s", type(error).__name__
            )
            return google_problem(DRIVE_NOT_SET_UP)
        return google_token(minted)

    def _log_problem(self, log: Any, message: str, detail: object) -> None:
        text = str(detail)
        now = time.monotonic()
        if now - self._logged.get(text, -LOG_REPEAT_SECONDS) >= LOG_REPEAT_SECONDS:
            self._logged[text] = now
            log.error(message, text)


def merge_roles(roles: list[Any]) -> list[Any]:
    """`roles` with the auth_state scope added to the `user` and `server` roles (which are
    created from JupyterHub's defaults when absent)."""
    merged = [dict(r) if isinstance(r, dict) else r for r in roles]
    for default in PASSTHROUGH_ROLES:
        existing = next(
            (r for r in merged if isinstance(r, dict) and r.get("name") == default["name"]), None
        )
        if existing is None:
            merged.append({"name": default["name"], "scopes": list(default["scopes"])})
            continue
        scopes = list(existing.get("scopes") or default["scopes"])
        if AUTH_STATE_SCOPE not in scopes:
            scopes.append(AUTH_STATE_SCOPE)
        existing["scopes"] = scopes
    return merged


def describe_error(error: BaseException) -> str:
    """A log-safe description of a token-endpoint failure: status and OAuth error code only
    (exception texts can embed whole token responses)."""
    if isinstance(error, HTTPClientError):
        detail = f"HTTP {error.code}"
        body = error.response.body if error.response is not None else b""
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {}
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            detail += f" {data['error'][:60]}"
            if isinstance(data.get("error_description"), str):
                detail += f": {data['error_description'][:120]}"
        return detail
    if isinstance(error, HTTPError):
        return f"HTTP {error.status_code}"
    return type(error).__name__


def _log_of(obj: Any) -> Any:
    """The hub's logger as the hook's caller has it (JupyterHub passes its app log down)."""
    log = getattr(obj, "log", None)
    return log if isinstance(log, logging.Logger | logging.LoggerAdapter) else _app_log()


def _app_log() -> Any:
    return get_logger()


async def _maybe_await(value: Any) -> Any:
    return await value if isawaitable(value) else value


def _then(ours: Hook, theirs: Hook | None, *, pass_result: bool = False) -> Hook:
    """Run our hook, then the admin's (with our result as its state, for modify hooks)."""
    if theirs is None:
        return ours

    async def chained(obj: Any, state: Any) -> Any:
        result = await _maybe_await(ours(obj, state))
        return await _maybe_await(theirs(obj, result if pass_result else state))

    return chained


def _first_answer(theirs: Hook | None, ours: Hook) -> Hook:
    """The admin's refresh_user_hook decides first; ours runs when it returns None."""
    if theirs is None:
        return ours

    async def chained(authenticator: Any, user: Any, auth_state: Any) -> Awaitable[Any] | Any:
        answer = await _maybe_await(theirs(authenticator, user, auth_state))
        if answer is not None:
            return answer
        return await ours(authenticator, user, auth_state)

    return chained
