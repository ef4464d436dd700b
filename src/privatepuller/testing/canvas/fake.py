"""A fake Canvas LMS: a real HTTP server on loopback, faithful to the Canvas REST API.

Two listeners run on the test's event loop: the Canvas origin (`base_url`: REST API,
file download redirects, OAuth2) and a separate "file store" origin (`filestore_url`)
that serves file bytes from signed, expiring URLs, like Canvas's inst-fs/S3 redirects.
Downloads need the token, as on Canvas since its 25 March 2026 deploy; `verifier_urls=True`
gives the older file URLs whose `verifier` works without one.

    async with FakeCanvas() as canvas:
        user = canvas.add_user("Ada")
        course = canvas.add_course("Data Science 101")
        course.enroll(user)
        course.files.add_file("Week 1/data/x.csv", b"a,b\\n1,2\\n")
        ...  # point the client at canvas.base_url with user.token

Where this fake and the real `canvasapi` client disagree, the fake is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Literal, Self

from aiohttp import web

from .. import issued
from .model import (
    FakeCourse,
    FakeFile,
    FakeFileSpace,
    FakeGroup,
    FakeUser,
    Registry,
    TokenError,
    random_alnum,
)
from .oauth import OAuthProvider
from .routes import (
    FAULT_KEY,
    SENT_STATUS_KEY,
    CanvasApi,
    abort_connection,
)
from .throttle import LeakyBuckets, ThrottlePolicy

__all__ = [
    "FakeCanvas",
    "FakeCourse",
    "FakeFile",
    "FakeFileSpace",
    "FakeGroup",
    "FakeUser",
    "FaultKind",
    "RecordedRequest",
    "ThrottlePolicy",
    "populate_demo",
]

Origin = Literal["canvas", "filestore"]
FaultKind = Literal["reset", "502", "500", "stall", "401", "truncate", "stall_body"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OAUTH_TOKEN_PATH = "/login/oauth2/token"
_READ_METHODS = frozenset({"GET", "HEAD"})
_BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
# How long a "stall" fault holds a request when the server is not stopped first.
STALL_SECONDS = 3600.0


@dataclass(frozen=True)
class RecordedRequest:
    origin: Origin
    method: str
    path_qs: str
    authorization: str | None
    # None when no status line was ever sent (connection reset, stalled request).
    status: int | None
    fault: FaultKind | None = None

    @property
    def is_oauth_token_request(self) -> bool:
        return self.origin == "canvas" and self.path_qs.split("?", 1)[0] == OAUTH_TOKEN_PATH


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    kind: FaultKind
    remaining: int


@dataclass
class AccessTokenRecord:
    token: str
    user_id: int
    expires_at: float | None  # time.time(); None = never expires
    client_id: str | None = None
    refresh_token: str | None = None
    scopes: frozenset[str] = frozenset()
    revoked: bool = False


@dataclass
class _Clients:
    secrets: dict[str, str] = field(default_factory=dict)
    redirect_uris: dict[str, str | None] = field(default_factory=dict)


class FakeCanvas:
    def __init__(
        self,
        *,
        latency: float = 0.0,
        throttle: ThrottlePolicy | None = None,
        throttle_status: int = 403,
        verifier_urls: bool = False,
    ) -> None:
        """`verifier_urls=True`: Canvas before its 25 March 2026 deploy, whose file URLs carry
        a `verifier` that authorises the download without a token. By default, Canvas as it
        is now: file URLs without `verifier` (and file objects without `uuid`), and every
        download needs the caller's token."""
        if throttle_status not in (403, 429):
            raise ValueError("throttle_status must be 403 or 429")
        self.latency = latency
        self.verifier_urls = verifier_urls
        self.throttle_status = throttle_status
        self.buckets = LeakyBuckets(throttle or ThrottlePolicy())
        self.throttled_count = 0
        self.base_url = ""
        self.filestore_url = ""
        # Lifetime of OAuth access tokens and of signed file-store URLs, in seconds.
        self.access_token_ttl: float | None = 3600.0
        self.filestore_url_ttl: float = 3600.0
        # The user "logged in" to Canvas in the browser during the OAuth dance.
        self.oauth_login_user: FakeUser | None = None
        self.oauth_consent = True

        self.requests: list[RecordedRequest] = []
        self.filestore_authorization_headers: list[str] = []

        self.registry = Registry()
        self.users: dict[int, FakeUser] = {}
        self.courses: dict[int, FakeCourse] = {}
        self.groups: dict[int, FakeGroup] = {}
        self.tokens: dict[str, AccessTokenRecord] = {}
        self.refresh_tokens: dict[str, AccessTokenRecord] = {}
        self.clients = _Clients()

        self._faults: list[_Fault] = []
        self._signing_key = secrets.token_bytes(32)
        self._stopping = asyncio.Event()
        self._runners: list[web.AppRunner] = []
        self._api = CanvasApi(self)
        self._oauth = OAuthProvider(self)

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        if self._runners:
            raise RuntimeError("already started")
        self._stopping.clear()
        canvas_app = web.Application(middlewares=[self._canvas_middleware])
        self._api.add_canvas_routes(canvas_app.router)
        self._oauth.add_routes(canvas_app.router)
        self._api.add_fallback_route(canvas_app.router)
        filestore_app = web.Application(middlewares=[self._filestore_middleware])
        self._api.add_filestore_routes(filestore_app.router)
        self.base_url = await self._listen(canvas_app)
        self.filestore_url = await self._listen(filestore_app)
        issued.running(self, True)

    async def stop(self) -> None:
        self._stopping.set()  # releases stalled requests
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()
        issued.running(self, False)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _listen(self, app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._runners.append(runner)
        return f"http://127.0.0.1:{port}"

    # -- data model ---------------------------------------------------------------

    def add_user(self, name: str, *, login_id: str | None = None) -> FakeUser:
        user_id = self.registry.new_id("user")
        user = FakeUser(
            id=user_id,
            name=name,
            login_id=login_id or f"user{user_id}",
            files=FakeFileSpace(self.registry, "User", user_id),
        )
        self.users[user_id] = user
        # Like a manually generated token: valid until expired or revoked explicitly.
        user.token = self.issue_token(user, expires_in=None)
        return user

    def add_course(self, name: str) -> FakeCourse:
        course_id = self.registry.new_id("course")
        course = FakeCourse(
            id=course_id,
            name=name,
            uuid=random_alnum(40),
            files=FakeFileSpace(self.registry, "Course", course_id),
        )
        self.courses[course_id] = course
        return course

    def add_group(self, name: str, course: FakeCourse | None = None) -> FakeGroup:
        group_id = self.registry.new_id("group")
        group = FakeGroup(
            id=group_id,
            name=name,
            course=course,
            files=FakeFileSpace(self.registry, "Group", group_id),
        )
        self.groups[group_id] = group
        return group

    def issue_token(
        self,
        user: FakeUser,
        *,
        expires_in: float | None = 3600,
        client_id: str | None = None,
        scopes: frozenset[str] = frozenset(),
    ) -> str:
        """A new access token for `user`; `scopes` restricts it like a scoped dev key."""
        token = f"1~{random_alnum(64)}"
        expires_at = None if expires_in is None else time.time() + expires_in
        self.tokens[token] = AccessTokenRecord(
            token=token, user_id=user.id, expires_at=expires_at, client_id=client_id,
            scopes=scopes,
        )  # fmt: skip
        issued.record(self, "Canvas access token", token)
        return token

    def expire_token(self, token: str) -> None:
        self.tokens[token].expires_at = time.time() - 1

    def revoke_token(self, token: str) -> None:
        self.tokens[token].revoked = True

    def authenticate(self, token: str) -> FakeUser:
        """The token's user, or TokenError with the message Canvas would send."""
        record = self.tokens.get(token)
        if record is None:
            raise TokenError("Invalid access token.")
        if record.revoked:
            raise TokenError("Revoked access token.")
        if record.expires_at is not None and time.time() >= record.expires_at:
            raise TokenError("Invalid access token.")
        return self.users[record.user_id]

    def register_client(
        self, client_id: str, client_secret: str, *, redirect_uri: str | None = None
    ) -> None:
        """A developer key; `redirect_uri`, if given, must prefix the one clients send."""
        self.clients.secrets[client_id] = client_secret
        issued.record(self, "Canvas developer key secret", client_secret)
        self.clients.redirect_uris[client_id] = redirect_uri

    def context_of(self, space: FakeFileSpace) -> FakeCourse | FakeGroup | FakeUser:
        if space.context_type == "Course":
            return self.courses[space.context_id]
        if space.context_type == "Group":
            return self.groups[space.context_id]
        return self.users[space.context_id]

    # -- file store URLs ------------------------------------------------------------

    def signed_blob_url(self, file: FakeFile) -> str:
        expires = int(time.time() + self.filestore_url_ttl)
        signature = self._sign(file.uuid, expires)
        issued.record(self, "Canvas file-store URL signature", signature)
        return f"{self.filestore_url}/blob/{file.uuid}?expires={expires}&sig={signature}"

    def blob_signature_ok(self, uuid: str, expires: str, sig: str) -> bool:
        return expires.isdigit() and hmac.compare_digest(self._sign(uuid, int(expires)), sig)

    def _sign(self, uuid: str, expires: int) -> str:
        message = f"{uuid}\n{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    # -- recording ----------------------------------------------------------------

    @property
    def non_get_requests(self) -> list[RecordedRequest]:
        """Requests with any method but GET/HEAD, at either origin."""
        return [r for r in self.requests if r.method not in _READ_METHODS]

    @property
    def non_get_api_requests(self) -> list[RecordedRequest]:
        """`non_get_requests` minus the OAuth token endpoint (the hub's legitimate POST)."""
        return [r for r in self.non_get_requests if not r.is_oauth_token_request]

    def _record(
        self, origin: Origin, request: web.Request, fault: FaultKind | None
    ) -> RecordedRequest:
        authorization = request.headers.get("Authorization")
        if origin == "filestore" and authorization is not None:
            self.filestore_authorization_headers.append(authorization)
        record = RecordedRequest(
            origin, request.method, request.path_qs, authorization, None, fault
        )
        self.requests.append(record)
        return record

    def _finish_record(self, record: RecordedRequest, status: int | None) -> None:
        # Found by identity: tests may clear or slice `requests` while this one ran.
        for index in range(len(self.requests) - 1, -1, -1):
            if self.requests[index] is record:
                self.requests[index] = replace(record, status=status)
                return

    # -- fault injection ------------------------------------------------------------

    def inject_fault(self, path_regex: str, kind: FaultKind, times: int = 1) -> None:
        """Make the next `times` requests whose path+query matches `path_regex` fail.

        reset: connection closed abruptly (RST) - mid-body for file-store downloads,
        before any response otherwise. 502: an HTML gateway error. 500: Canvas's JSON
        error. stall: no response until the server stops. 401: "Invalid access token."
        truncate: fewer body bytes than Content-Length, then a clean close.
        stall_body (file store only): half the body, then nothing until the server stops.
        """
        self._faults.append(_Fault(re.compile(path_regex), kind, times))

    def clear_faults(self) -> None:
        self._faults.clear()

    async def wait_stopping(self) -> None:
        """Until `stop()` is called (how stalled requests wait)."""
        await self._stopping.wait()

    def _take_fault(self, request: web.Request) -> FaultKind | None:
        for fault in self._faults:
            if fault.pattern.search(request.path_qs):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault.kind
        return None

    # -- request pipelines ------------------------------------------------------------

    @web.middleware
    async def _canvas_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        fault = self._take_fault(request)
        request[FAULT_KEY] = fault
        record = self._record("canvas", request, fault)
        try:
            response = await self._canvas_pipeline(request, handler, fault)
        except BaseException:
            self._finish_record(record, None)
            raise
        self._finish_record(record, request.get(SENT_STATUS_KEY, response.status))
        return response

    async def _canvas_pipeline(
        self, request: web.Request, handler: Handler, fault: FaultKind | None
    ) -> web.StreamResponse:
        early = await self._early_fault(request, fault)
        if early is not None:
            return early
        # Canvas keys the bucket on the presented token, valid or not, else on the IP.
        token = self._api.presented_token(request)
        key = f"token:{token}" if token else f"ip:{request.remote}"
        policy = self.buckets.policy
        level = self.buckets.increment(key, policy.preflight_cost)
        if self.buckets.is_full(level):
            self.throttled_count += 1
            # A refused request costs (almost) nothing beyond its refunded pre-flight.
            level = self.buckets.increment(key, -policy.preflight_cost)
            await self._sleep_latency()
            return self._throttled_response(level)
        processing = 0.0
        try:
            await self._sleep_latency()
            started = time.perf_counter()
            response = await self._api.call(handler, request)
            processing = time.perf_counter() - started
        finally:
            cost = policy.cost_per_request + policy.cost_per_second * processing
            level = self.buckets.increment(key, cost - policy.preflight_cost)
        response.headers["X-Request-Cost"] = str(cost)
        response.headers["X-Rate-Limit-Remaining"] = str(self.buckets.remaining(level))
        if fault == "truncate" and isinstance(response, web.Response):
            return await self._send_partial(request, response, rst=False)
        return response

    @web.middleware
    async def _filestore_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        fault = self._take_fault(request)
        request[FAULT_KEY] = fault
        record = self._record("filestore", request, fault)
        try:
            response = await self._filestore_pipeline(request, handler, fault)
        except BaseException:
            self._finish_record(record, None)
            raise
        self._finish_record(record, request.get(SENT_STATUS_KEY, response.status))
        return response

    async def _filestore_pipeline(
        self, request: web.Request, handler: Handler, fault: FaultKind | None
    ) -> web.StreamResponse:
        # reset, truncate and stall_body on the file store happen mid-body, in the blob handler.
        if fault not in ("reset", "truncate", "stall_body"):
            early = await self._early_fault(request, fault)
            if early is not None:
                return early
        await self._sleep_latency()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = web.Response(status=exc.status, text=exc.text, headers=exc.headers)
        # Streamed bodies were cut by the handler; small ready-made ones are cut here.
        if fault in ("reset", "truncate") and isinstance(response, web.Response):
            return await self._send_partial(request, response, rst=fault == "reset")
        return response

    async def _early_fault(
        self, request: web.Request, fault: FaultKind | None
    ) -> web.StreamResponse | None:
        """Faults answered before the request reaches Canvas (a proxy or the network)."""
        if fault == "reset":
            abort_connection(request, rst=True)
            request[SENT_STATUS_KEY] = None
            return web.Response(status=500)  # never sent: the connection is gone
        if fault == "stall":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), STALL_SECONDS)
            abort_connection(request, rst=True)
            request[SENT_STATUS_KEY] = None
            return web.Response(status=500)
        if fault == "502":
            return web.Response(status=502, text=_BAD_GATEWAY_HTML, content_type="text/html")
        if fault == "500":
            return self._api.error_500()
        if fault == "401":
            return self._api.invalid_token_response("Invalid access token.")
        return None

    async def _sleep_latency(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)

    def _throttled_response(self, level: float) -> web.Response:
        # RequestThrottle#rate_limit_exceeded: plain text, no X-Request-Cost.
        reason = "Forbidden" if self.throttle_status == 403 else "Too Many Requests"
        headers = {"X-Rate-Limit-Remaining": str(self.buckets.remaining(level))}
        if self.buckets.policy.send_retry_after:
            headers["Retry-After"] = str(self.buckets.retry_after(level))
        return web.Response(
            status=self.throttle_status,
            text=f"{self.throttle_status} {reason} (Rate Limit Exceeded)\n",
            content_type="text/plain",
            headers=headers,
        )

    async def _send_partial(
        self, request: web.Request, response: web.Response, *, rst: bool
    ) -> web.StreamResponse:
        """Send `response` with its full Content-Length but only half of its body."""
        body = response.body if isinstance(response.body, bytes) else b""
        partial = web.StreamResponse(status=response.status, headers=response.headers)
        partial.content_length = len(body)
        await partial.prepare(request)
        await partial.write(body[: len(body) // 2])
        abort_connection(request, rst=rst)
        return partial


# -- demo content -------------------------------------------------------------------


def _notebook(title: str, code: str) -> bytes:
    """A minimal valid nbformat 4.5 notebook."""
    cells = [
        {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": [f"# {title}"]},
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "code",
            "metadata": {},
            "outputs": [],
            "source": code.splitlines(keepends=True),
        },
    ]
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return (json.dumps(notebook, indent=1, ensure_ascii=False) + "\n").encode()


def populate_demo(canvas: FakeCanvas) -> tuple[FakeUser, FakeCourse]:
    """A small "Data Science 101" course with one enrolled student (and a teacher)."""
    student = canvas.add_user("Ada Student", login_id="ada")
    teacher = canvas.add_user("Grace Teacher", login_id="grace")
    course = canvas.add_course("Data Science 101")
    course.enroll(student)
    course.enroll(teacher, role="teacher")
    files = course.files
    files.add_file("README.md", b"# Data Science 101\n\nOpen the notebooks week by week.\n")
    files.add_file(
        "Week 1/01 Introduction.ipynb",
        _notebook("Introduction", 'import pandas as pd\npd.read_csv("data/iris.csv").head()\n'),
    )
    files.add_file(
        "Week 1/data/iris.csv",
        b"sepal_length,sepal_width,species\n5.1,3.5,setosa\n7.0,3.2,versicolor\n",
    )
    files.add_file("Week 1/data/penguins.csv", b"species,island,mass_g\nAdelie,Torgersen,3750\n")
    files.add_file(
        "Week 2/02 Regression.ipynb",
        _notebook("Regression", 'import pandas as pd\nhousing = pd.read_csv("housing.csv")\n'),
    )
    files.add_file("Week 2/housing.csv", b"rooms,price\n3,250000\n4,320000\n")
    files.add_file(
        "Week 2/Übung 2 – Daten säubern.ipynb",
        _notebook("Übung: Daten säubern", "print('Grüße!')\n"),
    )
    # Unpublished: a student never sees it listed.
    files.add_file("Week 2/solutions.ipynb", _notebook("Solutions", "answer = 42\n"), locked=True)
    # Locked by module progress: listed for the student, with an empty url.
    files.add_file(
        "Week 3/03 Classification.ipynb",
        _notebook("Classification", "from sklearn import tree\n"),
        module_lock="Week 3",
    )
    # "Only available with link": not listed for the student.
    files.add_file("Week 1/data/answer_key.csv", b"question,answer\n1,b\n", hidden=True)
    return student, course
