"""Bounds and addresses (issue 11, findings 6, 7 and 8): whatever a server does, a sync ends.

- **Bounds.** A listing stops at `max_list_pages` pages and `max_list_entries` entries (a
  `next` link or page token that never repeats, a listing far too long); a sync stops at its
  `deadline` (listing and downloading only: the merge is never cut short); a body, a listing
  page or a response's headers slower than `min_throughput` over `throughput_window` count as
  stalled. Every way of stopping says what happened, changes nothing, and releases the
  folder's lock, so the next click is not told "already being synced".
- **Addresses.** A host a provider points us to (a file's `url`, a redirect) that is not the
  configured origin's must resolve to public addresses: loopback, unspecified, private,
  link-local (cloud metadata), shared (CGNAT) addresses are refused when the connection is
  made, however the address is spelt and whatever DNS name leads to it.
- **`CANVAS_BASE_URL`** with a path, a query or user info is refused with the hub's message,
  before any request.

Slow servers here are plain asyncio socket servers (`Trickle`) on 127.0.0.1, the fake
Canvas's own host, so only the pace is under test; the limits are set small (a window of a
fraction of a second) so that every test stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from adversarial_helpers import HostileCanvas
from conftest import CanvasWorld, open_repo
from gdrive_helpers import DriveWorld, make_world, pull_drive
from privatepuller.credentials.auth_state import AUTH_STATE_KEY
from privatepuller.credentials.hub import HubCredentialSource
from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.credentials.tokens import StaticToken
from privatepuller.errors import (
    ConfigurationError,
    DownloadFailed,
    ListingFailed,
    TimedOut,
    TooBig,
    UnsafeRequest,
)
from privatepuller.http.addresses import is_public_address, parse_address
from privatepuller.http.origin import Origin
from privatepuller.http.session import ReadOnlySession
from privatepuller.hub.canvas import normalize_canvas_url
from privatepuller.providers.canvas.policy import CANVAS_POLICY
from privatepuller.providers.gdrive.links import GoogleDriveFolder
from privatepuller.pull import pull
from privatepuller.server.config import PrivatePuller
from privatepuller.sync import engine
from privatepuller.sync.config import SyncConfig
from privatepuller.sync.local_origin import LocalOrigin
from privatepuller.sync.source import ListingLimits
from privatepuller.testing.drive.fake import FakeDrive
from server_helpers import JupyterServer, ServiceThread, outputs, tree
from test_hub_source import StubHub, canvas_state, serve

FILES_API = r"^/api/v1/courses/\d+/files\?"
DOWNLOAD = r"^/files/\d+/download"
WINDOW = 0.3  # seconds: the throughput window of these tests
MIN_RATE = 1024.0  # bytes a second


# -- servers that are slow, or only listen ----------------------------------------------------


@dataclass
class Trickle:
    """Answers every request slowly: `piece` bytes of the body every `interval` seconds (or,
    with `slow_headers`, the headers themselves a byte at a time). Counts connections and
    the ones the client gave up on. Gives up itself after `give_up` seconds, so that a test
    of code without bounds ends too (and fails)."""

    body: bytes = b"x" * (1 << 20)
    piece: int = 1
    interval: float = 0.05
    slow_headers: bool = False
    content_type: str = "application/octet-stream"
    give_up: float = 20.0
    url: str = ""
    connections: int = 0
    hung_up: int = 0  # connections the client closed before the answer was complete
    completed: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def __aenter__(self) -> Trickle:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            hangup = asyncio.ensure_future(reader.read(1))  # b"": the client closed
            if self.slow_headers:
                head = b"HTTP/1.1 200 OK\r\nX-Slow: "
                pieces = [head] + [b"a"] * int(self.give_up / self.interval)
            else:
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\n"
                    f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
                ).encode()
                body = [self.body[i : i + self.piece] for i in range(0, len(self.body), self.piece)]
                pieces = [head, *body]
            started = time.monotonic()
            for piece in pieces:
                if hangup.done():
                    self.hung_up += 1
                    return
                writer.write(piece)
                await writer.drain()
                if time.monotonic() - started > self.give_up:
                    return
                await asyncio.sleep(self.interval)
            self.completed += 1
            hangup.cancel()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            self.hung_up += 1
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@dataclass
class Listener:
    """Accepts connections on 127.0.0.1, counts them, and closes them."""

    port: int = 0
    connections: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    server = Listener()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def trickle() -> AsyncIterator[Trickle]:
    async with Trickle() as server:
        yield server


@pytest.fixture
async def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CanvasWorld]:
    """conftest's `world`, on a Canvas that can be made to misbehave; fast backoff."""
    monkeypatch.setenv("PRIVATEPULLER_HOME", str(tmp_path / "pp-home"))
    async with HostileCanvas() as canvas:
        course = canvas.add_course("Data Science 101")
        student = canvas.add_user("Ada Student")
        course.enroll(student)
        course.files.add_file("Week 1/intro.ipynb", b'{"cells": []}\n')
        course.files.add_file("README.md", b"read me\n")
        credentials = EnvCredentialSource(
            {"CANVAS_BASE_URL": canvas.base_url, "CANVAS_ACCESS_TOKEN": student.token}
        )
        workdir = tmp_path / "home"
        workdir.mkdir()
        config = SyncConfig(home=tmp_path / "pp-home", backoff_scale=0.001)
        yield CanvasWorld(canvas, course, student, credentials, config, workdir)


