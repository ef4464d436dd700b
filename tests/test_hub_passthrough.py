"""The hub side: GenericOAuthenticator with our hooks, against the fake Canvas and fake Drive.

The authenticator is OAuthenticator's real GenericOAuthenticator; only the JupyterHub around it
(the user object, the spawner) is a stand-in. The full hub runs in test_e2e_hub.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from oauthenticator.generic import GenericOAuthenticator
from traitlets.config import Config

from privatepuller.credentials.auth_state import (
    AUTH_STATE_KEY,
    HUB_STATUS_AUTH_STATE_DISABLED,
    HUB_STATUS_ENV,
    HUB_STATUS_NO_CANVAS_LOGIN,
    OBTAINED_AT_KEY,
)
from privatepuller.hub import CANVAS_SCOPES, CanvasPassthrough, merge_roles
from privatepuller.hub.passthrough import DRIVE_NOT_SET_UP
from privatepuller.testing.canvas.fake import FakeCanvas
from privatepuller.testing.canvas.model import FakeUser
from privatepuller.testing.drive.fake import FakeDrive

CLIENT_ID = "10000000000042"
CLIENT_SECRET = "hub-client-secret-" + "x" * 20
CALLBACK = "http://127.0.0.1:8000/hub/oauth_callback"


@dataclass
class HubUser:
    """What OAuthenticator.refresh_user needs of a JupyterHub User."""

    name: str
    auth_state: dict[str, Any] | None = None

    async def get_auth_state(self) -> dict[str, Any] | None:
        return self.auth_state


@dataclass
class Hub:
    canvas: FakeCanvas
    drive: FakeDrive
    passthrough: CanvasPassthrough
    authenticator: GenericOAuthenticator
    student: FakeUser
    key_path: Path
    secrets: list[str] = field(default_factory=list)

    async def login(self, user: FakeUser | None = None) -> dict[str, Any]:
        """The OAuth dance as the hub's callback handler runs it; returns the auth model."""
        self.canvas.oauth_login_user = user or self.student
        params = {
            "client_id": CLIENT_ID,
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "scope": " ".join(CANVAS_SCOPES),
            "state": "s",
        }
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{self.canvas.base_url}/login/oauth2/auth", params=params, allow_redirects=False
            ) as response,
        ):
            assert response.status == 302
            code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
        handler = SimpleNamespace(get_argument=lambda name, default=None: code)
        model = await self.authenticator.authenticate(handler)
        state = model["auth_state"]
        self.secrets += [state["access_token"], state["refresh_token"]]
        return model


def leaked(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s and s in text]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with FakeCanvas() as canvas, FakeDrive() as drive:
        canvas.register_client(CLIENT_ID, CLIENT_SECRET)
        student = canvas.add_user("Ada Student", login_id="ada")
        key = drive.service_account_key()
        key_path = tmp_path / "drive-sa.json"
        key_path.write_text(json.dumps(key))
        # Today's path, kept for hubs that choose it: Google tokens in auth_state and servers.
        passthrough = CanvasPassthrough(
            canvas.base_url, google_service_account_key=key_path, drive_token_to_servers=True
        )
        c = Config()
        passthrough.configure(
            c, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, oauth_callback_url=CALLBACK
        )
        c.GenericOAuthenticator.enable_pkce = False  # no browser cookie here; e2e covers PKCE
        authenticator = GenericOAuthenticator(config=c)
        yield Hub(
            canvas,
            drive,
            passthrough,
            authenticator,
            student,
            key_path,
            secrets=[CLIENT_SECRET, key["private_key"].split("\n")[1]],
        )


def canvas_posts(canvas: FakeCanvas) -> int:
    return sum(1 for r in canvas.requests if r.is_oauth_token_request)


# --- login ------------------------------------------------------------------------------


