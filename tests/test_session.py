"""The read-only session: GET only, token pinned to its origin, backoff per provider."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from privatepuller.credentials.tokens import StaticToken
from privatepuller.errors import LoginExpired, RateLimited, UnsafeRequest
from privatepuller.http.backoff import Verdict
from privatepuller.http.origin import Origin
from privatepuller.http.session import HTTPStatusError, ReadOnlySession
from privatepuller.providers.canvas.policy import CANVAS_POLICY, classify_canvas
from privatepuller.providers.gdrive.policy import GOOGLE_POLICY

TOKEN = "tok-SECRET-1234"
FAST_CANVAS = CANVAS_POLICY.scaled(0.001)
FAST_GOOGLE = GOOGLE_POLICY.scaled(0.001)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []
        self.url = URL()

    @web.middleware
    async def middleware(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        self.seen.append((request.method, request.path, request.headers.get("Authorization")))
        return await handler(request)


async def start(app: web.Application) -> tuple[web.AppRunner, URL]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, URL(f"http://127.0.0.1:{port}")


@pytest.fixture
async def two_origins():
    """An API origin that redirects downloads to a second origin (a file store)."""
    api_rec, store_rec = Recorder(), Recorder()
    store = web.Application(middlewares=[store_rec.middleware])

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 1000)

    store.router.add_get("/blob", blob)
    store_runner, store_url = await start(store)
    store_rec.url = store_url

    api = web.Application(middlewares=[api_rec.middleware])

    async def download(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(store_url / "blob") + "?sig=abc")

    api.router.add_get("/download", download)

    async def anything(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    api.router.add_route("*", "/anything", anything)
    api_runner, api_url = await start(api)
    yield api_url, api_rec, store_rec
    await api_runner.cleanup()
    await store_runner.cleanup()


def session_for(url: URL, policy=FAST_CANVAS, tokens=None) -> ReadOnlySession:
    return ReadOnlySession(Origin.of(url), tokens or StaticToken(TOKEN), policy)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "post"])
async def test_non_get_methods_raise_before_sending(two_origins, method):
    api_url, api_rec, _ = two_origins
    async with session_for(api_url) as session:
        with pytest.raises(UnsafeRequest):
            async with session.request(method, api_url / "anything"):
                pass
    assert api_rec.seen == []


async def test_get_and_head_are_sent_with_the_token(two_origins):
    api_url, api_rec, _ = two_origins
    async with session_for(api_url) as session:
        data, _ = await session.get_json(api_url / "anything")
        async with session.request("HEAD", api_url / "anything") as response:
            assert response.status == 200
    assert data == {"ok": True}
    assert api_rec.seen == [
        ("GET", "/anything", f"Bearer {TOKEN}"),
        ("HEAD", "/anything", f"Bearer {TOKEN}"),
    ]


async def test_redirect_to_another_origin_drops_authorization(two_origins, tmp_path: Path):
    api_url, api_rec, store_rec = two_origins
    async with session_for(api_url) as session:
        size = await session.download(api_url / "download", tmp_path / "f")
    assert size == 1000 and (tmp_path / "f").read_bytes() == b"x" * 1000
    assert api_rec.seen == [("GET", "/download", f"Bearer {TOKEN}")]
    assert store_rec.seen == [("GET", "/blob", None)]
    assert list(tmp_path.iterdir()) == [tmp_path / "f"]  # no temporary file left behind


async def test_token_is_not_sent_to_other_origins(two_origins):
    api_url, _, store_rec = two_origins
    async with (
        session_for(api_url) as session,
        session.request("GET", store_rec.url / "blob") as response,
    ):
        assert response.status == 200
    assert store_rec.seen == [("GET", "/blob", None)]


def test_plain_http_is_refused_except_on_loopback():
    with pytest.raises(UnsafeRequest):
        Origin.of("http://canvas.example.edu").require_secure()
    assert Origin.of("http://127.0.0.1:8080").require_secure().is_loopback
    assert Origin.of("https://canvas.example.edu").require_secure()


@pytest.mark.parametrize("where", ["http://127.0.0.1:{port}/blob", "http://localhost:{port}/blob"])
async def test_a_real_provider_cannot_send_the_server_to_itself(two_origins, where: str) -> None:
    """A file `url` or a redirect from an https provider that names this machine (say, the
    Jupyter server's own port) is refused before it is sent; loopback origins (the fakes)
    may still redirect to loopback, as every other test shows."""
    _, _, store_rec = two_origins
    url = URL(where.format(port=store_rec.url.port))
    async with session_for(URL("https://canvas.example.edu")) as session:
        with pytest.raises(UnsafeRequest, match="this server itself"):
            async with session.request("GET", url):
                pass
    assert store_rec.seen == []


def test_origin_normalises_case_ports_and_trailing_dots():
    assert Origin.of("https://Canvas.Example.EDU./x") == Origin.of("https://canvas.example.edu:443")
    assert Origin.of("https://canvas.example.edu:8443") != Origin.of("https://canvas.example.edu")
    with pytest.raises(UnsafeRequest):
        Origin.of("https://canvas.example.edu@evil.example/")


def _flaky_app(statuses: list[tuple[int, dict[str, str], bytes]], hits: list[int]):
    async def handler(request: web.Request) -> web.Response:
        hits.append(1)
        if statuses:
            status, headers, body = statuses.pop(0)
            return web.Response(status=status, headers=headers, body=body)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/x", handler)
    return app


@pytest.mark.parametrize(
    "status,body",
    [(403, b"403 Forbidden (Rate Limit Exceeded)\n"), (429, b""), (502, b"<html>bad</html>")],
)
async def test_canvas_throttling_and_server_errors_are_retried(status, body):
    hits: list[int] = []
    runner, url = await start(_flaky_app([(status, {}, body)] * 2, hits))
    try:
        async with session_for(url) as session:
            data, _ = await session.get_json(url / "x")
            assert data == {"ok": True}
            assert session.stats.retries == 2
    finally:
        await runner.cleanup()
    assert len(hits) == 3


async def test_canvas_permission_403_is_not_retried():
    hits: list[int] = []
    body = b'{"status":"unauthorized"}'
    runner, url = await start(_flaky_app([(403, {}, body)], hits))
    try:
        async with session_for(url) as session:
            with pytest.raises(HTTPStatusError) as info:
                await session.get_json(url / "x")
    finally:
        await runner.cleanup()
    assert info.value.status == 403 and len(hits) == 1


async def test_expired_canvas_token_is_a_clear_error_without_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")  # under a hub
    hits: list[int] = []
    expired = (401, {"WWW-Authenticate": 'Bearer realm="canvas-lms"'}, b"{}")
    runner, url = await start(_flaky_app([expired, expired], hits))
    try:
        async with session_for(url) as session:
            with pytest.raises(LoginExpired) as info:
                await session.get_json(url / "x")
    finally:
        await runner.cleanup()
    assert len(hits) == 1  # a static token cannot renew: no pointless retry
    assert TOKEN not in str(info.value) and "log in again" in str(info.value)


async def test_renewable_token_is_renewed_once_after_401():
    class Renewing:
        def __init__(self) -> None:
            self.value, self.renewals = "old", 0

        async def token(self) -> str:
            return self.value

        async def renew(self) -> bool:
            self.renewals += 1
            self.value = "new"
            return True

    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != "Bearer new":
            return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/x", handler)
    runner, url = await start(app)
    tokens = Renewing()
    try:
        async with session_for(url, tokens=tokens) as session:
            await session.get_json(url / "x")
    finally:
        await runner.cleanup()
    assert seen == ["Bearer old", "Bearer new"] and tokens.renewals == 1


async def test_retry_after_is_honoured_and_budget_exhaustion_is_rate_limited():
    hits: list[int] = []
    throttled = (429, {"Retry-After": "0.05"}, b"")
    runner, url = await start(_flaky_app([throttled] * 50, hits))
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with session_for(url, policy=FAST_GOOGLE) as session:
            with pytest.raises(RateLimited) as info:
                await session.get_json(url / "x")
    finally:
        await runner.cleanup()
    assert len(hits) == FAST_GOOGLE.max_attempts
    # Retry-After (0.05 s) replaced the (much shorter) scaled exponential delay each time.
    assert loop.time() - started >= 0.05 * (FAST_GOOGLE.max_attempts - 1)
    assert "try again in a few minutes" in str(info.value)


def test_google_classifier_retries_only_rate_limit_403s():
    from privatepuller.providers.gdrive.policy import classify_google

    def body(reason: str) -> bytes:
        return (
            b'{"error":{"errors":[{"domain":"usageLimits","reason":"%s"}],"code":403}}'
            % reason.encode()
        )

    assert classify_google(403, {}, body("userRateLimitExceeded")) is Verdict.THROTTLED
    assert classify_google(403, {}, body("rateLimitExceeded")) is Verdict.THROTTLED
    assert classify_google(403, {}, body("downloadQuotaExceeded")) is Verdict.FAIL
    assert classify_google(403, {}, body("insufficientFilePermissions")) is Verdict.FAIL
    assert classify_google(404, {}, b"{}") is Verdict.FAIL
    assert classify_google(400, {}, b"{}") is Verdict.FAIL
    assert classify_google(429, {}, b"") is Verdict.THROTTLED
    assert classify_google(502, {}, b"<html>") is Verdict.SERVER_ERROR
    assert classify_canvas(401, {}, b"") is Verdict.FAIL  # permission 401: no WWW-Authenticate


def test_backoff_is_exponential_truncated_and_jittered():
    delays = [GOOGLE_POLICY.delay(n) for n in range(1, 12)]
    assert 1 <= delays[0] <= 2 and 2 <= delays[1] <= 3 and 4 <= delays[2] <= 5
    assert all(d <= GOOGLE_POLICY.max_delay + GOOGLE_POLICY.jitter for d in delays)
    assert GOOGLE_POLICY.delay(3, retry_after="7") == 7.0


async def test_concurrency_follows_canvas_remaining_budget_seen_on_a_redirect(
    tmp_path: Path,
) -> None:
    # Canvas reports its budget on the 302 of a download; the file store reports nothing.
    store = web.Application()

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=b"data")

    store.router.add_get("/blob", blob)
    store_runner, store_url = await start(store)
    remaining = ["700"]

    async def download(request: web.Request) -> web.Response:
        raise web.HTTPFound(
            str(store_url / "blob"), headers={"X-Rate-Limit-Remaining": remaining[0]}
        )

    api = web.Application()
    api.router.add_get("/download", download)
    api_runner, api_url = await start(api)
    try:
        async with session_for(api_url) as session:
            await session.download(api_url / "download", tmp_path / "a")
            assert session._limit.limit == session._limit.maximum == 8  # 700 ÷ 50 ≥ 8
            remaining[0] = "120"
            await session.download(api_url / "download", tmp_path / "b")
            assert session._limit.limit == 2  # 120 ÷ 50 requests paid for up front
            remaining[0] = "10"
            await session.download(api_url / "download", tmp_path / "c")
            assert session._limit.limit == 1
    finally:
        await api_runner.cleanup()
        await store_runner.cleanup()