async def pull_course(world: CanvasWorld, **config: Any) -> Any:
    return await pull(
        world.url(),
        parent_dir=world.workdir,
        credentials=world.credentials,
        config=dataclasses.replace(world.config, **config),
    )


def files_under(target: Path) -> dict[str, bytes]:
    return tree(target) if target.exists() else {}


def no_partial_files(*folders: Path) -> None:
    leftovers = [p for f in folders for p in f.rglob("*") if p.name.endswith(".part")]
    assert leftovers == [], leftovers


def origin_head(config: SyncConfig) -> str | None:
    origins = list(config.origins_dir.glob("*.git"))
    return LocalOrigin(origins[0]).head() if origins else None


async def eventually(condition: Any, within: float = 5.0) -> bool:
    """Poll `condition()` until it holds (a server noticing a closed connection is not
    instantaneous); the test asserts the result, never the time it took."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# -- 6a. listings stop at a number of pages and entries -----------------------------------------


def test_the_default_bounds() -> None:
    config = SyncConfig()
    assert (config.max_list_pages, config.max_list_entries) == (10_000, 100_000)
    assert (config.deadline, config.min_throughput, config.throughput_window) == (
        3600.0,
        1024.0,
        30.0,
    )
    assert ListingLimits() == ListingLimits(max_pages=10_000, max_entries=100_000)


async def test_a_canvas_next_link_that_never_repeats_stops_at_the_page_limit(
    hostile: CanvasWorld,
) -> None:
    """Finding 6: a `next` link that is new every time kept the listing going for ever."""
    base, course = hostile.canvas.base_url, hostile.course.id
    pages = iter(range(2, 10**9))

    def endless(_: str) -> str:
        return f'<{base}/api/v1/courses/{course}/files?page={next(pages)}&per_page=100>; rel="next"'

    hostile.canvas.edit_link(FILES_API, endless)
    with pytest.raises(TooBig) as refused:
        await pull_course(hostile, max_list_pages=40)
    message = refused.value.message
    assert "too big to copy" in message and "more than 40 pages" in message
    assert "Nothing was changed" in message and "instructor" in message
    listed = [r for r in hostile.canvas.requests if "/files?" in r.path_qs]
    assert len(listed) == 40
    assert not (hostile.workdir / "Data Science 101").exists()


async def test_a_canvas_list_longer_than_the_entry_limit_is_refused_not_truncated(
    hostile: CanvasWorld,
) -> None:
    for i in range(8):
        hostile.course.files.add_file(f"data/{i}.csv", b"a,b\n")
    with pytest.raises(TooBig, match="file list has more than 9 entries"):
        await pull_course(hostile, max_list_entries=9)
    assert not (hostile.workdir / "Data Science 101").exists()
    # Exactly at the limit is fine.
    report = await pull_course(hostile, max_list_entries=10)
    assert len(report.added) == 10


async def _fake_drive_api(routes: dict[str, Any]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_a_drive_page_token_that_never_repeats_stops_at_the_page_limit() -> None:
    folder_id = "1" + "E" * 32
    token = "ya29.c." + "e" * 40
    served: list[str] = []

    async def list_files(request: web.Request) -> web.Response:
        served.append(request.query.get("pageToken", ""))
        body = {"files": [], "incompleteSearch": False, "nextPageToken": f"t{len(served)}"}
        return web.json_response(body)

    runner, base = await _fake_drive_api({"/drive/v3/files": list_files})
    try:
        credentials = EnvCredentialSource(
            {"GOOGLE_DRIVE_ACCESS_TOKEN": token, "GOOGLE_DRIVE_API_URL": f"{base}/drive/v3/"}
        )
        with pytest.raises(TooBig) as refused:
            repo = GoogleDriveFolder(folder_id, "Endless")
            async with open_repo(repo, credentials, limits=ListingLimits(max_pages=30)) as source:
                await source.list()
    finally:
        await runner.cleanup()
    assert "too big to copy" in refused.value.message
    assert "more than 30 pages" in refused.value.message
    assert len(served) == 30


@pytest.fixture
async def drive_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DriveWorld]:
    monkeypatch.setenv("PRIVATEPULLER_HOME", str(tmp_path / "pp-home"))
    for name in ("GOOGLE_DRIVE_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    async with FakeDrive() as drive:
        yield await make_world(tmp_path, drive)


async def test_drive_entries_are_counted_across_the_whole_tree(drive_world: DriveWorld) -> None:
    """Three folders of four files: no single folder lists more than four entries, but the
    tree has fifteen."""
    drive = drive_world.drive
    root = drive.add_folder("Wide", share_with=drive_world.email)
    for f in range(3):
        folder = drive.add_folder(f"part {f}", root.id)
        for i in range(4):
            drive.add_file(f"{i}.txt", folder.id, b"x\n", mime_type="text/plain")
    config = dataclasses.replace(drive_world.config, max_list_entries=14)
    with pytest.raises(TooBig) as refused:
        await pull_drive(drive_world, drive_world.folder_url(root), config=config)
    assert "“Wide”" in refused.value.message and "more than 14" in refused.value.message
    assert not (drive_world.workdir / "Wide").exists()

    config = dataclasses.replace(drive_world.config, max_list_entries=15)
    report = await pull_drive(drive_world, drive_world.folder_url(root), config=config)
    assert len(report.added) == 12


# -- 6b. each sync has a deadline; the merge is never cut short ---------------------------------


def _files_at(trickle: Trickle, size: int) -> Any:
    """A JSON edit of the file list: README.md comes from `trickle`, `size` bytes."""

    def edit(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            f | {"url": f"{trickle.url}/slow/{f['id']}", "size": size}
            if f["display_name"] == "README.md"
            else f
            for f in files
        ]

    return edit


async def test_a_sync_past_its_deadline_stops_changes_nothing_and_releases_the_lock(
    hostile: CanvasWorld, trickle: Trickle
) -> None:
    first = await pull_course(hostile)
    before, head = files_under(first.target), origin_head(hostile.config)
    # Fast enough never to count as stalled (5 KB/s), far too slow to finish (64 KB).
    trickle.body, trickle.piece = b"y" * 65536, 256
    hostile.course.files.update_file("README.md", b"read me, version 2\n")
    hostile.canvas.edit_json(FILES_API, _files_at(trickle, len(trickle.body)))

    with pytest.raises(TimedOut) as stopped:
        await pull_course(hostile, deadline=1.5, min_throughput=MIN_RATE, throughput_window=WINDOW)
    message = stopped.value.message
    assert "took longer than this hub allows (1.5 s)" in message
    assert "Nothing was changed" in message
    assert files_under(first.target) == before
    assert origin_head(hostile.config) == head
    no_partial_files(hostile.workdir, hostile.config.home)
    # The download was abandoned (not left running), and the folder's lock is free: the next
    # click, which does not wait for locks (lock_wait=0), syncs at once.
    assert await eventually(lambda: trickle.hung_up >= 1)
    assert trickle.completed == 0
    hostile.canvas.json_edits.clear()
    report = await pull_course(hostile)
    assert report.updated == ("README.md",)
    assert (first.target / "README.md").read_bytes() == b"read me, version 2\n"


async def test_the_deadline_never_cuts_a_merge_short(
    hostile: CanvasWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only listing and downloading are bounded: a merge that runs past the deadline (here
    made slow on purpose) finishes, and the folder is complete."""
    real_merge = engine.merge_into

    def slow_merge(*args: Any, **kwargs: Any) -> Any:
        time.sleep(2.5)
        return real_merge(*args, **kwargs)

    monkeypatch.setattr(engine, "merge_into", slow_merge)
    report = await pull_course(hostile, deadline=2.0)
    assert tree(report.target) == {
        "README.md": b"read me\n",
        "Week 1/intro.ipynb": b'{"cells": []}\n',
    }