async def test_login_stores_tokens_issue_times_and_a_google_token(hub: Hub) -> None:
    before = time.time()
    model = await hub.login()
    state = model["auth_state"]
    assert model["name"] == "ada"
    assert hub.canvas.authenticate(state["access_token"]) is hub.student
    assert state["refresh_token"]
    assert before <= state["token_response"][OBTAINED_AT_KEY] <= time.time()
    section = state[AUTH_STATE_KEY]
    assert section["canvas_base_url"] == hub.canvas.base_url
    assert section["canvas_expires_at"] == pytest.approx(before + 3600, abs=5)
    google = section["google"]
    assert google["access_token"] in hub.drive.tokens  # a real token of the fake's token endpoint
    assert google["expires_at"] > time.time() + 3000
    assert google["service_account_email"] == json.loads(hub.key_path.read_text())["client_email"]
    # The token request carried replace_tokens and the scopes were granted as asked.
    record = hub.canvas.tokens[state["access_token"]]
    assert record.scopes == frozenset(CANVAS_SCOPES)


async def test_one_google_token_serves_every_user(hub: Hub) -> None:
    other = hub.canvas.add_user("Bo", login_id="bo")
    first = await hub.login()
    second = await hub.login(other)
    assert (
        first["auth_state"][AUTH_STATE_KEY]["google"]["access_token"]
        == second["auth_state"][AUTH_STATE_KEY]["google"]["access_token"]
    )
    assert len(hub.drive.token_requests) == 1


async def test_replace_tokens_revokes_the_previous_login(hub: Hub) -> None:
    first = (await hub.login())["auth_state"]["access_token"]
    second = (await hub.login())["auth_state"]["access_token"]
    assert hub.canvas.authenticate(second) is hub.student
    with pytest.raises(Exception, match="Revoked|Invalid"):
        hub.canvas.authenticate(first)


# --- refresh ------------------------------------------------------------------------------


async def test_refresh_keeps_a_fresh_token_and_makes_no_token_request(hub: Hub) -> None:
    state = (await hub.login())["auth_state"]
    posts = canvas_posts(hub.canvas)
    result = await hub.authenticator.refresh_user(HubUser("ada", state))
    assert isinstance(result, dict)
    assert result["auth_state"]["access_token"] == state["access_token"]
    assert canvas_posts(hub.canvas) == posts
    # The issue time survives refreshes that kept the token.
    assert (
        result["auth_state"]["token_response"][OBTAINED_AT_KEY]
        == state["token_response"][OBTAINED_AT_KEY]
    )


async def test_token_near_expiry_is_renewed_before_canvas_rejects_it(hub: Hub) -> None:
    state = (await hub.login())["auth_state"]
    old_token = state["access_token"]
    # Obtained 50 minutes ago: 10 minutes left, inside the 15-minute margin, still valid.
    state["token_response"][OBTAINED_AT_KEY] -= 3000
    state[AUTH_STATE_KEY]["canvas_expires_at"] -= 3000
    before_requests = len(hub.canvas.requests)
    result = await hub.authenticator.refresh_user(HubUser("ada", state))
    assert isinstance(result, dict)
    new_state = result["auth_state"]
    assert new_state["access_token"] != old_token
    assert hub.canvas.authenticate(new_state["access_token"]) is hub.student
    assert new_state["refresh_token"] == state["refresh_token"]  # Canvas does not rotate it
    assert new_state["token_response"][OBTAINED_AT_KEY] == pytest.approx(time.time(), abs=5)
    assert new_state[AUTH_STATE_KEY]["canvas_expires_at"] > time.time() + 3000
    # Proactive: the old token was never sent and refused first.
    assert not [r for r in hub.canvas.requests[before_requests:] if r.status == 401]


async def test_token_canvas_expired_early_is_renewed_by_oauthenticator(hub: Hub) -> None:
    state = (await hub.login())["auth_state"]
    hub.canvas.expire_token(state["access_token"])  # our stamps still say "fresh"
    result = await hub.authenticator.refresh_user(HubUser("ada", state))
    assert isinstance(result, dict)
    assert hub.canvas.authenticate(result["auth_state"]["access_token"]) is hub.student
    assert (
        result["auth_state"]["token_response"][OBTAINED_AT_KEY]
        > (state["token_response"][OBTAINED_AT_KEY])
    )


