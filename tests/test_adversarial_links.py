"""Hostile links: no credential ever leaves its origin, and `targetpath` stays in the home folder.

A link is something anyone can send, and a student's Canvas token can do anything the student
can do. These tests send links that pretend to be Canvas (other hosts, user info, case, IDNs,
trailing dots, ports, scheme changes, encoded path tricks), make Canvas and Drive themselves
point elsewhere (redirects, a file's `url`, a `Link: rel="next"`), and check with a second,
real HTTP server on loopback ("evil", `adversarial_helpers.EvilServer`) that records every
header it gets, that no token, and no Drive resource key, ever arrives anywhere but its origin.
The same links go through a real Jupyter server's `/git-pull/api` at the end of the file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from adversarial_helpers import (
    EvilServer,
    HostileCanvas,
    HostileDrive,
    Reply,
    evil_fixture,  # noqa: F401  (the `evil` fixture)
    json_reply,
)
from conftest import CanvasWorld
from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.errors import (
    ListingFailed,
    PullError,
    UnsafeRequest,
    UnsupportedURL,
    WrongHost,
)
from privatepuller.pull import parse_link, pull
from privatepuller.sync.config import SyncConfig
from privatepuller.testing.canvas.model import FakeCourse, FakeUser
from privatepuller.testing.drive.fake import DEFAULT_SA_EMAIL, FakeItem
from server_helpers import DriveThread, JupyterServer, ServiceThread, outputs, tree


@pytest.fixture
async def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CanvasWorld]:
    """conftest's `world`, on a Canvas that can be made to misbehave."""
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


async def pull_course(world: CanvasWorld, suffix: str = "") -> Any:
    return await pull(
        world.url(suffix),
        parent_dir=world.workdir,
        credentials=world.credentials,
        config=world.config,
    )


def assert_evil_got_no_credential(evil: EvilServer, *secrets: str) -> None:
    assert evil.authorization_headers == []
    assert evil.carried(*secrets) == []
    assert not [r for r in evil.requests if "x-goog-drive-resource-keys" in r.headers]


# -- links that pretend to be Canvas -----------------------------------------------------------


def hostile_variants(base: URL, course: int, evil: URL | None = None) -> list[str]:
    port = base.port
    path = f"/courses/{course}/files"
    variants = [
        f"https://evil.example{path}",
        f"http://127.0.0.1:{port}@evil.example{path}",  # userinfo trick: the host is evil
        f"http://{base.host}:{port}.evil.example{path}",
        f"http://evil.example.:{port}{path}",  # trailing dot
        f"http://localhost:{port}{path}",  # same machine, another name: another origin
        f"http://127.1:{port}{path}",  # the same address, spelt differently
        f"http://2130706433:{port}{path}",
        f"http://0x7f.0.0.1:{port}{path}",
        f"http://[::1]:{port}{path}",
        f"http://127.0.0.1:{(port or 0) + 1}{path}",  # another port
        f"https://127.0.0.1:{port}{path}",  # another scheme
        f"http://xn--80ak6aa92e.com{path}",  # an IDN
        f"http://EVIL.example{path}/folder/Week%201",  # mixed case
        f"http://evil@127.0.0.1:{port}{path}",  # userinfo on the real Canvas: refused, not cleaned
        f"http://127.0.0.1:{port}%40evil.example{path}",  # an encoded "@"
        f" http://evil.example{path}\n",  # whitespace around it
    ]
    if evil is not None:  # a real server listening on loopback, recording what it gets
        variants += [
            f"http://{evil.host}:{evil.port}{path}",
            f"http://127.0.0.1:{port}@{evil.host}:{evil.port}{path}",
            f"http://{evil.host}:{evil.port}{path}/folder/..%2F..%2F",
        ]
    return variants


