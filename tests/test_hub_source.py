"""The server side: HubCredentialSource reads the user's auth_state from the hub at each sync.

A stub of JupyterHub's `GET /hub/api/users/{name}` stands in for the hub here (its real
behaviour, roles included, is exercised in test_e2e_hub.py); Canvas is the fake Canvas.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from conftest import CanvasWorld
from privatepuller.credentials.auth_state import (
    AUTH_STATE_KEY,
    HUB_STATUS_AUTH_STATE_DISABLED,
    HUB_STATUS_ENV,
)
from privatepuller.credentials.hub import (
    AUTH_STATE_DISABLED,
    NO_CANVAS_LOGIN,
    HubCredentialSource,
    default_credential_source,
)
from privatepuller.credentials.sources import ChainedCredentialSource, EnvCredentialSource
from privatepuller.errors import ConfigurationError, LoginExpired, NotConfigured
from privatepuller.hub.passthrough import DRIVE_NOT_SET_UP
from privatepuller.pull import pull

SERVER_TOKEN = "server-api-token-0123456789abcdef"


@dataclass
class StubHub:
    """`GET /hub/api/users/{name}` as JupyterHub 6 answers a server token."""

    url: str = ""
    auth_state: dict[str, Any] | None = None
    readable: bool = True  # False: the token lacks admin:auth_state, so the key is absent
    status: int = 200
    asked: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.asked.append(request.raw_path)
        self.authorizations.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"token {SERVER_TOKEN}":
            return web.json_response({"status": 403}, status=403)
        if self.status != 200:
            return web.json_response({"status": self.status, "auth_state": "x"}, status=self.status)
        model: dict[str, Any] = {"kind": "user", "name": request.match_info["name"]}
        if self.readable:
            model["auth_state"] = self.auth_state
        return web.json_response(model)

    def env(self, user: str = "ada", **extra: str) -> dict[str, str]:
        return {
            "JUPYTERHUB_API_URL": f"{self.url}/hub/api",
            "JUPYTERHUB_API_TOKEN": SERVER_TOKEN,
            "JUPYTERHUB_USER": user,
            **extra,
        }


def canvas_state(world: CanvasWorld, token: str, **google: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"canvas_base_url": world.canvas.base_url}
    if google:
        section["google"] = google
    return {"access_token": token, "refresh_token": "r", AUTH_STATE_KEY: section}


@asynccontextmanager
async def serve(hub: StubHub, tls: ssl.SSLContext | None = None) -> AsyncIterator[StubHub]:
    app = web.Application()
    app.router.add_get("/hub/api/users/{name}", hub.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    hub.url = f"{'https' if tls else 'http'}://127.0.0.1:{sock.getsockname()[1]}"
    await web.SockSite(runner, sock, ssl_context=tls).start()
    try:
        yield hub
    finally:
        await runner.cleanup()


@pytest.fixture
async def stub_hub() -> AsyncIterator[StubHub]:
    async with serve(StubHub()) as hub:
        yield hub


@dataclass(frozen=True)
class InternalSSL:
    """Certificates as JupyterHub's internal_ssl makes them (with certipy): one CA, the
    hub's pair, and the user server's pair named in JUPYTERHUB_SSL_*."""

    hub_key: str
    hub_cert: str
    ca: str
    server_env: dict[str, str]


@pytest.fixture(scope="module")
def internal_ssl(tmp_path_factory: pytest.TempPathFactory) -> InternalSSL:
    from certipy import Certipy

    certipy = Certipy(store_dir=str(tmp_path_factory.mktemp("internal-ssl")))
    certipy.create_ca("hub-ca")
    names = ["IP:127.0.0.1", "DNS:localhost"]
    hub = certipy.create_signed_pair("hub-internal", "hub-ca", alt_names=names)["files"]
    server = certipy.create_signed_pair("user-ada", "hub-ca", alt_names=names)["files"]
    env = {
        "JUPYTERHUB_SSL_KEYFILE": server["key"],
        "JUPYTERHUB_SSL_CERTFILE": server["cert"],
        "JUPYTERHUB_SSL_CLIENT_CA": server["ca"],
    }
    return InternalSSL(hub["key"], hub["cert"], hub["ca"], env)


@pytest.fixture
async def tls_hub(internal_ssl: InternalSSL) -> AsyncIterator[StubHub]:
    """The stub hub behind internal_ssl: its CA's certificate, client certificates required."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=internal_ssl.ca)
    tls.verify_mode = ssl.CERT_REQUIRED
    tls.load_cert_chain(internal_ssl.hub_cert, internal_ssl.hub_key)
    async with serve(StubHub(), tls) as hub:
        yield hub


async def pull_with(world: CanvasWorld, credentials: Any, name: str = "x") -> Any:
    return await pull(
        world.url(),
        world.workdir / name,
        credentials=credentials,
        config=dataclasses.replace(world.config, backoff_scale=0.001),
    )


