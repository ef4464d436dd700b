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
  puts a Google token minted from the hub's service account into `auth_state`. With
  `canvas_groups=True` it also reads the student's active courses and Canvas groups and stores
  them as JupyterHub group names (`privatepuller.hub.groups`), which OAuthenticator hands to
  JupyterHub (`auth_state_groups_key`, `manage_groups`); `allowed_courses` admits only members
  of those courses' groups (`allowed_groups`).
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
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from functools import reduce
from inspect import isawaitable
from pathlib import Path
from typing import Any

from tornado import web
from tornado.httpclient import HTTPClientError
from tornado.web import HTTPError
from traitlets.config import LazyConfigValue
from traitlets.log import get_logger

from ..credentials.auth_state import (
    AUTH_STATE_KEY,
    GROUPS_KEY,
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
from ..http.session import SessionOptions
from ..providers.gdrive.hub import SERVICE_URL_ENV
from .canvas import CANVAS_GROUP_SCOPES, CANVAS_SCOPES, canvas_oauth_settings, normalize_canvas_url
from .groups import (
    CANVAS_UNAVAILABLE_MESSAGE,
    DEFAULT_TIMEOUT,
    GROUPS_SESSION,
    NOT_ENROLLED_MESSAGE,
    MembershipUnavailable,
    course_group,
    course_id_of,
    read_membership,
)
from .service import ACCESS_SCOPE as SERVICE_ACCESS_SCOPE
from .service import SERVICE_NAME

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
# The Canvas user id whose refresh is under way in this task (set by refresh_user_hook, which
# OAuthenticator runs before modify_auth_state_hook): tells a refresh from a login.
_REFRESHING: ContextVar[str | None] = ContextVar("privatepuller_refreshing", default=None)
_UNSET = object()

# The role that lets the hub-managed service (`privatepuller.hub.service`) read groups.
SERVICE_ROLE = "privatepuller-service"
DEFAULT_SERVICE_URL = "http://127.0.0.1:10101"


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
        canvas_groups: bool | None = None,
        allowed_courses: Iterable[int | str] = (),
        groups_timeout: float = DEFAULT_TIMEOUT,
        groups_session: SessionOptions = GROUPS_SESSION,
        drive_token_to_servers: bool = False,
        service_url: str = DEFAULT_SERVICE_URL,
        service_home: str | Path | None = None,
        min_relist_seconds: float = 30.0,
        folder_groups: dict[str, Iterable[str]] | None = None,
    ) -> None:
        """`canvas_groups=True`: at login and refresh, read the student's active courses and
        Canvas groups and hand them to JupyterHub as groups (`privatepuller.hub.groups`).
        `allowed_courses`: only users with an active enrollment in one of these courses may
        log in (implies `canvas_groups`). `groups_timeout` bounds how long a login waits for
        Canvas; `groups_session` is how those reads retry (tests use a faster clock).

        With a service-account key, Drive goes through the hub's `privatepuller` service
        (registered by `configure`): `service_url` is where it listens, as user servers reach
        it; `service_home` its disk (default: `privatepuller-service` in the hub's working
        folder); `min_relist_seconds` how long a snapshot serves before Drive is asked again;
        `folder_groups` limits Drive folders (by id) to JupyterHub groups. No Google token
        reaches user servers. `drive_token_to_servers=True` instead hands every server a
        token of the service account (which reads everything shared with it)."""
        self.canvas_url = normalize_canvas_url(canvas_url)
        self.refresh_margin = float(refresh_margin)
        self.username_claim = username_claim
        self.allowed_courses = tuple(sorted({course_id_of(c) for c in allowed_courses}))
        if canvas_groups is False and self.allowed_courses:
            raise ValueError("allowed_courses needs canvas_groups (the groups decide who is in)")
        self.canvas_groups = bool(canvas_groups) or bool(self.allowed_courses)
        self.groups_timeout = float(groups_timeout)
        self.groups_session = groups_session
        extra = CANVAS_GROUP_SCOPES if self.canvas_groups else ()
        self.scopes = tuple(dict.fromkeys([*scopes, *extra]))
        # Servers that read auth_state from the hub do not need the (frozen) env copies; an
        # admin who does not want tokens in pod specs can turn them off.
        self.export_tokens_to_env = export_tokens_to_env
        self.google = (
            ServiceAccountMinter(google_service_account_key) if google_service_account_key else None
        )
        self.key_path = str(google_service_account_key) if google_service_account_key else None
        self.drive_token_to_servers = bool(drive_token_to_servers)
        self.service_url = service_url.rstrip("/")
        self.service_home = str(service_home or Path.cwd() / "privatepuller-service")
        self.min_relist_seconds = float(min_relist_seconds)
        self.folder_groups = {k: sorted(set(v)) for k, v in (folder_groups or {}).items()}
        self._logged: dict[str, float] = {}
        # Canvas user id -> (groups, when read): the last groups read for each user, so that a
        # failed read keeps them (seeded from the stored auth_state at each refresh).
        self._known_groups: dict[str, tuple[list[str], float]] = {}

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
        if self.canvas_groups:
            self._configure_groups(c)
        if self.google is not None and not self.drive_token_to_servers:
            self._configure_service(c)
        elif self.google is not None:
            _app_log().warning(
                "privatepuller: drive_token_to_servers = True: every student's server gets a "
                "drive.readonly token of %s, with which any student can read everything "
                "shared with that account (every course's folders), not only the folders "
                "linked to them. Leave it off to sync Drive through the hub's privatepuller "
                "service, where the token stays.",
                self.google.email,
            )
        scrub_tornado_request_logs()
        self._check_config(c)

    @property
    def service_enabled(self) -> bool:
        """Drive through the hub's service: a key, and no tokens handed to servers."""
        return self.google is not None and not self.drive_token_to_servers

    def service_definition(self) -> dict[str, Any]:
        """The `c.JupyterHub.services` entry of the hub-managed `privatepuller` service."""
        assert self.key_path is not None
        settings = {
            "home": self.service_home,
            "min_relist_seconds": self.min_relist_seconds,
            "folder_groups": self.folder_groups,
        }
        environment = {
            "GOOGLE_APPLICATION_CREDENTIALS": self.key_path,
            "PRIVATEPULLER_SERVICE_SETTINGS": json.dumps(settings),
        }
        if os.environ.get("GOOGLE_DRIVE_API_URL"):  # tests against a fake Drive
            environment["GOOGLE_DRIVE_API_URL"] = os.environ["GOOGLE_DRIVE_API_URL"]
        return {
            "name": SERVICE_NAME,
            "url": self.service_url,
            "command": [sys.executable, "-m", "privatepuller.hub.service"],
            "environment": environment,
            "display": False,
        }

    def _configure_service(self, c: Any) -> None:
        """Register the service, let user servers (and only them) call it, let it read group
        membership, and tell servers where it is."""
        services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
        services = [s for s in services if s.get("name") != SERVICE_NAME]
        services.append(self.service_definition())
        c.JupyterHub.services = services
        roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
        c.JupyterHub.load_roles = service_roles(roles)
        environment = dict(c.Spawner.environment) if "environment" in c.Spawner else {}
        environment[SERVICE_URL_ENV] = f"{self.service_url}/services/{SERVICE_NAME}/"
        c.Spawner.environment = environment

    def _configure_groups(self, c: Any) -> None:
        """manage_groups, auth_state_groups_key and, with allowed_courses, allowed_groups and
        custom_403_message; refuses settings that would silently undo them."""

        def explicit(name: str) -> Any:
            # traitlets: the most specific class's section wins for a GenericOAuthenticator.
            for section in ("GenericOAuthenticator", "OAuthenticator", "Authenticator"):
                if name in c[section]:
                    return c[section][name]
            return _UNSET

        auth = c.GenericOAuthenticator
        if explicit("manage_groups") is False:
            raise ConfigurationError(
                "privatepuller: canvas_groups needs manage_groups = True (JupyterHub then takes "
                "each user's groups from their Canvas courses); remove manage_groups = False."
            )
        if "load_groups" in c.JupyterHub and c.JupyterHub.load_groups:
            raise ConfigurationError(
                "privatepuller: canvas_groups hands group membership to the authenticator "
                "(manage_groups), and JupyterHub then refuses JupyterHub.load_groups; remove "
                "load_groups (groups come from Canvas)."
            )
        auth.manage_groups = True
        theirs = explicit("auth_state_groups_key")
        auth.auth_state_groups_key = (
            GROUPS_KEY if theirs is _UNSET or not theirs else union_groups_key(theirs)
        )
        if not self.allowed_courses:
            return
        if explicit("allow_all") is True:
            raise ConfigurationError(
                "privatepuller: allowed_courses limits logins to these courses, but allow_all "
                "= True lets everyone in (it overrides every allow rule). Remove allow_all."
            )
        existing = explicit("allowed_groups")
        if isinstance(existing, LazyConfigValue):  # c.Authenticator.allowed_groups.add(...)
            existing = existing.get_value(set())
        existing = set(existing) if existing is not _UNSET and existing else set()
        auth.allowed_groups = existing | {course_group(i) for i in self.allowed_courses}
        if explicit("custom_403_message") is _UNSET:
            auth.custom_403_message = NOT_ENROLLED_MESSAGE

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
        if self.google is not None and self.drive_token_to_servers:
            ours["google"] = await self._google_state(_log_of(authenticator))
        if self.canvas_groups:
            ours.update(await self._groups_state(authenticator, auth_state))
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
        if self.canvas_groups:
            self._remember_groups(authenticator, auth_state)
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
        if self.google is not None and self.drive_token_to_servers:
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

    # -- Canvas groups ------------------------------------------------------------------------

    async def _groups_state(self, authenticator: Any, auth_state: dict[str, Any]) -> dict[str, Any]:
        """The groups fields of our auth_state section: read from Canvas, or, when that
        fails, the user's previous groups (or none) with the reason."""
        log = _log_of(authenticator)
        self._check_groups_runtime(authenticator, log)
        user_id, who = _canvas_user(authenticator, auth_state)
        token = auth_state.get("access_token")
        try:
            if not token:
                raise MembershipUnavailable("no Canvas access token in auth_state")
            membership = await read_membership(
                self.canvas_url,
                str(token),
                options=self.groups_session,
                timeout=self.groups_timeout,
            )
        except MembershipUnavailable as error:
            return self._groups_unavailable(log, user_id, who, error.reason)
        groups = membership.group_names()
        now = time.time()
        if user_id is not None:
            self._known_groups[user_id] = (groups, now)
        log.debug(
            "privatepuller: %s has %d active Canvas course(s) and %d Canvas group(s)",
            who,
            len(membership.courses),
            len(membership.groups),
        )
        return {"groups": groups, "groups_read_at": now}

    def _groups_unavailable(
        self, log: Any, user_id: str | None, who: str, reason: str
    ) -> dict[str, Any]:
        known = self._known_groups.get(user_id) if user_id is not None else None
        if known is not None:
            groups, read_at = known
            log.warning(
                "privatepuller: could not read %s's Canvas courses and groups (%s); keeping "
                "the %d group(s) read at %s.",
                who,
                reason,
                len(groups),
                time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(read_at)),
            )
            return {"groups": list(groups), "groups_read_at": read_at, "groups_error": reason}
        refreshing = user_id is not None and _REFRESHING.get() == user_id
        if self.allowed_courses and not refreshing:
            log.warning(
                "privatepuller: could not read %s's Canvas courses and groups (%s), so the hub "
                "cannot tell whether allowed_courses lets them in: login refused for now (they "
                "were told to try again in a few minutes).",
                who,
                reason,
            )
            # No log_message: tornado would log it with the request's URL (the OAuth code).
            error = web.HTTPError(503, reason="Canvas did not answer")
            error.jupyterhub_message = CANVAS_UNAVAILABLE_MESSAGE  # type: ignore[attr-defined]
            raise error
        log.warning(
            "privatepuller: could not read %s's Canvas courses and groups (%s); they have no "
            "Canvas groups until the hub reads them at their next refresh or login.",
            who,
            reason,
        )
        return {"groups": [], "groups_read_at": None, "groups_error": reason}

    def _remember_groups(self, authenticator: Any, auth_state: dict[str, Any]) -> None:
        """Before a refresh: the groups stored with the user's previous login or refresh are
        their previous groups, should Canvas not answer now (also after a hub restart)."""
        user_id, _ = _canvas_user(authenticator, auth_state)
        _REFRESHING.set(user_id)
        ours = our_section(auth_state)
        if user_id is None or not ours:
            return
        groups, read_at = ours.get("groups"), ours.get("groups_read_at")
        if not isinstance(read_at, int | float) or not isinstance(groups, list):
            return  # never read successfully: nothing to keep
        known = self._known_groups.get(user_id)
        if known is None or known[1] < read_at:
            self._known_groups[user_id] = ([str(g) for g in groups], float(read_at))

    def _check_groups_runtime(self, authenticator: Any, log: Any) -> None:
        """Settings made after configure() (or by hand) that undo the groups."""
        if not getattr(authenticator, "manage_groups", True):
            self._log_problem(
                log,
                "privatepuller: %s",
                "canvas_groups is on but manage_groups is False, so JupyterHub ignores the "
                "Canvas groups. Set c.GenericOAuthenticator.manage_groups = True.",
            )
        if self.allowed_courses and getattr(authenticator, "allow_all", False):
            self._log_problem(
                log,
                "privatepuller: %s",
                "allowed_courses is set but allow_all = True lets every Canvas user log in. "
                "Remove allow_all (set after CanvasPassthrough.configure).",
            )

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