async def test_hostile_hosts_never_receive_a_request(world: CanvasWorld, evil: EvilServer) -> None:
    base = URL(world.canvas.base_url)
    for url in hostile_variants(base, world.course.id, URL(evil.url)):
        # Refused as another host, or as not a link to pull at all.
        with pytest.raises((WrongHost, UnsupportedURL)) as refused:
            await pull(url, parent_dir=world.workdir, credentials=world.credentials)
        assert "evil@" not in refused.value.message
    assert world.canvas.requests == []
    assert evil.requests == []
    assert list(world.workdir.iterdir()) == []


async def test_user_info_is_refused_even_on_the_configured_canvas(world: CanvasWorld) -> None:
    # Dropping the user info would turn this link into the configured Canvas's: it is refused.
    url = world.url().replace("http://", "http://ada:hunter2@")
    with pytest.raises(UnsupportedURL) as refused:
        await pull(url, parent_dir=world.workdir, credentials=world.credentials)
    assert "user name" in refused.value.message
    assert "hunter2" not in refused.value.message and "ada" not in refused.value.message
    assert world.canvas.requests == []


def _no_connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    attempts: list[str] = []

    async def refuse(self: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any) -> None:
        attempts.append(str(URL(url).origin()))
        raise AssertionError(f"a connection to {URL(url).origin()} was attempted")

    monkeypatch.setattr(aiohttp.ClientSession, "_request", refuse)
    return attempts