# -- 6c. a minimum throughput: trickling bodies and headers count as stalled ---------------------


async def test_a_download_trickling_below_the_minimum_throughput_is_stalled(
    hostile: CanvasWorld, trickle: Trickle
) -> None:
    """Finding 6: one byte every 50 ms held the folder's lock for ever (`sock_read` never
    fires while bytes keep coming)."""
    hostile.canvas.edit_json(FILES_API, _files_at(trickle, len(trickle.body)))
    with pytest.raises(DownloadFailed) as stalled:
        await pull_course(hostile, min_throughput=MIN_RATE, throughput_window=WINDOW)
    message = stalled.value.message
    assert "too slowly" in message and "Nothing was changed" in message
    # Retried like a dropped connection, each attempt abandoned.
    assert trickle.connections == CANVAS_POLICY.max_attempts
    assert await eventually(lambda: trickle.hung_up == CANVAS_POLICY.max_attempts)
    assert trickle.completed == 0
    assert not (hostile.workdir / "Data Science 101").exists()
    no_partial_files(hostile.workdir, hostile.config.home)
    # The lock is free again.
    hostile.canvas.json_edits.clear()
    report = await pull_course(hostile)
    assert (report.target / "README.md").read_bytes() == b"read me\n"


async def test_a_listing_page_trickling_below_the_minimum_throughput_is_stalled(
    hostile: CanvasWorld, trickle: Trickle
) -> None:
    trickle.body = json.dumps([{"id": i} for i in range(5000)]).encode()
    trickle.content_type = "application/json"
    hostile.canvas.redirect(FILES_API, trickle.url + "/api/files")
    with pytest.raises(ListingFailed, match="too slowly"):
        await pull_course(hostile, min_throughput=MIN_RATE, throughput_window=WINDOW)
    assert trickle.connections == CANVAS_POLICY.max_attempts and trickle.completed == 0
    assert not (hostile.workdir / "Data Science 101").exists()