def service_roles(roles: list[Any]) -> list[Any]:
    """`roles` where the `user` and `server` roles may access the privatepuller service (a
    token's scopes are its role's within its owner's), and the service may read who is in
    which group (folders limited to groups)."""
    merged = merge_roles(roles)
    for role in merged:
        named = isinstance(role, dict) and role.get("name") in ("user", "server")
        if named and SERVICE_ACCESS_SCOPE not in role["scopes"]:
            role["scopes"] = [*role["scopes"], SERVICE_ACCESS_SCOPE]
    merged = [r for r in merged if not (isinstance(r, dict) and r.get("name") == SERVICE_ROLE)]
    merged.append(
        {"name": SERVICE_ROLE, "scopes": ["read:users:groups"], "services": [SERVICE_NAME]}
    )
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


class _ScrubRequestSecrets(logging.Filter):
    """Masks secret query parameters in tornado's request warnings.

    tornado logs a request that ended in an HTTPError with a message, URL and all
    (RequestHandler.log_exception: "403 GET /hub/oauth_callback?code=...&state=..."), which is
    how every refused login is logged: OAuthenticator raises HTTPError(403, custom_403_message).
    JupyterHub masks these parameters in its own access log, not in this line."""

    PARAMS = re.compile(r"([?&][^=&\s]*(?:code|state|token|auth|key|xsrf)[^=&\s]*=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let logging report it as usual
            return True
        masked = self.PARAMS.sub(r"\1[secret]", message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def scrub_tornado_request_logs() -> None:
    """Install `_ScrubRequestSecrets` on tornado's general logger (once)."""
    logger = logging.getLogger("tornado.general")
    if not any(isinstance(f, _ScrubRequestSecrets) for f in logger.filters):
        logger.addFilter(_ScrubRequestSecrets())


def union_groups_key(theirs: str | Hook) -> Hook:
    """An auth_state_groups_key giving privatepuller's groups plus those of the admin's own
    key (a dotted key or a callable, possibly async, as OAuthenticator allows)."""

    async def groups(auth_state: dict[str, Any]) -> set[str]:
        ours = _dotted(auth_state, GROUPS_KEY)
        if callable(theirs):
            extra = await _maybe_await(theirs(auth_state))
        else:
            extra = _dotted(auth_state, str(theirs))
        return {str(g) for g in ours or ()} | {str(g) for g in extra or ()}

    return groups


def _dotted(state: dict[str, Any], key: str) -> Any:
    try:
        return reduce(dict.get, key.split("."), state)  # type: ignore[arg-type]
    except TypeError:
        return None


def _canvas_user(authenticator: Any, auth_state: dict[str, Any]) -> tuple[str | None, str]:
    """(Canvas user id, a name for logs) from the Canvas profile OAuthenticator stored."""
    key = getattr(authenticator, "user_auth_state_key", None) or "oauth_user"
    profile = auth_state.get(key)
    if not isinstance(profile, dict) or profile.get("id") is None:
        return None, "a user"
    user_id = str(profile["id"])
    return user_id, str(profile.get("login_id") or f"Canvas user {user_id}")


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