@pytest.mark.parametrize(
    "link",
    [
        "http://canvas.example.edu/courses/1/files",  # downgrade to plain http
        "https://canvas.example.edu:8443/courses/1/files",  # another port
        "https://canvas.example.edu.evil.example/courses/1/files",
        "https://evil.example/courses/1/files",
        "https://c\u0430nvas.example.edu/courses/1/files",  # a Cyrillic "а": an IDN lookalike
        "https://xn--cnvas-3ve.example.edu/courses/1/files",
        "https://canvas.example.edu%2eevil.example/courses/1/files",
        "https://canvas.example.edu@evil.example/courses/1/files",
        "https://canvas.example.edu\\@evil.example/courses/1/files",
        "https://evil.example/files/5/download",
        "https://evil.example/users/self/files",
    ],
)
async def test_links_that_imitate_an_https_canvas_are_refused_before_any_connection(
    link: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    attempts = _no_connections(monkeypatch)
    credentials = EnvCredentialSource(
        {"CANVAS_BASE_URL": "https://canvas.example.edu", "CANVAS_ACCESS_TOKEN": "1~" + "s" * 64}
    )
    config = SyncConfig(home=tmp_path / "pp")
    with pytest.raises((WrongHost, UnsupportedURL)):
        await pull(link, parent_dir=tmp_path, credentials=credentials, config=config)
    assert attempts == []

    # The control: the same Canvas, spelt differently, is accepted (and would connect there).
    same = "HTTPS://Canvas.Example.EDU.:443/courses/1/files"
    with pytest.raises(AssertionError, match="a connection to https://canvas.example.edu"):
        await pull(same, parent_dir=tmp_path, credentials=credentials, config=config)
    assert set(attempts) == {"https://canvas.example.edu"}


@pytest.mark.parametrize(
    "suffix",
    ["/folder/..%2F..%2Fusers%2Fself", "/folder/a%2Fb", "/folder/a%00b", "/folder/x/..%2f"],
)
async def test_percent_encoded_path_tricks_are_refused(world: CanvasWorld, suffix: str) -> None:
    with pytest.raises(UnsupportedURL):
        await pull(world.url(suffix), parent_dir=world.workdir, credentials=world.credentials)
    assert world.canvas.requests == []


async def test_dot_segments_are_normalised_within_the_same_course(world: CanvasWorld) -> None:
    # yarl resolves "." and "%2e%2e" segments before we see them: still this course's files.
    assert parse_link(world.url("/folder/%2e%2e")) == parse_link(world.url())
    assert parse_link(world.url("/folder/.")) == parse_link(world.url())


async def test_mixed_case_of_the_real_host_is_the_same_canvas(world: CanvasWorld) -> None:
    url = world.url().replace("http://", "HTTP://")
    report = await pull(
        url, parent_dir=world.workdir, credentials=world.credentials, config=world.config
    )
    assert (report.target / "README.md").exists()


# -- Canvas itself points elsewhere ------------------------------------------------------------


async def test_canvas_api_redirect_to_another_origin_carries_no_token(
    hostile: CanvasWorld, evil: EvilServer
) -> None:
    # The file list answers with a redirect to another origin, which serves a login page.
    page = evil.reply("/login", Reply(b"<html>Log in</html>", content_type="text/html"))
    hostile.canvas.redirect(r"^/api/v1/courses/\d+/files\?", page)
    with pytest.raises(ListingFailed, match="Canvas returned something unexpected"):
        await pull_course(hostile)
    assert [r.target.split("?")[0] for r in evil.requests] == ["/login"]
    assert_evil_got_no_credential(evil, hostile.student.token)
    assert list(hostile.workdir.iterdir()) == []


def _point_files_at(evil: EvilServer, body: bytes) -> Any:
    """A JSON edit: every file's `url` goes to `evil`, which serves `body` (sizes to match)."""
    url = evil.reply("/store/", Reply(body))

    def edit(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [f | {"url": f"{url}{f['id']}?sig=x", "size": len(body)} for f in files]

    return edit


@pytest.mark.parametrize("how", ["file url", "download redirect", "api redirect"])
async def test_canvas_pointing_at_another_origin_never_sends_it_the_token(
    hostile: CanvasWorld, evil: EvilServer, how: str
) -> None:
    canvas = hostile.canvas
    body = b"from elsewhere\n"
    if how == "file url":  # a file object's `url` names another origin
        canvas.edit_json(r"^/api/v1/courses/\d+/files\?", _point_files_at(evil, body))
    elif how == "download redirect":  # /files/:id/download redirects there (a file store)
        canvas.redirect(r"^/files/\d+/download", evil.reply("/store/", Reply(body)))
        sized = [f | {"size": len(body)} for f in await _listing(hostile)]
        canvas.edit_json(r"^/api/v1/courses/\d+/files\?", lambda _: sized)
    else:  # the file list itself comes from there, naming files there
        listed = await _listing(hostile)
        files = _point_files_at(evil, body)(listed)
        canvas.redirect(r"^/api/v1/courses/\d+/files\?", evil.reply("/api/", json_reply(files)))
    report = await pull_course(hostile)
    assert tree(report.target) == {"README.md": body, "Week 1/intro.ipynb": body}
    assert len(evil.requests) >= 2 and {r.method for r in evil.requests} == {"GET"}
    assert_evil_got_no_credential(evil, hostile.student.token)
    assert canvas.non_get_requests == []
    # Canvas itself got the token on every request.
    assert all(r.authorization == f"Bearer {hostile.student.token}" for r in canvas.requests)


async def _listing(world: CanvasWorld) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        url = f"{world.canvas.base_url}/api/v1/courses/{world.course.id}/files?per_page=100"
        headers = {"Authorization": f"Bearer {world.student.token}"}
        async with http.get(url, headers=headers) as response:
            return await response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "next_url",
    [
        "{evil}/api/v1/courses/{course}/files?page=2&per_page=100",
        "//{evil_authority}/api/v1/courses/{course}/files?page=2",  # scheme-relative
        "{evil}/../api/v1/courses/{course}/files?page=2",
        "https://{canvas_authority}/api/v1/courses/{course}/files?page=2",  # another scheme
        "http://ada@{canvas_authority}/api/v1/courses/{course}/files?page=2",  # user info
    ],
)
async def test_a_next_page_on_another_origin_is_refused_not_followed(
    hostile: CanvasWorld, evil: EvilServer, next_url: str
) -> None:
    target = next_url.format(
        evil=evil.url,
        evil_authority=URL(evil.url).raw_authority,
        canvas_authority=URL(hostile.canvas.base_url).raw_authority,
        course=hostile.course.id,
    )
    hostile.canvas.edit_link(r"^/api/v1/courses/\d+/files\?", lambda _: f'<{target}>; rel="next"')
    with pytest.raises((ListingFailed, UnsafeRequest)):
        await pull_course(hostile)
    assert evil.requests == []
    assert not [r for r in hostile.canvas.requests if "page=2" in r.path_qs]
    assert list(hostile.workdir.iterdir()) == []


async def test_a_redirect_to_plain_http_elsewhere_is_never_sent(hostile: CanvasWorld) -> None:
    hostile.canvas.redirect(r"^/files/\d+/download", "http://evil.example/store/1?sig=x")
    with pytest.raises(UnsafeRequest, match="not https"):
        await pull_course(hostile)
    assert list(hostile.workdir.iterdir()) == []


# -- Drive ---------------------------------------------------------------------------------------


@dataclass
class DriveCase:
    drive: HostileDrive
    token: str
    folder: FakeItem  # shared only by link: needs its resource key
    key: str
    keys: list[str]  # the resource keys of the folder and of everything in it
    credentials: EnvCredentialSource
    config: SyncConfig
    workdir: Path

    def link(self) -> str:
        return f"https://drive.google.com/drive/folders/{self.folder.id}?resourcekey={self.key}"


@pytest.fixture
async def drive_case(tmp_path: Path) -> AsyncIterator[DriveCase]:
    async with HostileDrive() as drive:
        folder = drive.add_folder("By link", needs_resource_key=True)
        inner = drive.add_folder("inner", folder.id)
        a = drive.add_file("a.txt", inner.id, b"0123456789\n", mime_type="text/plain")
        key = drive.item(folder.id).resource_key
        assert key is not None
        keys = [k for i in (folder, inner, a) if (k := drive.item(i.id).resource_key)]
        token = drive.issue_token(DEFAULT_SA_EMAIL)
        credentials = EnvCredentialSource(
            {"GOOGLE_DRIVE_ACCESS_TOKEN": token, "GOOGLE_DRIVE_API_URL": drive.api_url}
        )
        workdir = tmp_path / "home"
        workdir.mkdir()
        config = SyncConfig(home=tmp_path / "pp-home", backoff_scale=0.01)
        yield DriveCase(drive, token, folder, key, keys, credentials, config, workdir)


@pytest.mark.parametrize("what", ["download", "listing", "metadata"])
async def test_drive_redirects_carry_neither_the_token_nor_resource_keys(
    drive_case: DriveCase, evil: EvilServer, what: str
) -> None:
    case = drive_case
    if what == "download":  # alt=media answered with a redirect, as to googleusercontent.com
        store = evil.reply("/media", Reply(b"from evil!\n"))
        case.drive.redirect(r"alt=media", store)
    elif what == "listing":
        case.drive.redirect(r"^/drive/v3/files\?", evil.reply("/list", json_reply({"files": []})))
    else:
        case.drive.redirect(rf"^/drive/v3/files/{case.folder.id}\?", evil.reply("/meta", Reply()))
    try:
        report = await pull(
            case.link(), parent_dir=case.workdir, credentials=case.credentials, config=case.config
        )
    except PullError as error:
        assert what == "metadata" and "unexpected" in error.message
    else:
        expected = {"inner/a.txt": b"from evil!\n"} if what == "download" else {}
        assert tree(report.target) == expected
    assert evil.requests
    assert_evil_got_no_credential(evil, case.token, *case.keys)
    # The Drive API got the token and the key with every request.
    assert all(r.authorization == f"Bearer {case.token}" for r in case.drive.requests)
    assert all(
        f"{case.folder.id}/{case.key}" in (r.resource_keys or "") for r in case.drive.requests
    )


@pytest.mark.parametrize(
    "link",
    [
        "https://drive.google.com@{evil}/drive/folders/{id}",  # the host is evil: not Drive
        "https://drive.google.com.{evil_host}.nip.io/drive/folders/{id}",
        "https://drive.google.com/drive/folders/{id}?resourcekey=k%0d%0aAuthorization:%20x",
        "https://drive.google.com/drive/folders/..%2F..%2Fabout",
        "https://drive.google.com/drive/folders/%2e%2e%2F%2e%2e%2Fabout",
        "https://drive.google.com/open?id={id}%26alt%3Dmedia",
        "https://drive.google.com/drive/folders/{id}?resourcekey=../../x",
    ],
)
async def test_drive_lookalike_and_malformed_links_reach_nothing(
    drive_case: DriveCase, evil: EvilServer, link: str
) -> None:
    case = drive_case
    url = link.format(
        evil=URL(evil.url).raw_authority, evil_host=URL(evil.url).host, id=case.folder.id
    )
    with pytest.raises(UnsupportedURL):
        await pull(url, parent_dir=case.workdir, credentials=case.credentials, config=case.config)
    assert case.drive.requests == []
    assert evil.requests == []


# -- the same, through a real Jupyter server ------------------------------------------------------


class HostileDriveThread(DriveThread):
    def __init__(self) -> None:
        ServiceThread.__init__(self, HostileDrive)


@dataclass
class ServerWorld:
    canvas_thread: ServiceThread
    drive_thread: HostileDriveThread
    evil_thread: ServiceThread
    server: JupyterServer
    student: FakeUser
    course: FakeCourse
    outside: Path  # a folder next to the server's root folder (the student's home)

    @property
    def canvas(self) -> HostileCanvas:
        return self.canvas_thread.service  # type: ignore[no-any-return]

    @property
    def evil(self) -> EvilServer:
        return self.evil_thread.service  # type: ignore[no-any-return]

    @property
    def drive(self) -> HostileDrive:
        return self.drive_thread.service  # type: ignore[no-any-return]

    def url(self, course: FakeCourse | None = None) -> str:
        return f"{self.canvas.base_url}/courses/{(course or self.course).id}/files"

    def sync(self, repo: str, **params: str) -> list[dict[str, Any]]:
        events = self.server.sync(repo, **params)
        assert events and events[-1]["phase"] in ("finished", "error")
        assert self.student.token not in str(events)
        return events

    def token_carrying_requests(self) -> int:
        return len(self.canvas.requests) + len(self.drive.requests)


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerWorld]:
    canvas_thread = ServiceThread(HostileCanvas)
    evil_thread = ServiceThread(EvilServer)
    drive_thread = HostileDriveThread()

    def populate() -> tuple[FakeUser, FakeCourse]:
        canvas: HostileCanvas = canvas_thread.service
        student = canvas.add_user("Ada Student")
        course = canvas.add_course("Data Science 101")
        course.enroll(student)
        course.files.add_file("README.md", b"0123456789\n")
        return student, course

    student, course = canvas_thread.call(populate)
    workdir = tmp_path_factory.mktemp("server")
    outside = workdir / "outside"
    outside.mkdir()
    server = JupyterServer(
        workdir,
        env={
            "CANVAS_BASE_URL": canvas_thread.service.base_url,
            "CANVAS_ACCESS_TOKEN": student.token,
            **drive_thread.env(),
        },
        args=["--PrivatePuller.backoff_scale=0.01"],
    )
    try:
        with server:
            yield ServerWorld(
                canvas_thread, drive_thread, evil_thread, server, student, course, outside
            )
            log = server.log()
    finally:
        for thread in (canvas_thread, drive_thread, evil_thread):
            thread.close()
    assert student.token not in log


