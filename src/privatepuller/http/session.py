"""The one HTTP session type that carries a credential.

`ReadOnlySession` can only send GET and HEAD: anything else raises before a byte leaves the
machine. It follows redirects itself, attaching `Authorization` only when a hop's origin is the
credential's origin (a download may redirect to a file store with a signed URL), refuses
plain http except to loopback, and retries according to its provider's `BackoffPolicy`.

Every other host it is pointed at must resolve to public addresses (`addresses.py`), and
every body must keep coming at a minimum pace (`min_throughput` bytes a second, averaged over
`throughput_window` seconds): a server that trickles a body, or its headers, counts as stalled.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from ..errors import (
    DiskFull,
    DownloadFailed,
    ListingFailed,
    LoginExpired,
    PullError,
    RateLimited,
    UnsafeRequest,
    hub_or_alone,
)
from ..sizes import size_text
from .addresses import GuardedResolver, check_literal_host
from .backoff import AdaptiveLimit, BackoffPolicy, Verdict
from .origin import Origin, safe_url

SAFE_METHODS = frozenset({"GET", "HEAD"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
ERROR_BODY_LIMIT = 64 * 1024
# Listing pages are a few hundred kB to a megabyte (100 to 1000 entries).
JSON_BODY_LIMIT = 32 * 1024 * 1024

# A token refused even after a renewal: under a hub, logging in again gets a fresh one; on
# its own, the token is one the person set (a provider may say which, and where to make one).
LOGIN_EXPIRED = (
    "Your login has expired or was revoked. Log out of the hub and log in again, then click "
    "the link once more."
)
TOKEN_REFUSED = (
    "The access token was refused: it has expired, was revoked, or is not valid here. Set a "
    "new one, then try again."
)
CHUNK_SIZE = 256 * 1024
TRANSFER_ERRORS = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError)
# Requests at once to one origin (a throttled session lowers its own limit for a while).
DEFAULT_CONCURRENCY = 8
# A body slower than this on average over the window counts as stalled (and is retried).
DEFAULT_MIN_THROUGHPUT = 1024.0  # bytes per second
DEFAULT_THROUGHPUT_WINDOW = 30.0  # seconds


def read_timeout_of(seconds: float) -> aiohttp.ClientTimeout:
    """No total limit (large files take long); a stalled connection fails after `seconds`."""
    return aiohttp.ClientTimeout(total=None, sock_connect=min(30.0, seconds), sock_read=seconds)


DEFAULT_TIMEOUT = read_timeout_of(60.0)

# Called while we wait out a throttle: (seconds, provider name). The server shows it to students.
WaitCallback = Callable[[float, str], None]


class TokenProvider(Protocol):
    """Where a session gets the token it sends to its origin."""

    async def token(self) -> str:
        """The current access token."""
        ...

    async def renew(self) -> bool:
        """Called once after the origin rejected the token; True if a new token is ready."""
        ...


class HTTPStatusError(Exception):
    """A response the policy does not retry: its status, headers and (the start of its) body,
    for the provider to turn into a message for people."""

    def __init__(self, status: int, url: URL, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.url = safe_url(url)
        self.headers = dict(headers)
        self.body = body
        super().__init__(f"HTTP {status} from {self.url}")


class Stalled(TimeoutError):
    """A body (or a response's headers) that came too slowly: retried like a dropped
    connection, then reported as a server that sends data too slowly."""


class _Pace:
    """Reads a body; raises `Stalled` unless at least `rate * window` bytes arrive within
    `window` seconds of the start and of each time that much has arrived (rate 0: no minimum).
    """

    def __init__(self, content: aiohttp.StreamReader, rate: float, window: float) -> None:
        self._content = content
        self._need = rate * window
        self._window = window
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + window
        self._got = 0

    async def read(self) -> bytes:
        """The next chunk of the body; b"" at its end."""
        if self._need <= 0:
            return await self._content.read(CHUNK_SIZE)
        timer = asyncio.timeout_at(self._due)
        try:
            async with timer:
                chunk = await self._content.read(CHUNK_SIZE)
        except TimeoutError:
            if timer.expired():
                raise Stalled(
                    f"less than {size_text(int(self._need))} in {self._window:g} s"
                ) from None
            raise
        self._got += len(chunk)
        if self._got >= self._need:
            self._got = 0
            self._due = self._loop.time() + self._window
        return chunk


class ResponseTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {size_text(limit)}")
        self.limit = limit


@dataclass
class SessionStats:
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    bytes_downloaded: int = 0


@dataclass(frozen=True)
class SessionOptions:
    """How one provider's sessions behave: backoff policy, concurrency, patience, and who
    hears about throttling waits (the progress display)."""

    policy: BackoffPolicy
    concurrency: int = DEFAULT_CONCURRENCY
    read_timeout: float = 60.0
    on_wait: WaitCallback | None = field(default=None, compare=False)
    min_throughput: float = DEFAULT_MIN_THROUGHPUT
    throughput_window: float = DEFAULT_THROUGHPUT_WINDOW

    def session(self, origin: Origin, tokens: TokenProvider) -> ReadOnlySession:
        return ReadOnlySession(
            origin,
            tokens,
            self.policy,
            concurrency=self.concurrency,
            timeout=read_timeout_of(self.read_timeout),
            on_wait=self.on_wait,
            min_throughput=self.min_throughput,
            throughput_window=self.throughput_window,
        )


class ReadOnlySession:
    def __init__(
        self,
        origin: Origin,
        tokens: TokenProvider,
        policy: BackoffPolicy,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        on_wait: WaitCallback | None = None,
        extra_headers: Mapping[str, str] | None = None,
        min_throughput: float = DEFAULT_MIN_THROUGHPUT,
        throughput_window: float = DEFAULT_THROUGHPUT_WINDOW,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """`resolver` replaces aiohttp's DNS resolver under the address check (tests)."""
        self.origin = origin.require_secure()
        self.policy = policy
        self.stats = SessionStats()
        self._tokens = tokens
        self._limit = AdaptiveLimit(concurrency)
        self._timeout = timeout
        # A response's headers must be complete within the connect and read timeouts.
        self._headers_timeout = (
            None if timeout.sock_read is None else (timeout.sock_connect or 0.0) + timeout.sock_read
        )
        self._on_wait = on_wait
        self._extra_headers = dict(extra_headers or {})
        self._min_throughput = max(0.0, min_throughput)
        self._throughput_window = throughput_window
        # The configured origin's host as the connector sees it (IDNA, no brackets).
        self._origin_host = URL(str(self.origin)).raw_host or self.origin.host
        self._inner_resolver = resolver
        self._resolver: GuardedResolver | None = None
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ReadOnlySession:
        self._resolver = GuardedResolver(self._origin_host, str(self.origin), self._inner_resolver)
        # No cookie jar: cookies would otherwise cross from one origin's responses to another.
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=self._resolver),
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    @asynccontextmanager
    async def request(
        self,
        method: str,
        url: URL | str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        listing: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A successful (< 400) response, after retries; its body is the caller's to read.

        A failure that retries did not fix is `ListingFailed` when `listing` (a folder's list,
        what a link names), else `DownloadFailed`."""
        method = method.upper()
        if method not in SAFE_METHODS:
            raise UnsafeRequest(f"Refusing to send {method}: privatepuller only reads (GET).")
        url = URL(url) if isinstance(url, str) else url
        if params:
            url = url.update_query(params)
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            retry_after: str | None = None
            failure: BaseException
            await self._limit.acquire()
            try:
                try:
                    response, remaining = await self._send(method, url, headers or {}, listing)
                except (aiohttp.ClientError, TimeoutError) as error:
                    verdict, failure = Verdict.SERVER_ERROR, error
                else:
                    body = b""
                    if response.status >= 400:
                        body = await response.content.read(ERROR_BODY_LIMIT)
                    verdict = self.policy.classify(response.status, response.headers, body)
                    await self._observe(remaining, verdict)
                    if verdict is Verdict.OK:
                        try:
                            yield response
                        finally:
                            response.release()
                        return
                    failure = HTTPStatusError(response.status, url, response.headers, body)
                    retry_after = response.headers.get("Retry-After")
                    response.release()
            finally:
                await self._limit.release()

            if verdict is Verdict.FAIL:
                raise failure
            if verdict is Verdict.RENEW_TOKEN:
                if not renewed and await self._tokens.renew():
                    renewed = True
                    attempt -= 1
                    continue
                raise LoginExpired(hub_or_alone(hub=LOGIN_EXPIRED, alone=TOKEN_REFUSED))
            if attempt >= self.policy.max_attempts:
                raise self._gave_up(verdict, url, failure, listing)
            if verdict is Verdict.THROTTLED:
                self.stats.throttled += 1
                await self._limit.throttled()
            self.stats.retries += 1
            delay = self.policy.delay(attempt, retry_after)
            if self._on_wait is not None and verdict is Verdict.THROTTLED:
                self._on_wait(delay, self.policy.name)
            await asyncio.sleep(delay)

    async def get_json(
        self,
        url: URL | str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, Mapping[str, str]]:
        """The decoded JSON body (ValueError if it is not JSON) and the response's headers.

        A body over `JSON_BODY_LIMIT` is refused: listings come in pages, so only a broken or
        hostile server (or whatever another origin's redirect leads to) sends one that large.
        A body cut off or stalled midway is asked for again, like a download.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.request(
                    "GET", url, params=params, headers=headers, listing=True
                ) as response:
                    body = bytearray()
                    pace = self._pace(response)
                    while chunk := await pace.read():
                        body += chunk
                        if len(body) > JSON_BODY_LIMIT:
                            raise ListingFailed(
                                f"{Origin.of(response.url).host} answered with far more data "
                                "than a listing has, so the sync was stopped. Nothing was "
                                "changed; try again later, and tell your instructor if it "
                                "keeps happening."
                            )
                    return (json.loads(body) if body.strip() else None), response.headers
            except TRANSFER_ERRORS as error:
                await self._retry_transfer(attempt, url, error, listing=True)

    async def download(
        self,
        url: URL | str,
        dest: Path,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """Stream a body to `dest` through a temporary name; never leaves a partial file.

        A connection that drops mid-body is retried from the start under the same policy.
        """
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        attempt = 0
        try:
            while True:
                attempt += 1
                written = 0
                try:
                    async with self.request("GET", url, params=params, headers=headers) as resp:
                        with open(tmp, "wb") as out:
                            pace = self._pace(resp)
                            while chunk := await pace.read():
                                written += len(chunk)
                                if max_bytes is not None and written > max_bytes:
                                    raise ResponseTooLarge(max_bytes)
                                out.write(chunk)
                                self.stats.bytes_downloaded += len(chunk)
                                if on_bytes is not None:
                                    on_bytes(len(chunk))
                    os.replace(tmp, dest)
                    return written
                except TRANSFER_ERRORS as e:
                    if on_bytes is not None and written:
                        on_bytes(-written)
                    await self._retry_transfer(attempt, url, e)
                except OSError as e:
                    if e.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise DiskFull(
                            "Your disk is full, so the files could not be downloaded. Delete "
                            "some files in your home folder and try again; nothing was changed."
                        ) from None
                    raise
        finally:
            tmp.unlink(missing_ok=True)

    def _pace(self, response: aiohttp.ClientResponse) -> _Pace:
        return _Pace(response.content, self._min_throughput, self._throughput_window)

    async def _retry_transfer(
        self, attempt: int, url: URL | str, error: BaseException, *, listing: bool = False
    ) -> None:
        """After a body was cut off or stalled: wait before the next attempt, or give up."""
        if attempt >= self.policy.max_attempts:
            raise self._gave_up(Verdict.SERVER_ERROR, URL(url), error, listing) from None
        self.stats.retries += 1
        await asyncio.sleep(self.policy.delay(attempt))

    async def _send(
        self, method: str, url: URL, headers: Mapping[str, str], listing: bool
    ) -> tuple[aiohttp.ClientResponse, str | None]:
        """The final response after redirects, and the last budget any hop reported in the
        policy's `remaining_header` (an API may send it on the redirect of a download, and the
        file store it redirects to not)."""
        assert self._http is not None, "use `async with ReadOnlySession(...)`"
        remaining: str | None = None
        for _ in range(MAX_REDIRECTS + 1):
            hop_origin = Origin.of(url).require_secure()
            # Another host must be public: literals here, names in the connector's resolver.
            check_literal_host(url.raw_host or "", self._origin_host, str(self.origin))
            hop_headers = {**self._extra_headers, **headers} if hop_origin == self.origin else {}
            if hop_origin == self.origin:
                hop_headers["Authorization"] = f"Bearer {await self._tokens.token()}"
            elif "Range" in headers:
                hop_headers["Range"] = headers["Range"]
            self.stats.requests += 1
            # Headers trickled in a byte at a time would keep `sock_read` from ever firing.
            timer = asyncio.timeout(self._headers_timeout)
            try:
                async with timer:
                    response = await self._http.request(
                        method, url, headers=hop_headers, allow_redirects=False
                    )
            except TimeoutError:
                if timer.expired():
                    raise Stalled("no complete answer in time") from None
                raise
            if self.policy.remaining_header is not None:
                remaining = response.headers.get(self.policy.remaining_header, remaining)
            location = response.headers.get("Location")
            if response.status in REDIRECT_STATUSES and location:
                response.release()
                url = url.join(URL(location))
                continue
            return response, remaining
        failed = ListingFailed if listing else DownloadFailed
        raise failed(f"{safe_url(url)} redirected too many times.")

    async def _observe(self, remaining: str | None, verdict: Verdict) -> None:
        if remaining is not None:
            with suppress(ValueError):
                await self._limit.observe_remaining(float(remaining), self.policy.upfront_cost)
        elif verdict is Verdict.OK:
            await self._limit.healthy()

    def _gave_up(
        self, verdict: Verdict, url: URL, failure: BaseException, listing: bool
    ) -> PullError:
        where = Origin.of(url)
        if verdict is Verdict.THROTTLED:
            return RateLimited(
                f"{where.host} is limiting how fast files can be downloaded, and it did not "
                "let up in time. Nothing was changed; try again in a few minutes."
            )
        if isinstance(failure, HTTPStatusError):
            detail = f"it answered {failure.status}"
        elif isinstance(failure, Stalled):
            detail = "it sent data too slowly or stopped sending it"
        elif isinstance(failure, TimeoutError):
            detail = "it stopped answering"
        else:
            detail = "the connection kept failing"
        if listing:
            return ListingFailed(
                f"Could not read from {where.host}: {detail}. Nothing was changed; "
                "try again in a few minutes."
            )
        return DownloadFailed(
            f"Could not download from {where.host}: {detail}. Nothing was changed; "
            "try again in a few minutes."
        )