async def test_headers_trickled_a_byte_at_a_time_count_as_stalled(trickle: Trickle) -> None:
    """Headers that never end keep `sock_read` from firing too; they must be complete within
    the connect and read timeouts."""
    trickle.slow_headers = True
    policy = dataclasses.replace(CANVAS_POLICY.scaled(0.001), max_attempts=2)
    origin = Origin.of(trickle.url)
    session = ReadOnlySession(
        origin,
        StaticToken("t"),
        policy,
        timeout=aiohttp.ClientTimeout(sock_connect=0.3, sock_read=0.3),
    )
    async with session:
        with pytest.raises(ListingFailed, match="too slowly"):
            await session.get_json(trickle.url + "/api")
    assert trickle.connections == 2 and trickle.completed == 0
    assert await eventually(lambda: trickle.hung_up == 2)


def test_the_server_settings_reach_the_sync() -> None:
    from traitlets.config import Config

    config = Config()
    for name, value in {
        "deadline": 90.0,
        "min_throughput": 2048.0,
        "throughput_window": 5.0,
        "max_list_pages": 7,
        "max_list_entries": 70,
    }.items():
        config.PrivatePuller[name] = value
    sync = PrivatePuller(config=config).sync_config()
    assert (sync.deadline, sync.min_throughput, sync.throughput_window) == (90.0, 2048.0, 5.0)
    assert (sync.max_list_pages, sync.max_list_entries) == (7, 70)
    assert PrivatePuller().sync_config().deadline == 3600.0


# -- 7. addresses: checked where the connection is made ------------------------------------------