async def test_reads_the_users_auth_state_with_the_server_token(
    world: CanvasWorld, stub_hub: StubHub
) -> None:
    token = world.canvas.issue_token(world.student)
    stub_hub.auth_state = canvas_state(world, token)
    source = HubCredentialSource(stub_hub.env("ada@example.edu"), renew_delay=0)
    credentials = await source.canvas()
    assert credentials is not None
    assert str(credentials.origin) == world.canvas.base_url
    assert await credentials.tokens.token() == token
    # /users/{name}, URL-encoded, never /user (which hides auth_state: jupyterhub#5103).
    assert stub_hub.asked == ["/hub/api/users/ada%40example.edu"]
    assert stub_hub.authorizations == [f"token {SERVER_TOKEN}"]
    assert token not in repr(credentials) and token not in repr(source)


async def test_pull_with_the_hubs_token_then_renewal_after_canvas_expired_it(
    world: CanvasWorld, stub_hub: StubHub
) -> None:
    old = world.canvas.issue_token(world.student)
    stub_hub.auth_state = canvas_state(world, old)
    source = HubCredentialSource(stub_hub.env(), renew_delay=0, cache_seconds=600)
    credentials = ChainedCredentialSource(source, EnvCredentialSource({}))
    await pull_with(world, credentials)
    # Canvas expires the token early; meanwhile the hub has renewed it (refresh_user).
    world.canvas.expire_token(old)
    new = world.canvas.issue_token(world.student)
    stub_hub.auth_state = canvas_state(world, new)
    asked = len(stub_hub.asked)
    world.course.files.add_file("Week 2/new.txt", b"new")
    report = await pull_with(world, credentials)
    assert "Week 2/new.txt" in report.added
    # The cached answer still had the old token: Canvas refused it (two requests were in
    # flight at once), and the hub was asked exactly once more.
    refused = [r for r in world.canvas.requests if r.status == 401]
    assert refused and all(r.authorization == f"Bearer {old}" for r in refused)
    assert len(stub_hub.asked) == asked + 1
    api = [r for r in world.canvas.requests if r.path_qs.startswith("/api/")]
    assert api[-1].authorization == f"Bearer {new}"