def test_hostile_links_through_the_server_reach_no_token_carrying_origin(sw: ServerWorld) -> None:
    before = sw.token_carrying_requests()
    evil = URL(sw.evil.url)
    links = hostile_variants(URL(sw.canvas.base_url), sw.course.id, evil)
    links += [
        # Not a Drive link (the host is evil): nbgitpuller's, whose git clone goes there.
        f"http://drive.google.com@{evil.raw_authority}/drive/folders/1aaaaaaaaaaaaaaaaaaa",
        "https://drive.google.com/drive/folders/1aaaaaaaaaaaaaaaaaaa?resourcekey=%0d%0aX:y",
    ]
    for link in links:
        events = sw.sync(link.strip(), targetpath="hostile")
        assert events[-1]["phase"] == "error", (link, events)
        assert not (sw.server.root / "hostile").exists()
    assert sw.token_carrying_requests() == before
    # Links that are not ours went to nbgitpuller, whose git has no token: the evil server
    # saw git's requests, none with a credential.
    assert any(r.headers.get("user-agent", "").startswith("git/") for r in sw.evil.requests)
    assert sw.evil.authorization_headers == []
    assert sw.evil.carried(sw.student.token) == []


def test_a_redirect_to_another_origin_through_the_server_carries_no_token(sw: ServerWorld) -> None:
    store = sw.evil_thread.call(sw.evil.reply, "/server-store/", Reply(b"evil bytes\n"))
    sw.canvas_thread.call(sw.canvas.redirect, r"^/files/\d+/download", store)
    try:
        events = sw.sync(sw.url(), targetpath="Redirected")
    finally:
        sw.canvas_thread.call(sw.canvas.redirects.clear)
    assert events[-1] == {"phase": "finished"}, outputs(events)
    assert tree(sw.server.root / "Redirected") == {"README.md": b"evil bytes\n"}
    assert [r for r in sw.evil.requests if r.target.startswith("/server-store/")]
    assert sw.evil.authorization_headers == []