async def test_revoked_refresh_token_asks_for_a_new_login_and_says_why(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    state = (await hub.login())["auth_state"]
    hub.canvas.revoke_token(state["access_token"])  # revokes the whole grant, as Canvas does
    state[AUTH_STATE_KEY]["canvas_expires_at"] = time.time() + 60
    with caplog.at_level(logging.DEBUG):
        result = await hub.authenticator.refresh_user(HubUser("ada", state))
    assert result is False
    assert "Canvas refused to renew ada's login" in caplog.text
    assert "refresh_token not found" in caplog.text
    assert leaked(caplog.text, hub.secrets) == []


async def test_user_without_auth_state_must_log_in_again(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        assert await hub.authenticator.refresh_user(HubUser("bo", None)) is False
    assert "user bo has no auth_state" in caplog.text


# --- Google Drive ---------------------------------------------------------------------


async def test_refresh_renews_a_google_token_near_expiry(hub: Hub) -> None:
    state = (await hub.login())["auth_state"]
    old = state[AUTH_STATE_KEY]["google"]
    minter = hub.passthrough.google
    assert minter is not None and minter._current is not None
    # The shared token has 10 minutes left: inside the 15-minute margin.
    minter._current = dataclasses.replace(minter._current, expires_at=time.time() + 600)
    result = await hub.authenticator.refresh_user(HubUser("ada", state))
    assert isinstance(result, dict)
    new = result["auth_state"][AUTH_STATE_KEY]["google"]
    assert new["access_token"] != old["access_token"]
    assert new["access_token"] in hub.drive.tokens
    assert new["obtained_at"] > old["obtained_at"] and new["expires_at"] > time.time() + 3000
    assert len(hub.drive.token_requests) == 2
    # The Canvas token was fresh, so it was kept.
    assert result["auth_state"]["access_token"] == state["access_token"]


async def test_unreadable_key_gives_the_student_a_message_and_the_admin_the_reason(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    hub.key_path.write_text("{not json")
    with caplog.at_level(logging.INFO):
        first = (await hub.login())["auth_state"]
        second = (await hub.login())["auth_state"]
    assert first[AUTH_STATE_KEY]["google"] == {"error": DRIVE_NOT_SET_UP}
    assert second[AUTH_STATE_KEY]["google"] == {"error": DRIVE_NOT_SET_UP}
    assert hub.canvas.authenticate(second["access_token"])  # Canvas login is unaffected
    errors = [r for r in caplog.records if "Google Drive tokens cannot be minted" in r.message]
    assert len(errors) == 1  # not once per user and refresh
    assert str(hub.key_path) in errors[0].message and "not valid JSON" in errors[0].message


async def test_missing_key_file_and_refused_key(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    missing = CanvasPassthrough(
        hub.canvas.base_url,
        google_service_account_key="/nonexistent",
        drive_token_to_servers=True,
    )
    assert missing.google is not None and "does not exist" in (missing.google.check() or "")
    state = {"token_response": {"expires_in": 3600}}
    with caplog.at_level(logging.INFO):
        result = await missing.modify_auth_state_hook(hub.authenticator, state)
    assert result[AUTH_STATE_KEY]["google"] == {"error": DRIVE_NOT_SET_UP}
    # A well-formed key that Google refuses (deleted service account): invalid_grant.
    other_drive_key = json.loads(hub.key_path.read_text())
    other_drive_key["private_key_id"] = "deleted-key"
    hub.key_path.write_text(json.dumps(other_drive_key))
    with caplog.at_level(logging.INFO):
        state2 = (await hub.login())["auth_state"]
    assert state2[AUTH_STATE_KEY]["google"] == {"error": DRIVE_NOT_SET_UP}
    assert "Google refused to issue a token" in caplog.text
    assert leaked(caplog.text, hub.secrets) == []


# --- the spawner hook -----------------------------------------------------------------


def spawner(authenticator: Any, env: dict[str, str] | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        user=SimpleNamespace(name="ada"),
        environment=dict(env or {}),
        authenticator=authenticator,
        log=logging.getLogger("test.spawner"),
    )


async def test_auth_state_hook_puts_tokens_in_the_environment(hub: Hub) -> None:
    state = (await hub.login())["auth_state"]
    config_env = {"LANG": "C.UTF-8"}
    s = spawner(hub.authenticator, config_env)
    await hub.passthrough.auth_state_hook(s, state)
    assert s.environment["CANVAS_BASE_URL"] == hub.canvas.base_url
    assert s.environment["CANVAS_ACCESS_TOKEN"] == state["access_token"]
    google = state[AUTH_STATE_KEY]["google"]
    assert s.environment["GOOGLE_DRIVE_ACCESS_TOKEN"] == google["access_token"]
    assert s.environment["GOOGLE_SERVICE_ACCOUNT_EMAIL"] == google["service_account_email"]
    assert s.environment["LANG"] == "C.UTF-8" and HUB_STATUS_ENV not in s.environment
    assert config_env == {"LANG": "C.UTF-8"}  # the configured dict was not mutated
    assert "private_key" not in json.dumps(s.environment)


async def test_auth_state_hook_without_a_canvas_login(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    s = spawner(hub.authenticator)
    with caplog.at_level(logging.INFO):
        await hub.passthrough.auth_state_hook(s, None)
    assert s.environment == {HUB_STATUS_ENV: HUB_STATUS_NO_CANVAS_LOGIN}
    assert "ada has no Canvas login in auth_state" in caplog.text
    hub.authenticator.enable_auth_state = False
    s = spawner(hub.authenticator)
    with caplog.at_level(logging.INFO):
        await hub.passthrough.auth_state_hook(s, None)
    assert s.environment == {HUB_STATUS_ENV: HUB_STATUS_AUTH_STATE_DISABLED}
    assert "auth_state is disabled" in caplog.text


async def test_auth_state_hook_mints_google_when_the_stored_token_is_stale(hub: Hub) -> None:
    state = (await hub.login())["auth_state"]
    state[AUTH_STATE_KEY]["google"]["expires_at"] = time.time() + 10
    assert hub.passthrough.google is not None
    hub.passthrough.google._current = None
    s = spawner(hub.authenticator)
    await hub.passthrough.auth_state_hook(s, state)
    fresh = s.environment["GOOGLE_DRIVE_ACCESS_TOKEN"]
    assert fresh != state[AUTH_STATE_KEY]["google"]["access_token"]
    assert fresh in hub.drive.tokens


async def test_tokens_can_be_kept_out_of_the_environment(hub: Hub) -> None:
    state = (await hub.login())["auth_state"]
    quiet = CanvasPassthrough(
        hub.canvas.base_url,
        google_service_account_key=hub.key_path,
        export_tokens_to_env=False,
        drive_token_to_servers=True,
    )
    s = spawner(hub.authenticator)
    await quiet.auth_state_hook(s, state)
    assert "CANVAS_ACCESS_TOKEN" not in s.environment
    assert "GOOGLE_DRIVE_ACCESS_TOKEN" not in s.environment
    assert s.environment["CANVAS_BASE_URL"] == hub.canvas.base_url


# --- configure() ------------------------------------------------------------------------


def test_configure_sets_everything_and_keeps_what_the_admin_set(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    calls: list[str] = []

    def admin_modify(authenticator: Any, auth_state: dict[str, Any]) -> dict[str, Any]:
        calls.append("modify:" + str(AUTH_STATE_KEY in auth_state))
        return {**auth_state, "groups": ["course::1"]}

    def admin_spawn_hook(spawner: Any, auth_state: Any) -> None:
        calls.append("spawn")

    c = Config()
    c.GenericOAuthenticator.username_claim = "primary_email"
    c.GenericOAuthenticator.token_params = {"purpose": "JupyterHub"}
    c.GenericOAuthenticator.modify_auth_state_hook = admin_modify
    c.GenericOAuthenticator.auth_refresh_age = 3600
    c.Spawner.auth_state_hook = admin_spawn_hook
    c.JupyterHub.load_roles = [
        {"name": "server", "scopes": ["users:activity!user", "access:servers!server"]},
        {"name": "graders", "scopes": ["list:users"], "users": ["grace"]},
    ]
    passthrough = CanvasPassthrough("https://canvas.example.edu")
    with caplog.at_level(logging.INFO):
        passthrough.configure(c, client_id="id", client_secret="secret")
    auth = c.GenericOAuthenticator
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert auth.authorize_url == "https://canvas.example.edu/login/oauth2/auth"
    assert auth.token_url == "https://canvas.example.edu/login/oauth2/token"
    assert auth.userdata_url == "https://canvas.example.edu/api/v1/users/self/profile"
    assert auth.scope == list(CANVAS_SCOPES)
    assert auth.token_params == {"purpose": "JupyterHub", "replace_tokens": "1"}
    assert auth.username_claim == "primary_email"
    assert auth.enable_auth_state is True
    assert (auth.client_id, auth.client_secret) == ("id", "secret")
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["server"]["scopes"] == [
        "users:activity!user",
        "access:servers!server",
        "admin:auth_state!user",
    ]
    assert roles["user"]["scopes"] == ["self", "admin:auth_state!user"]
    assert roles["graders"]["scopes"] == ["list:users"]
    assert "JUPYTERHUB_CRYPT_KEY is not set" in caplog.text
    assert "auth_refresh_age = 3600" in caplog.text

    import asyncio

    state = asyncio.run(auth.modify_auth_state_hook(None, {"token_response": {}}))
    assert state["groups"] == ["course::1"] and AUTH_STATE_KEY in state
    asyncio.run(c.Spawner.auth_state_hook(spawner(None), None))
    assert calls == ["modify:True", "spawn"]


def test_merge_roles_is_idempotent() -> None:
    once = merge_roles([])
    assert merge_roles(once) == once
    assert {r["name"] for r in once} == {"user", "server"}


def test_hooks_loaded_by_traitlets_share_one_passthrough(tmp_path: Path) -> None:
    """traitlets deep-copies config values; the hooks must still share one token cache."""
    passthrough = CanvasPassthrough(
        "https://canvas.example.edu", google_service_account_key=tmp_path
    )
    c = Config()
    passthrough.configure(c)
    authenticator = GenericOAuthenticator(config=c)
    assert authenticator.modify_auth_state_hook.__self__ is passthrough
    assert authenticator.refresh_user_hook.__self__ is passthrough


# -- secure by default: Drive through the hub's service ---------------------------------------


async def test_with_a_key_no_google_token_reaches_servers_and_the_service_is_registered(
    hub: Hub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secure = CanvasPassthrough(
        hub.canvas.base_url,
        google_service_account_key=hub.key_path,
        service_url="http://127.0.0.1:10199",
        folder_groups={"1secretfolderaaaaaaaa": ["canvas:course:101"]},
    )
    c = Config()
    with caplog.at_level(logging.WARNING):
        secure.configure(c)
    assert not [r for r in caplog.records if "drive_token_to_servers" in r.message]
    (service,) = c.JupyterHub.services
    assert service["name"] == "privatepuller"
    assert service["url"] == "http://127.0.0.1:10199"
    assert service["command"][-2:] == ["-m", "privatepuller.hub.service"]
    settings = json.loads(service["environment"]["PRIVATEPULLER_SERVICE_SETTINGS"])
    assert settings["folder_groups"] == {"1secretfolderaaaaaaaa": ["canvas:course:101"]}
    assert service["environment"]["GOOGLE_APPLICATION_CREDENTIALS"] == str(hub.key_path)
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    # User servers may call the service, and nothing more is granted for it.
    assert "access:services!service=privatepuller" in roles["server"]["scopes"]
    assert "access:services!service=privatepuller" in roles["user"]["scopes"]
    assert roles["privatepuller-service"] == {
        "name": "privatepuller-service",
        "scopes": ["read:users:groups"],
        "services": ["privatepuller"],
    }
    assert c.Spawner.environment["PRIVATEPULLER_SERVICE_URL"] == (
        "http://127.0.0.1:10199/services/privatepuller/"
    )

    # Neither auth_state (which a server's token may read) nor the environment gets a token.
    state = (await hub.login())["auth_state"]
    fresh = await secure.modify_auth_state_hook(hub.authenticator, dict(state))
    assert "google" not in fresh[AUTH_STATE_KEY]
    s = spawner(hub.authenticator)
    await secure.auth_state_hook(s, fresh)
    assert "GOOGLE_DRIVE_ACCESS_TOKEN" not in s.environment
    assert not [t for t in hub.drive.tokens if t in json.dumps(fresh) + str(s.environment)]


async def test_drive_token_to_servers_says_what_any_student_can_then_read(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    c = Config()
    with caplog.at_level(logging.WARNING):
        CanvasPassthrough(
            "https://canvas.example.edu",
            google_service_account_key=hub.key_path,
            drive_token_to_servers=True,
        ).configure(c)
    warnings = [r.message for r in caplog.records if "drive_token_to_servers" in r.message]
    assert len(warnings) == 1
    assert "every course's folders" in warnings[0]
    assert "services" not in c.JupyterHub or not c.JupyterHub.services