async def test_hub_that_cannot_renew_means_log_in_again(
    world: CanvasWorld, stub_hub: StubHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = world.canvas.issue_token(world.student)
    world.canvas.expire_token(token)
    stub_hub.auth_state = canvas_state(world, token)  # the hub's refresh failed: same token
    source = HubCredentialSource(stub_hub.env(), renew_delay=0)
    monkeypatch.setenv("JUPYTERHUB_API_URL", stub_hub.env()["JUPYTERHUB_API_URL"])
    with pytest.raises(LoginExpired, match="log in\\s+again"):
        await pull_with(world, source)
    assert len(stub_hub.asked) == 2  # the sync's question, and exactly one more


async def test_concurrent_401s_ask_the_hub_once(world: CanvasWorld, stub_hub: StubHub) -> None:
    stub_hub.auth_state = canvas_state(world, "old")
    source = HubCredentialSource(stub_hub.env(), renew_delay=0.05)
    credentials = await source.canvas()
    assert credentials is not None
    stub_hub.auth_state = canvas_state(world, "new")
    results = await asyncio.gather(*(credentials.tokens.renew() for _ in range(8)))
    assert results == [True] * 8
    assert await credentials.tokens.token() == "new"
    assert len(stub_hub.asked) == 2
    # A failed renewal is shared the same way, and a later 401 may ask again.
    results = await asyncio.gather(*(credentials.tokens.renew() for _ in range(8)))
    assert results == [False] * 8 and len(stub_hub.asked) == 3


async def test_without_the_auth_state_scope_the_environment_is_used(
    world: CanvasWorld, stub_hub: StubHub, caplog: pytest.LogCaptureFixture
) -> None:
    stub_hub.readable = False
    env = stub_hub.env(
        CANVAS_BASE_URL=world.canvas.base_url, CANVAS_ACCESS_TOKEN=world.student.token
    )
    source = default_credential_source(env)
    assert isinstance(source, ChainedCredentialSource)
    with caplog.at_level(logging.INFO):
        await pull_with(world, source, "a")
        await pull_with(world, source, "b")
    warnings = [r.message for r in caplog.records if "admin:auth_state!user" in r.message]
    assert len(warnings) == 1  # said once, not at every sync
    api = [r for r in world.canvas.requests if r.path_qs.startswith("/api/")]
    assert api[-1].authorization == f"Bearer {world.student.token}"


async def test_user_who_never_logged_in_with_canvas_gets_a_clear_message(
    world: CanvasWorld, stub_hub: StubHub
) -> None:
    stub_hub.auth_state = None
    with pytest.raises(NotConfigured) as error:
        await pull_with(world, default_credential_source(stub_hub.env()))
    assert error.value.message == NO_CANVAS_LOGIN
    assert "log in again with Canvas" in NO_CANVAS_LOGIN
    # A token the admin set by hand still works for such a user.
    env = stub_hub.env(
        CANVAS_BASE_URL=world.canvas.base_url, CANVAS_ACCESS_TOKEN=world.student.token
    )
    await pull_with(world, default_credential_source(env))


async def test_auth_state_disabled_on_the_hub_is_explained(
    world: CanvasWorld, stub_hub: StubHub
) -> None:
    stub_hub.auth_state = None
    env = stub_hub.env(**{HUB_STATUS_ENV: HUB_STATUS_AUTH_STATE_DISABLED})
    with pytest.raises(NotConfigured) as error:
        await pull_with(world, default_credential_source(env))
    assert error.value.message == AUTH_STATE_DISABLED
    # Same when the server cannot ask the hub at all: the spawn-time status explains it.
    stub_hub.readable = False
    with pytest.raises(NotConfigured, match="auth_state is turned off"):
        await pull_with(world, default_credential_source(env))


async def test_hub_errors_fall_back_to_the_environment_without_logging_secrets(
    world: CanvasWorld, stub_hub: StubHub, caplog: pytest.LogCaptureFixture
) -> None:
    stub_hub.status = 500
    env = stub_hub.env(
        CANVAS_BASE_URL=world.canvas.base_url, CANVAS_ACCESS_TOKEN=world.student.token
    )
    with caplog.at_level(logging.DEBUG):
        await pull_with(world, default_credential_source(env), "a")
        unreachable = dict(env, JUPYTERHUB_API_URL="http://127.0.0.1:9/hub/api")
        await pull_with(world, default_credential_source(unreachable), "b")
    assert "the hub answered HTTP 500" in caplog.text
    assert "could not ask the hub" in caplog.text
    assert SERVER_TOKEN not in caplog.text and world.student.token not in caplog.text


async def test_google_token_from_the_hub(world: CanvasWorld, stub_hub: StubHub) -> None:
    stub_hub.auth_state = canvas_state(
        world,
        "canvas-token",
        access_token="ya29.hub-minted",
        expires_at=1e12,
        service_account_email="puller@project.iam.gserviceaccount.com",
    )
    source = HubCredentialSource(stub_hub.env(GOOGLE_DRIVE_API_URL="http://127.0.0.1:1/drive/v3"))
    google = await source.google()
    assert google is not None
    assert await google.tokens.token() == "ya29.hub-minted"
    assert google.account_email == "puller@project.iam.gserviceaccount.com"
    assert str(google.api_url) == "http://127.0.0.1:1/drive/v3/"


async def test_google_problem_on_the_hub_reaches_the_student(
    world: CanvasWorld, stub_hub: StubHub
) -> None:
    stub_hub.auth_state = canvas_state(world, "canvas-token", error=DRIVE_NOT_SET_UP)
    with pytest.raises(ConfigurationError) as error:
        await HubCredentialSource(stub_hub.env()).google()
    assert error.value.message == DRIVE_NOT_SET_UP
    # A Drive token the admin set by hand in the environment is used instead.
    env = stub_hub.env(GOOGLE_DRIVE_ACCESS_TOKEN="ya29.manual")
    assert await HubCredentialSource(env).google() is None
    google = await default_credential_source(env).google()
    assert google is not None and await google.tokens.token() == "ya29.manual"


def test_outside_a_hub_only_the_environment_is_used() -> None:
    source = default_credential_source({"CANVAS_ACCESS_TOKEN": "t"})
    assert isinstance(source, EnvCredentialSource)
    assert not HubCredentialSource({}).configured


async def test_unconfigured_hub_source_stands_aside() -> None:
    source = HubCredentialSource({})
    assert await source.canvas() is None and await source.google() is None


async def test_a_hub_with_internal_ssl_is_asked_with_the_servers_certificate(
    world: CanvasWorld, tls_hub: StubHub, internal_ssl: InternalSSL
) -> None:
    token = world.canvas.issue_token(world.student)
    tls_hub.auth_state = canvas_state(world, token)
    source = HubCredentialSource(tls_hub.env(**internal_ssl.server_env), renew_delay=0)
    credentials = await source.canvas()
    assert credentials is not None and await credentials.tokens.token() == token
    assert tls_hub.asked == ["/hub/api/users/ada"]


async def test_internal_ssl_without_usable_certificates_falls_back_and_says_why(
    world: CanvasWorld,
    tls_hub: StubHub,
    internal_ssl: InternalSSL,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tls_hub.auth_state = canvas_state(world, "from-the-hub")
    missing = {**internal_ssl.server_env, "JUPYTERHUB_SSL_CERTFILE": "/nonexistent/user.crt"}
    for env, why in [
        ({}, "unreachable"),  # no client certificate: the hub's CA is not trusted either
        (missing, "internal_ssl"),
    ]:
        caplog.clear()
        server_env = tls_hub.env(
            CANVAS_BASE_URL=world.canvas.base_url, CANVAS_ACCESS_TOKEN="from-env", **env
        )
        with caplog.at_level(logging.WARNING, logger="privatepuller"):
            assert await HubCredentialSource(server_env).canvas() is None
        credentials = await default_credential_source(server_env).canvas()
        assert credentials is not None and await credentials.tokens.token() == "from-env"
        text = caplog.text
        assert ("could not ask the hub" if why == "unreachable" else "internal_ssl") in text
    assert tls_hub.asked == []  # the TLS handshake failed before any request reached it