def test_drive_redirect_through_the_server_carries_neither_token_nor_key(sw: ServerWorld) -> None:
    def make() -> tuple[str, str]:
        folder = sw.drive.add_folder("Linked", needs_resource_key=True)
        sw.drive.add_file("a.txt", folder.id, b"0123456789\n", mime_type="text/plain")
        key = sw.drive.item(folder.id).resource_key
        assert key is not None
        sw.drive.redirect(r"alt=media", sw.evil.url + "/drive-media")
        return f"https://drive.google.com/drive/folders/{folder.id}?resourcekey={key}", key

    link, key = sw.drive_thread.call(make)
    try:
        events = sw.sync(link, targetpath="Linked")
    finally:
        sw.drive_thread.call(sw.drive.redirects.clear)
    assert events[-1] == {"phase": "finished"}, outputs(events)
    media = [r for r in sw.evil.requests if r.target.startswith("/drive-media")]
    assert media
    token = sw.server.env["GOOGLE_DRIVE_ACCESS_TOKEN"]
    assert sw.evil.carried(token, key) == []
    assert all("x-goog-drive-resource-keys" not in r.headers for r in sw.evil.requests)
    assert sw.evil.authorization_headers == []


@pytest.mark.parametrize(
    "targetpath",
    [
        "../outside",
        "../outside/x",
        "/tmp/x",
        "a/../../outside",
        "~/x",
        "escape",  # a symbolic link in the home folder, to outside it
        "escape/Week 1",
        "x/.git",
        ".git",
        "a\\..\\..\\outside",
    ],
)
def test_unsafe_targetpaths_are_refused_before_any_request(
    sw: ServerWorld, targetpath: str
) -> None:
    escape = sw.server.root / "escape"
    if not escape.is_symlink():
        escape.symlink_to(sw.outside)
    before = sw.token_carrying_requests()
    events = sw.sync(sw.url(), targetpath=targetpath)
    error = events[-1]["error"]
    assert error["code"] == "targetpath"
    assert "Ask your instructor to fix the link" in error["message"]
    assert sw.token_carrying_requests() == before  # refused before Canvas was asked anything
    assert list(sw.outside.iterdir()) == []
    assert not (sw.server.root / "outside").exists()


def test_a_default_folder_name_that_is_a_link_out_of_the_home_is_refused(sw: ServerWorld) -> None:
    def make() -> FakeCourse:
        course = sw.canvas.add_course("Escape Hatch")
        course.enroll(sw.student)
        course.files.add_file("a.txt", b"a\n")
        return course

    course = sw.canvas_thread.call(make)
    link = sw.server.root / "Escape Hatch"
    link.symlink_to(sw.outside)
    try:
        events = sw.sync(sw.url(course))  # no targetpath: the course's own name
    finally:
        link.unlink()
    assert events[-1]["error"]["code"] == "targetpath"
    assert list(sw.outside.iterdir()) == []