class FakeDNS(AbstractResolver):
    """DNS for tests: names to addresses, and a record of what was asked."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


ONE_TRY = dataclasses.replace(CANVAS_POLICY.scaled(0.001), max_attempts=1)


@pytest.mark.parametrize(
    ("name", "addresses"),
    [
        ("metadata.internal", ["169.254.169.254"]),  # the cloud's metadata service
        ("evil.test", ["127.0.0.1"]),
        ("intranet.test", ["10.1.2.3"]),
        ("router.test", ["192.168.0.1"]),
        ("cgnat.test", ["100.64.0.1"]),
        ("zero.test", ["0.0.0.0"]),
        ("v6.test", ["::1", "fe80::1", "fc00::1"]),
        ("mapped.test", ["::ffff:127.0.0.1"]),
        ("nat64.test", ["64:ff9b::a9fe:a9fe"]),  # 169.254.169.254 through NAT64
    ],
)
async def test_a_name_that_resolves_to_a_private_address_is_refused_before_connecting(
    listener: Listener, name: str, addresses: list[str]
) -> None:
    dns = FakeDNS({name: addresses, "canvas.example.edu": ["127.0.0.1"]})
    origin = Origin.of("https://canvas.example.edu")
    async with ReadOnlySession(origin, StaticToken("t"), ONE_TRY, resolver=dns) as session:
        with pytest.raises(UnsafeRequest) as refused:
            async with session.request("GET", f"https://{name}:{listener.port}/latest/meta-data"):
                pass
    assert dns.asked == [name]  # checked on the resolved addresses, at connection time
    assert f"pointed a request at {name}" in refused.value.message
    assert "private network" in refused.value.message
    assert listener.connections == 0


async def test_the_configured_origin_may_itself_be_private_and_public_addresses_pass(
    listener: Listener,
) -> None:
    """The control: the configured origin's own host connects whatever it resolves to (an
    on-premises Canvas, the fakes), and a name with a public address among private ones keeps
    only the public one."""
    dns = FakeDNS({"canvas.test": ["127.0.0.1"], "mixed.test": ["10.0.0.1", "127.0.0.1"]})
    origin = Origin.of(f"https://canvas.test:{listener.port}")
    async with ReadOnlySession(origin, StaticToken("t"), ONE_TRY, resolver=dns) as session:
        with pytest.raises(DownloadFailed):  # TLS to a listener that hangs up
            async with session.request("GET", f"https://canvas.test:{listener.port}/api"):
                pass
        assert listener.connections == 1
        with pytest.raises(UnsafeRequest):
            async with session.request("GET", f"https://mixed.test:{listener.port}/x"):
                pass
    assert listener.connections == 1
    assert is_public_address(parse_address("93.184.215.14"))  # type: ignore[arg-type]
    assert is_public_address(parse_address("2606:4700::1111"))  # type: ignore[arg-type]
    assert not is_public_address(parse_address("224.0.0.251"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "host",
    [
        "0.0.0.0",  # finding 7: "unspecified" reaches the server's own ports
        "[::]",
        "127.1",
        "2130706433",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::1]",
        "169.254.169.254",
        "100.64.0.1",
    ],
)
async def test_private_addresses_are_refused_however_they_are_spelt(
    listener: Listener, host: str
) -> None:
    origin = Origin.of("https://canvas.example.edu")
    async with ReadOnlySession(origin, StaticToken("t"), ONE_TRY) as session:
        with pytest.raises(UnsafeRequest, match="private network"):
            async with session.request("GET", f"https://{host}:{listener.port}/x"):
                pass
    assert listener.connections == 0


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "0x7f000001", "0x7f.1"])
async def test_names_a_system_resolver_turns_into_loopback_are_refused(
    listener: Listener, host: str
) -> None:
    """glibc's getaddrinfo reads these as 127.0.0.1 (c-ares, aiohttp's default when aiodns is
    installed, may find no such name); with either, nothing connects."""
    origin = Origin.of("https://canvas.example.edu")
    url = f"https://{host}:{listener.port}/x"
    try:
        socket.getaddrinfo(host.lower(), listener.port, type=socket.SOCK_STREAM)
        expected: Any = UnsafeRequest  # it resolves here: refused on its address
    except OSError:
        expected = (UnsafeRequest, DownloadFailed)  # no such name here: nothing to reach
    threaded = ThreadedResolver()
    async with ReadOnlySession(origin, StaticToken("t"), ONE_TRY, resolver=threaded) as session:
        with pytest.raises(expected):
            async with session.request("GET", url):
                pass
    async with ReadOnlySession(origin, StaticToken("t"), ONE_TRY) as session:
        with pytest.raises((UnsafeRequest, DownloadFailed)):
            async with session.request("GET", url):
                pass
    assert listener.connections == 0


@pytest.mark.parametrize("how", ["file url", "download redirect"])
async def test_canvas_pointing_at_another_local_address_reaches_nothing(
    hostile: CanvasWorld, listener: Listener, how: str
) -> None:
    """Canvas runs on 127.0.0.1 here, so 127.0.0.1 is the configured origin's own host; any
    other name for this machine is refused (`0.0.0.0`, `localhost`)."""
    if how == "file url":
        where = f"https://0.0.0.0:{listener.port}/files/1?sig=x"

        def edit(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [f | {"url": where} for f in files]

        hostile.canvas.edit_json(FILES_API, edit)
    else:
        hostile.canvas.redirect(DOWNLOAD, f"http://localhost:{listener.port}/store/1?sig=x")
    with pytest.raises(UnsafeRequest) as refused:
        await pull_course(hostile)
    assert "private network" in refused.value.message
    assert listener.connections == 0
    assert not (hostile.workdir / "Data Science 101").exists()


# -- 8. CANVAS_BASE_URL is an origin -------------------------------------------------------------


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    attempts: list[str] = []

    async def refuse(self: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any) -> None:
        attempts.append(str(URL(url)))
        raise AssertionError(f"a request to {URL(url).origin()} was attempted")

    monkeypatch.setattr(aiohttp.ClientSession, "_request", refuse)
    return attempts


@pytest.mark.parametrize(
    "base_url",
    [
        "https://apps.example.edu/canvas/",  # finding 8: the token went to apps.example.edu/api
        "https://apps.example.edu/canvas",
        "https://c.example.edu/?x=1",
        "https://c.example.edu#top",
        "https://u@c.example.edu",
        "https://u:secret@c.example.edu",
    ],
)
async def test_a_canvas_base_url_that_is_not_an_origin_is_refused_before_any_request(
    base_url: str, no_connections: list[str], tmp_path: Path
) -> None:
    credentials = EnvCredentialSource(
        {"CANVAS_BASE_URL": base_url, "CANVAS_ACCESS_TOKEN": "1~" + "s" * 64}
    )
    with pytest.raises(ConfigurationError) as refused:
        await pull(
            "https://apps.example.edu/courses/1/files",
            parent_dir=tmp_path,
            credentials=credentials,
            config=SyncConfig(home=tmp_path / "pp"),
        )
    with pytest.raises(ValueError) as hub_says:
        normalize_canvas_url(base_url)
    assert str(hub_says.value) in refused.value.message  # the hub's own words
    assert "CANVAS_BASE_URL" in refused.value.message
    assert "secret" not in refused.value.message and "u@" not in refused.value.message
    assert no_connections == []


async def test_a_canvas_base_url_with_a_path_sends_nothing_to_that_host(
    hostile: CanvasWorld,
) -> None:
    """With a real Canvas listening there: nothing reaches it, token or not."""
    for suffix in ("/canvas/", "/?x=1"):
        credentials = EnvCredentialSource(
            {
                "CANVAS_BASE_URL": hostile.canvas.base_url + suffix,
                "CANVAS_ACCESS_TOKEN": hostile.student.token,
            }
        )
        with pytest.raises(ConfigurationError, match="must be just the Canvas address"):
            await pull(
                hostile.url(),
                parent_dir=hostile.workdir,
                credentials=credentials,
                config=hostile.config,
            )
    assert hostile.canvas.requests == []


async def test_the_hubs_canvas_url_is_checked_the_same_way(hostile: CanvasWorld) -> None:
    async with serve(StubHub()) as hub:
        token = hostile.canvas.issue_token(hostile.student)
        state = canvas_state(hostile, token)
        state[AUTH_STATE_KEY]["canvas_base_url"] = hostile.canvas.base_url + "/canvas/"
        hub.auth_state = state
        source = HubCredentialSource(hub.env("ada"), renew_delay=0)
        with pytest.raises(ConfigurationError, match="must be just the Canvas address"):
            await source.canvas()
    assert hostile.canvas.requests == []


# -- through a real Jupyter server ---------------------------------------------------------------


@dataclass
class SlowWorld:
    canvas_thread: ServiceThread
    trickle_thread: ServiceThread
    listener_thread: ServiceThread
    server: JupyterServer
    course_url: str
    token: str
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def canvas(self) -> HostileCanvas:
        return self.canvas_thread.service  # type: ignore[no-any-return]

    @property
    def trickle(self) -> Trickle:
        return self.trickle_thread.service  # type: ignore[no-any-return]

    @property
    def listener(self) -> Listener:
        return self.listener_thread.service  # type: ignore[no-any-return]

    def sync(self, **params: str) -> list[dict[str, Any]]:
        events = self.server.sync(self.course_url, timeout=30, **params)
        assert events and events[-1]["phase"] in ("finished", "error")
        assert self.token not in str(events)
        return events


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlowWorld]:
    canvas_thread = ServiceThread(HostileCanvas)
    trickle_thread = ServiceThread(Trickle)
    listener_thread = ServiceThread(Listener)

    def populate() -> tuple[str, str]:
        canvas: HostileCanvas = canvas_thread.service
        student = canvas.add_user("Ada Student")
        course = canvas.add_course("Slow Course")
        course.enroll(student)
        course.files.add_file("README.md", b"0123456789\n")
        return f"{canvas.base_url}/courses/{course.id}/files", student.token

    course_url, token = canvas_thread.call(populate)
    server = JupyterServer(
        tmp_path_factory.mktemp("slow-server"),
        env={"CANVAS_BASE_URL": canvas_thread.service.base_url, "CANVAS_ACCESS_TOKEN": token},
        args=[
            "--PrivatePuller.backoff_scale=0.01",
            f"--PrivatePuller.min_throughput={MIN_RATE}",
            f"--PrivatePuller.throughput_window={WINDOW / 2}",
            "--PrivatePuller.deadline=30",
        ],
    )
    try:
        with server:
            yield SlowWorld(
                canvas_thread, trickle_thread, listener_thread, server, course_url, token
            )
    finally:
        for thread in (canvas_thread, trickle_thread, listener_thread):
            thread.close()


def test_a_trickling_download_through_the_server_ends_and_frees_the_folder(
    slow: SlowWorld,
) -> None:
    slow.canvas_thread.call(slow.canvas.redirect, DOWNLOAD, slow.trickle.url + "/slow")
    try:
        # A click whose page is closed at once: the sync goes on without anyone watching,
        # stalls, and must still end and let go of the folder.
        with requests.get(
            slow.server.url + "git-pull/api",
            params={"repo": slow.course_url, "targetpath": "Slow"},
            headers=slow.server.auth,
            stream=True,
            timeout=30,
        ) as abandoned:
            next(abandoned.iter_lines())
        codes = []
        for _ in range(60):  # every later click is answered; "busy" only while it runs
            events = slow.sync(targetpath="Slow")
            codes.append(events[-1].get("error", {}).get("code"))
            if codes[-1] != "busy":
                break
            time.sleep(0.25)
        # That click ran, and stalled in its turn: it says so.
        assert codes[-1] == "download_failed", codes
        assert "too slowly" in events[-1]["error"]["message"]
        assert not (slow.server.root / "Slow").exists()
    finally:
        slow.canvas_thread.call(slow.canvas.redirects.clear)
    events = slow.sync(targetpath="Slow")
    assert events[-1] == {"phase": "finished"}, outputs(events)
    assert tree(slow.server.root / "Slow") == {"README.md": b"0123456789\n"}


def test_a_private_address_through_the_server_is_refused(slow: SlowWorld) -> None:
    def add_file() -> None:  # a file the local origin has not stored yet
        [course] = slow.canvas.courses.values()
        course.files.add_file("new.csv", b"a,b\n")

    slow.canvas_thread.call(add_file)
    port = slow.listener.port
    slow.canvas_thread.call(slow.canvas.redirect, DOWNLOAD, f"http://localhost:{port}/x")
    try:
        events = slow.sync(targetpath="Local")
    finally:
        slow.canvas_thread.call(slow.canvas.redirects.clear)
    error = events[-1]["error"]
    assert error["code"] == "unsafe_request", events
    assert "private network" in error["message"]
    assert slow.listener.connections == 0
    assert not (slow.server.root / "Local").exists()
