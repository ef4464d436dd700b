"""Hostile servers for the adversarial tests (tests/test_adversarial_*.py).

- `EvilServer`: another origin on loopback, a plain asyncio socket server (so it can send any
  bytes: a Content-Length that lies, a body that never ends). It records every request it gets,
  headers included: a test asserts that none carried a credential.
- `HostileCanvas`, `HostileDrive`: the fakes, plus a few ways to misbehave the way a broken or
  compromised server (or a proxy in front of it) would: redirect any request elsewhere, rewrite
  a JSON body or a `Link` header.

Both kinds run on the test's event loop (`async with`), or in a thread for the server tests
(`server_helpers.ServiceThread(EvilServer)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from privatepuller.testing.canvas.fake import FakeCanvas
from privatepuller.testing.drive.fake import FakeDrive

# -- the other origin -----------------------------------------------------------------------


@dataclass(frozen=True)
class EvilRequest:
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]  # names lower-cased

    def text(self) -> str:
        """Everything the request carried, for "is this secret anywhere in it" checks."""
        return "\n".join([f"{self.method} {self.target}", *map(": ".join, self.headers.items())])


@dataclass(frozen=True)
class Reply:
    """A canned answer. `content_length` may lie; `endless` streams `body` until the client
    hangs up (no Content-Length; the end of the body would be the end of the connection)."""

    body: bytes = b"evil bytes\n"
    status: int = 200
    content_type: str = "application/octet-stream"
    content_length: int | None = -1  # -1: the true length; None: no header
    headers: tuple[tuple[str, str], ...] = ()
    endless: bool = False


def redirect(location: str) -> Reply:
    return Reply(b"", 302, "text/plain", headers=(("Location", location),))


def json_reply(data: Any) -> Reply:
    return Reply(json.dumps(data).encode(), content_type="application/json")


ENDLESS_LIMIT = 1 << 30  # an endless body stops here even if the client keeps reading


@dataclass
class EvilServer:
    """Answers every request with the `Reply` of the longest matching path prefix."""

    replies: dict[str, Reply] = field(default_factory=dict)
    requests: list[EvilRequest] = field(default_factory=list)
    url: str = ""
    bytes_sent: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> EvilServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def reply(self, prefix: str, reply: Reply) -> str:
        """Answer requests under `prefix` with `reply`; returns the absolute URL of `prefix`."""
        self.replies[prefix] = reply
        return self.url + prefix

    @property
    def authorization_headers(self) -> list[str]:
        return [r.headers["authorization"] for r in self.requests if "authorization" in r.headers]

    def carried(self, *secrets: str) -> list[str]:
        """The requests in which any of `secrets` appears (URL or any header)."""
        return [r.text() for r in self.requests if any(s and s in r.text() for s in secrets)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            self.requests.append(EvilRequest(method, target, headers))
            await self._answer(writer, self._reply_for(target), method == "HEAD")
        except (
            ConnectionError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _reply_for(self, target: str) -> Reply:
        path = target.split("?", 1)[0]
        matches = [p for p in self.replies if path.startswith(p)]
        return self.replies[max(matches, key=len)] if matches else Reply()

    async def _answer(self, writer: asyncio.StreamWriter, reply: Reply, head_only: bool) -> None:
        lines = [f"HTTP/1.1 {reply.status} X", f"Content-Type: {reply.content_type}"]
        lines.append("Connection: close")
        if not reply.endless and reply.content_length is not None:
            length = len(reply.body) if reply.content_length == -1 else reply.content_length
            lines.append(f"Content-Length: {length}")
        lines += [f"{name}: {value}" for name, value in reply.headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if head_only:
            return
        if not reply.endless:
            writer.write(reply.body)
            self.bytes_sent += len(reply.body)
            await writer.drain()
            return
        chunk = reply.body * max(1, 65536 // max(1, len(reply.body)))
        while self.bytes_sent < ENDLESS_LIMIT:
            writer.write(chunk)
            self.bytes_sent += len(chunk)
            await writer.drain()


@pytest.fixture(name="evil")
async def evil_fixture() -> AsyncIterator[EvilServer]:
    """A started `EvilServer` (import this fixture into a test module to use it)."""
    async with EvilServer() as server:
        yield server


# -- misbehaving fakes ------------------------------------------------------------------------

JsonEdit = Callable[[Any], Any]


class HostileCanvas(FakeCanvas):
    """The fake Canvas, able to redirect any request and to rewrite its JSON and Link headers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.redirects: list[tuple[re.Pattern[str], str]] = []
        self.json_edits: list[tuple[re.Pattern[str], JsonEdit]] = []
        self.link_edits: list[tuple[re.Pattern[str], Callable[[str], str]]] = []

    def redirect(self, path_regex: str, location: str) -> None:
        """Answer requests whose path+query matches with `302 Location: location`."""
        self.redirects.append((re.compile(path_regex), location))

    def edit_json(self, path_regex: str, edit: JsonEdit) -> None:
        """Pass the JSON body of matching (successful) answers through `edit`."""
        self.json_edits.append((re.compile(path_regex), edit))

    def edit_link(self, path_regex: str, edit: Callable[[str], str]) -> None:
        """Pass the `Link` header of matching answers through `edit` (given "" if none)."""
        self.link_edits.append((re.compile(path_regex), edit))

    async def _canvas_pipeline(
        self, request: web.Request, handler: Any, fault: Any
    ) -> web.StreamResponse:
        for pattern, location in self.redirects:
            if pattern.search(request.path_qs):
                return web.Response(status=302, headers={"Location": location})
        response = await super()._canvas_pipeline(request, handler, fault)
        if not isinstance(response, web.Response) or response.status != 200:
            return response
        for pattern, edit in self.json_edits:
            if pattern.search(request.path_qs) and response.text is not None:
                response.text = json.dumps(edit(json.loads(response.text)))
        for pattern, link_edit in self.link_edits:
            if pattern.search(request.path_qs):
                response.headers["Link"] = link_edit(response.headers.get("Link", ""))
        return response


class HostileDrive(FakeDrive):
    """The fake Drive, able to redirect any API request elsewhere."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.redirects: list[tuple[re.Pattern[str], str]] = []

    def redirect(self, path_regex: str, location: str) -> None:
        self.redirects.append((re.compile(path_regex), location))

    async def _dispatch(
        self, request: web.Request, handler: Any, record: Any, is_token: bool
    ) -> web.StreamResponse:
        for pattern, location in self.redirects:
            if not is_token and pattern.search(request.path_qs):
                return web.Response(status=302, headers={"Location": location})
        return await super()._dispatch(request, handler, record, is_token)
