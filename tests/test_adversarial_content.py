"""Hostile content: names, links in the student's folder, lying sizes, loops and huge listings.

File and folder names come from other people (instructors, and every member of a Canvas group),
and listings and bodies come from servers that may be broken. Whatever they send, nothing is
written outside the target folder, memory stays bounded, and a failure says what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import time
import tracemalloc
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from adversarial_helpers import (
    EvilServer,
    HostileCanvas,
    Reply,
    evil_fixture,  # noqa: F401  (the `evil` fixture)
)
from conftest import CanvasWorld, open_repo
from gdrive_helpers import DriveWorld, make_world, pull_drive
from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.errors import DownloadFailed, ListingFailed, MergeFailed, PullError
from privatepuller.providers.canvas.links import CanvasFolder
from privatepuller.providers.gdrive.links import GoogleDriveFolder
from privatepuller.providers.gdrive.source import MAX_FOLDERS
from privatepuller.pull import pull
from privatepuller.sizes import MiB
from privatepuller.sync.config import SyncConfig
from privatepuller.sync.names import MAX_COMPONENT_BYTES, MAX_PATH_BYTES
from privatepuller.sync.plan import apply_limits, drop_unwritable
from privatepuller.testing.drive.fake import FakeDrive

# Names a file or folder can have in Canvas or Drive (Drive allows "/" too).
HOSTILE_NAMES = [
    "..",
    ".",
    "...",
    "../../escape.txt",
    "/etc/passwd",
    "a/b.txt",
    "a\\b.txt",
    "..\\..\\escape.txt",
    "nul\x00byte.txt",
    "bell\x07 escape\x1b[31m red.txt",
    "new\nline.txt",
    "carriage\rreturn.txt",
    "c1\x85\x9b control.txt",
    "line\u2028separator.txt",
    "\u202eexe.txt",  # displays as "txt.exe"
    ".git",
    ".GIT",
    ".git.",
    ".git ",
    "git~1",
    "con",
    "AUX.txt",
    "~",
    "~/.bashrc",
    "$HOME",
    "-rf",
    'a:b*c?d"e<f>g|h',
    "   ",
    "x" * 1000 + ".ipynb",
    "é" * 300,  # 600 bytes of UTF-8
    "Data.csv",
    "data.csv",
    "DATA.CSV",
    "caf\u00e9.txt",  # NFC
    "cafe\u0301.txt",  # NFD: the same name on macOS
]


def files_under(target: Path) -> dict[str, bytes]:
    """Every file and link below `target` (not following links), except its own `.git`."""
    found: dict[str, bytes] = {}
    for folder, dirs, files in os.walk(target):
        here = Path(folder)
        if here == target:
            dirs[:] = [d for d in dirs if d != ".git"]
        for name in files + [d for d in dirs if (here / d).is_symlink()]:
            path = here / name
            rel = path.relative_to(target).as_posix()
            found[rel] = b"<link>" if path.is_symlink() else path.read_bytes()
    return found


def assert_safe_tree(target: Path, expected_count: int) -> dict[str, bytes]:
    files = files_under(target)
    assert len(files) == expected_count, sorted(files)
    real_target = os.path.realpath(target)
    names_by_folder: dict[str, set[str]] = {}
    for rel in files:
        full = os.path.realpath(target / rel)
        assert full.startswith(real_target + os.sep), rel
        parts = rel.split("/")
        for depth, part in enumerate(parts):
            assert part not in ("", ".", "..") and part.lower() != ".git", rel
            assert len(part.encode()) <= MAX_COMPONENT_BYTES, rel
            assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in part), rel
            assert not any("\u202a" <= c <= "\u202e" for c in part), rel
            names_by_folder.setdefault("/".join(parts[:depth]), set()).add(part)
    for names in names_by_folder.values():
        assert len({n.casefold() for n in names}) == len(names), names  # case-insensitive disks
    return files


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the student's home that must stay exactly as it is."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("outside's own\n")
    (folder / "new.ipynb").write_text("outside's own notebook\n")
    return folder


def outside_state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


async def pull_course(world: CanvasWorld, suffix: str = "", **config: Any) -> Any:
    cfg = SyncConfig(home=world.config.home, backoff_scale=0.001, **config)
    return await pull(
        world.url(suffix), parent_dir=world.workdir, credentials=world.credentials, config=cfg
    )


# -- hostile names --------------------------------------------------------------------------------


async def test_hostile_canvas_names_stay_inside_the_target(
    world: CanvasWorld, outside: Path
) -> None:
    files = world.course.files
    for i, name in enumerate(HOSTILE_NAMES):
        files.add_file(f"file{i}", f"file {i}\n".encode(), display_name=name)
    # Folder names: Canvas takes them literally (the fake too: ".." is a folder's name here).
    files.add_file("../up.txt", b"in a folder named ..\n")
    files.add_file("./here.txt", b"in a folder named .\n")
    files.add_file("../../../deep.txt", b"three folders named ..\n")
    files.add_file(".git/config", b"[core]\n\tfsmonitor = touch pwned\n")
    files.add_file(".GIT/hooks/post-merge", b"#!/bin/sh\ntouch pwned\n")
    files.add_file("x" * 300 + "/long.txt", b"in a long-named folder\n")
    for i, name in enumerate(["../../etc", "a\x00b", "/abs", "a\\..\\b", "\u202e"]):
        files.add_file(f"renamed{i}/f.txt", f"renamed {i}\n".encode())
        files.folder(f"renamed{i}").name = name  # a folder name no path could spell
    count = 3 + len(HOSTILE_NAMES) + 3 + 3 + 5

    report = await pull_course(world)
    target = report.target
    assert target.parent == world.workdir
    got = assert_safe_tree(target, count)
    assert sorted(got.values()) == sorted(f.read() for f in files.all_files())
    assert os.listdir(world.workdir) == [target.name]
    assert outside_state(outside) == {
        "new.ipynb": b"outside's own notebook\n",
        "secret.txt": b"outside's own\n",
    }
    # The folders named ".git" landed beside git's own, which they did not touch.
    [config] = [p for p, content in got.items() if b"fsmonitor" in content]
    assert config.endswith("/config") and "git" in config.split("/")[0]
    assert "fsmonitor" not in (target / ".git" / "config").read_text()
    assert not (target / ".git" / "hooks" / "post-merge").exists()
    assert not list(world.workdir.rglob("pwned")) and not (Path.cwd() / "pwned").exists()

    # The same listing always gives the same names: a second sync changes nothing.
    again = await pull_course(world)
    assert (again.added, again.removed, again.updated, again.downloaded_files) == ((), (), (), 0)
    assert files_under(target) == got


@pytest.fixture
async def drive_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DriveWorld]:
    monkeypatch.setenv("PRIVATEPULLER_HOME", str(tmp_path / "pp-home"))
    for name in ("GOOGLE_DRIVE_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    async with FakeDrive() as drive:
        yield await make_world(tmp_path, drive)


async def test_hostile_drive_names_stay_inside_the_target(
    drive_world: DriveWorld, outside: Path
) -> None:
    drive = drive_world.drive
    root = drive.add_folder("Hostile names", share_with=drive_world.email)
    for i, name in enumerate(HOSTILE_NAMES):
        drive.add_file(name, root.id, f"file {i}\n".encode(), mime_type="text/plain")
    for i, name in enumerate(["..", "../..", "/", ".git", "a/../../b", "\x00", "\u202e.."]):
        folder = drive.add_folder(name, root.id)
        drive.add_file("../f.txt", folder.id, f"folder {i}\n".encode(), mime_type="text/plain")
    drive.add_google_doc("../../Syllabus", root.id, "document", "# Syllabus\n")

    report = await pull_drive(drive_world, drive_world.folder_url(root))
    got = assert_safe_tree(report.target, len(HOSTILE_NAMES) + 7 + 1)
    [in_dot_git] = [p for p, content in got.items() if content == b"folder 3\n"]
    assert in_dot_git == "_.git/.._f.txt"
    assert ".._.._Syllabus.md" in got
    assert os.listdir(drive_world.workdir) == [report.target.name]
    assert len(outside_state(outside)) == 2

    again = await pull_drive(drive_world, drive_world.folder_url(root))
    assert (again.added, again.removed, again.downloaded_files) == ((), (), 0)


async def test_names_that_collide_after_sanitising_each_keep_their_own_content(
    world: CanvasWorld,
) -> None:
    names = ["a/b.txt", "a_b.txt", "A_B.TXT", "a\\b.txt", "a:b.txt", "a\x00b.txt", "a\x85b.txt"]
    names += ["a\u2028b.txt", "caf\u00e9.txt", "cafe\u0301.txt", "CAF\u00c9.TXT"]
    for i, name in enumerate(names):
        world.course.files.add_file(f"c/n{i}", f"{i}\n".encode(), display_name=name)
    report = await pull_course(world, "/folder/c")
    got = assert_safe_tree(report.target, len(names))
    assert sorted(got.values()) == sorted(f"{i}\n".encode() for i in range(len(names)))


async def test_a_path_too_long_to_create_is_skipped_and_reported(world: CanvasWorld) -> None:
    deep = "/".join(f"{i:02d} " + "x" * 200 for i in range(30)) + "/deep.txt"
    world.course.files.add_file(deep, b"too deep\n")
    report = await pull_course(world)
    skipped = {s.reason: s for s in report.skipped}
    assert "path_too_long" in skipped
    assert len(skipped["path_too_long"].path.encode()) > MAX_PATH_BYTES
    # Everything else arrived; one unwritable path does not stop the folder.
    assert set(files_under(report.target)) == {
        "README.md",
        "Week 1/intro.ipynb",
        "Week 1/data/iris.csv",
    }
    assert os.listdir(world.workdir) == [report.target.name]

    # The longest paths that fit are written, with names cut to the filesystem's limit.
    fits = "/".join("y" * 250 for _ in range(3)) + "/" + "z" * 1000 + ".ipynb"
    world.course.files.add_file(fits, b"fits\n")
    report = await pull_course(world)
    [path] = report.added
    assert path.endswith(".ipynb") and len(path.encode()) <= MAX_PATH_BYTES
    assert (report.target / path).read_bytes() == b"fits\n"


# -- links in the student's folder ----------------------------------------------------------------


async def test_a_folder_replaced_by_a_link_out_of_the_target_is_never_written_through(
    world: CanvasWorld, outside: Path
) -> None:
    report = await pull_course(world)
    target = report.target
    week = target / "Week 1"
    for child in sorted(week.rglob("*"), reverse=True):
        child.unlink() if child.is_file() else child.rmdir()
    week.rmdir()
    week.symlink_to(outside)  # the student (or a tool) put a link where the folder was
    world.course.files.add_file("Week 1/new.ipynb", b"new\n")  # "outside" has a new.ipynb too
    world.course.files.update_file("Week 1/intro.ipynb", b"intro v2\n")
    before = outside_state(outside)

    with pytest.raises(MergeFailed) as refused:
        await pull_course(world)
    assert "“Week 1”" in refused.value.message and "link" in refused.value.message
    # nbgitpuller would have renamed outside/new.ipynb out of the way of the new file.
    assert outside_state(outside) == before
    assert week.is_symlink() and (target / "README.md").exists()

    # Once the link is gone, the next click restores the folder with the new files.
    week.unlink()
    report = await pull_course(world)
    assert (week / "new.ipynb").read_bytes() == b"new\n"
    assert (week / "intro.ipynb").read_bytes() == b"intro v2\n"
    assert outside_state(outside) == before


async def test_a_file_replaced_by_a_link_out_of_the_target_is_never_written_through(
    world: CanvasWorld, outside: Path
) -> None:
    report = await pull_course(world)
    readme = report.target / "README.md"
    readme.unlink()
    readme.symlink_to(outside / "secret.txt")
    world.course.files.update_file("README.md", b"new readme\n")
    before = outside_state(outside)
    with contextlib.suppress(PullError):  # refusing is fine; writing through the link is not
        await pull_course(world)
    assert outside_state(outside) == before


async def test_a_first_sync_into_a_folder_holding_links_writes_nothing_through_them(
    world: CanvasWorld, outside: Path
) -> None:
    target = world.workdir / "Data Science 101"
    target.mkdir()
    (target / "Week 1").symlink_to(outside)
    (target / "README.md").symlink_to(outside / "secret.txt")
    before = outside_state(outside)
    with pytest.raises(PullError):
        await pull_course(world)
    assert outside_state(outside) == before
    assert sorted(os.listdir(target)) == ["README.md", "Week 1"]


# -- sizes that lie -------------------------------------------------------------------------------


@pytest.fixture
async def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CanvasWorld]:
    monkeypatch.setenv("PRIVATEPULLER_HOME", str(tmp_path / "pp-home"))
    async with HostileCanvas() as canvas:
        course = canvas.add_course("Lies")
        student = canvas.add_user("Ada Student")
        course.enroll(student)
        course.files.add_file("small.txt", b"small\n")
        credentials = EnvCredentialSource(
            {"CANVAS_BASE_URL": canvas.base_url, "CANVAS_ACCESS_TOKEN": student.token}
        )
        workdir = tmp_path / "home"
        workdir.mkdir()
        config = SyncConfig(home=tmp_path / "pp-home")
        yield CanvasWorld(canvas, course, student, credentials, config, workdir)


def lie_about(name: str, **fields: Any) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """A JSON edit of a file list: the file called `name` gets `fields`."""

    def edit(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [f | fields if f["display_name"] == name else f for f in files]

    return edit


def no_partial_files(*folders: Path) -> None:
    for folder in folders:
        leftovers = [p for p in folder.rglob("*") if p.name.endswith(".part")]
        assert leftovers == [], leftovers
        staging = [
            p for p in folder.rglob("privatepuller-staging/*") if not p.name.startswith("index-")
        ]
        assert staging == [], staging


async def measured[T](work: Awaitable[T]) -> tuple[T, int]:
    """The result of `work` and the peak of Python memory allocated while it ran, in bytes."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = await work
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak - base


FILES_API = r"^/api/v1/courses/\d+/files\?"


async def test_a_file_larger_than_its_listing_says_is_cut_off_at_the_limit_and_reported(
    hostile: CanvasWorld,
) -> None:
    hostile.course.files.add_file("big.bin", size=8 * MiB)
    hostile.canvas.edit_json(FILES_API, lie_about("big.bin", size=10))
    report = await pull_course(hostile, max_file_size=MiB)
    assert [(s.path, s.reason, s.detail) for s in report.skipped] == [
        ("big.bin", "too_large", "more than 1.0 MB")
    ]
    assert files_under(report.target) == {"small.txt": b"small\n"}
    no_partial_files(hostile.workdir, hostile.config.home)


async def test_an_endless_body_stops_at_the_size_limit_with_bounded_memory(
    hostile: CanvasWorld, evil: EvilServer
) -> None:
    endless = evil.reply("/endless", Reply(b"0123456789abcdef", endless=True))
    hostile.course.files.add_file("stream.bin", b"x")
    hostile.canvas.edit_json(FILES_API, lie_about("stream.bin", url=endless, size=1))
    report, peak = await measured(pull_course(hostile, max_file_size=4 * MiB))
    assert [(s.path, s.reason) for s in report.skipped] == [("stream.bin", "too_large")]
    assert evil.bytes_sent < 16 * MiB  # it stopped reading soon after the limit
    assert peak < 16 * MiB, peak
    assert evil.authorization_headers == []
    no_partial_files(hostile.workdir, hostile.config.home)


@pytest.mark.parametrize("first_sync", [True, False])
async def test_a_content_length_longer_than_the_body_fails_cleanly(
    hostile: CanvasWorld, evil: EvilServer, first_sync: bool
) -> None:
    if not first_sync:
        await pull_course(hostile)
    cut = evil.reply("/cut", Reply(b"0123456789", content_length=1000))
    hostile.course.files.add_file("cut.bin", b"x" * 1000)
    hostile.canvas.edit_json(FILES_API, lie_about("cut.bin", url=cut))
    target = hostile.workdir / "Lies"
    before = files_under(target) if target.exists() else None
    with pytest.raises(DownloadFailed, match="Nothing was changed"):
        await pull_course(hostile)
    assert len(evil.requests) > 1  # retried, as a dropped connection is
    assert (files_under(target) if target.exists() else None) == before
    no_partial_files(hostile.workdir, hostile.config.home)


@pytest.mark.parametrize("content_length", [None, 5])
async def test_a_body_shorter_than_the_listing_says_is_never_committed(
    hostile: CanvasWorld, evil: EvilServer, content_length: int | None
) -> None:
    # 5 of the file's 50 bytes, then the connection closes. Without a Content-Length nothing in
    # HTTP says the body is incomplete; with "Content-Length: 5" it is a complete response.
    body = b"0123456789" * 5
    short = evil.reply("/short", Reply(body[:5], content_length=content_length))
    hostile.course.files.add_file("short.bin", body)
    hostile.canvas.edit_json(FILES_API, lie_about("short.bin", url=short))
    with pytest.raises(DownloadFailed, match="Nothing was changed") as failed:
        await pull_course(hostile)
    assert "“short.bin” arrived with 5 bytes, but the folder's listing says 50 bytes" in str(
        failed.value
    )
    assert not (hostile.workdir / "Lies").exists()
    no_partial_files(hostile.workdir, hostile.config.home)


async def test_a_listing_that_never_ends_is_refused_with_bounded_memory(
    hostile: CanvasWorld, evil: EvilServer
) -> None:
    endless = evil.reply("/api-endless", Reply(b"[" + b" " * 4095, endless=True))
    hostile.canvas.redirect(FILES_API, endless)

    async def attempt() -> PullError:
        try:
            await pull_course(hostile)
        except PullError as error:
            return error
        raise AssertionError("the sync succeeded")

    error, peak = await measured(attempt())
    assert isinstance(error, ListingFailed), error
    assert "far more data than a listing has" in error.message
    assert "Nothing was changed" in error.message
    assert peak < 96 * MiB, peak
    assert evil.bytes_sent < 80 * MiB
    assert not (hostile.workdir / "Lies").exists()


async def test_a_drive_export_larger_than_the_limit_is_skipped_not_fatal(
    drive_world: DriveWorld,
) -> None:
    drive = drive_world.drive
    root = drive.add_folder("Exports", share_with=drive_world.email)
    drive.add_file("small.txt", root.id, b"small\n", mime_type="text/plain")
    drive.add_google_doc("Long notes", root.id, "document", "word " * 2000)  # no size: an export
    config = SyncConfig(home=drive_world.config.home, max_file_size=4096, backoff_scale=0.01)
    report = await pull_drive(drive_world, drive_world.folder_url(root), config=config)
    assert [(s.path, s.reason) for s in report.skipped] == [("Long notes.md", "too_large")]
    assert files_under(report.target) == {"small.txt": b"small\n"}


# -- listings that loop ---------------------------------------------------------------------------


async def test_a_canvas_folder_listing_that_loops_ends_and_writes_each_file_once(
    hostile: CanvasWorld,
) -> None:
    files = hostile.course.files
    files.add_file("A/a.txt", b"a\n")
    files.add_file("A/B/b.txt", b"b\n")
    files.add_file("C/c.txt", b"c\n")
    a, b, c = (files.folder(p).id for p in ("A", "A/B", "C"))

    def loop(folders: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # A's parent is its own child B; C is its own parent; and a folder listed twice.
        parents = {a: b, c: c}
        edited = [
            f | {"parent_folder_id": parents.get(f["id"], f["parent_folder_id"])} for f in folders
        ]
        return edited + [f for f in edited if f["id"] == b]

    hostile.canvas.edit_json(r"^/api/v1/courses/\d+/folders\?", loop)
    # From the root, the loops are unreachable: the rest arrives.
    report = await asyncio.wait_for(pull_course(hostile), 30)
    assert files_under(report.target) == {"small.txt": b"small\n"}

    # From inside the loop, each folder is visited once.
    report = await asyncio.wait_for(pull_course(hostile, "/folder/A"), 30)
    assert files_under(report.target) == {"a.txt": b"a\n", "B/b.txt": b"b\n"}


async def test_a_drive_folder_listed_inside_itself_is_not_followed(drive_world: DriveWorld) -> None:
    drive = drive_world.drive
    root = drive.add_folder("Loops", share_with=drive_world.email)
    inner = drive.add_folder("inner", root.id)
    drive.add_file("a.txt", inner.id, b"a\n", mime_type="text/plain")
    also_in(drive, inner.id, inner.id)  # the listing says inner is in itself
    also_in(drive, root.id, inner.id)  # ... and that its parent is in it too
    report = await asyncio.wait_for(pull_drive(drive_world, drive_world.folder_url(root)), 30)
    assert files_under(report.target) == {"inner/a.txt": b"a\n"}
    loops = sorted(s.path for s in report.skipped if s.reason == "shortcut_loop")
    assert loops == ["inner/Loops", "inner/inner"]


def also_in(drive: FakeDrive, item_id: str, folder_id: str) -> None:
    """Give an item a second parent (Drive had multi-parent items until 2020)."""
    item = drive.item(item_id)
    drive._items[item_id] = dataclasses.replace(item, parents=(*item.parents, folder_id))
    drive._children[folder_id].append(item_id)


async def test_shortcut_fan_out_is_bounded_with_a_clear_error(drive_world: DriveWorld) -> None:
    drive = drive_world.drive
    root = drive.add_folder("Ladder", share_with=drive_world.email)
    levels = [root]
    for i in range(16):
        levels.append(drive.add_folder(f"level {i}", root.id))
    for upper, lower in zip(levels[1:], levels[2:], strict=False):
        for k in range(2):  # two ways down from every level: 2**16 paths
            drive.add_shortcut(f"down {k}", upper.id, lower.id)
    started = time.monotonic()
    with pytest.raises(ListingFailed, match=f"more than {MAX_FOLDERS} folders"):
        await pull_drive(drive_world, drive_world.folder_url(root))
    assert time.monotonic() - started < 30
    assert not (drive_world.workdir / "Ladder").exists()


# -- 100,000 entries ------------------------------------------------------------------------------

ENTRIES = 100_000
TOKEN = "1~" + "b" * 64


async def serve(
    routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
) -> tuple[web.AppRunner, str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}"


def canvas_file(i: int, base: str) -> dict[str, Any]:
    """A Canvas File object with all its fields (as in canvas_json.file_json: Canvas since
    March 2026, no uuid and no verifier in the url)."""
    stamp = "2024-09-01T10:00:00Z"
    return {
        "id": 200000 + i, "folder_id": 10001 + i % 100,
        "display_name": f"Notebook {i:06d}.ipynb", "filename": f"Notebook+{i:06d}.ipynb",
        "upload_status": "success", "content-type": "application/x-ipynb+json",
        "url": f"{base}/files/{200000 + i}/download?download_frd=1",
        "size": 100 + i % 900, "created_at": stamp, "updated_at": stamp, "unlock_at": None,
        "locked": False, "hidden": False, "lock_at": None, "hidden_for_user": False,
        "thumbnail_url": None, "modified_at": stamp, "mime_class": "file",
        "media_entry_id": None, "category": "uncategorized", "locked_for_user": False,
        "visibility_level": "inherit",
    }  # fmt: skip


async def test_a_canvas_listing_of_100000_files_in_bounded_memory_and_time() -> None:
    """The whole listing and planning path over HTTP, against a server that serves prepared
    pages (the fake Canvas rebuilds every page from its model, which is too slow for this)."""
    pages: dict[int, tuple[bytes, str]] = {}

    async def files(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        body, link = pages[int(request.query.get("page", "1"))]
        return web.Response(body=body, content_type="application/json", headers={"Link": link})

    async def folders(request: web.Request) -> web.Response:
        listed = [{"id": 10000, "name": "course files", "parent_folder_id": None}]
        listed += [
            {"id": 10001 + k, "name": f"Week {k}", "parent_folder_id": 10000} for k in range(100)
        ]
        # Five nested folders with 250-character names: the file in the last is too deep.
        listed += [
            {"id": 20000 + k, "name": "d" * 250, "parent_folder_id": 20000 + k - 1 if k else 10000}
            for k in range(5)
        ]
        return web.json_response(listed)

    runner, base = await serve(
        {"/api/v1/courses/1/files": files, "/api/v1/courses/1/folders": folders}
    )
    try:
        last = ENTRIES // 100
        for page in range(1, last + 1):
            items = [canvas_file(i, base) for i in range((page - 1) * 100, page * 100)]
            if page == last:
                items[-1]["folder_id"] = 20004
            more = f'<{base}/api/v1/courses/1/files?page={page + 1}&per_page=100>; rel="next"'
            pages[page] = (json.dumps(items).encode(), more if page < last else "")
        credentials = EnvCredentialSource({"CANVAS_BASE_URL": base, "CANVAS_ACCESS_TOKEN": TOKEN})
        repo = CanvasFolder(base, "courses", "1", 10000, "Big", "course files")

        async def list_and_plan() -> Any:
            async with open_repo(repo, credentials) as source:
                listing = await source.list()
            writable, unwritable = drop_unwritable(listing.files)
            return (*apply_limits(writable, SyncConfig()), unwritable)

        started = time.monotonic()
        (kept, excluded, unwritable), peak = await measured(list_and_plan())
        elapsed = time.monotonic() - started
    finally:
        await runner.cleanup()
    assert len(kept) == ENTRIES - 1 and excluded == []
    assert [s.reason for s in unwritable] == ["path_too_long"]
    assert len({f.path.casefold() for f in kept}) == ENTRIES - 1
    # A few hundred bytes per file are needed; a copy of every raw file object is not.
    assert peak < 2 * 1024 * ENTRIES, f"{peak / MiB:.0f} MB"
    assert elapsed < 45, elapsed


async def test_a_drive_folder_of_100000_files_in_bounded_memory_and_time() -> None:
    folder_id = "1" + "F" * 32
    token = "ya29.c." + "t" * 40
    pages: dict[str, bytes] = {}

    async def list_files(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {token}"
        assert request.query["q"] == f"'{folder_id}' in parents and trashed = false"
        return web.Response(
            body=pages[request.query.get("pageToken", "")], content_type="application/json"
        )

    runner, base = await serve({"/drive/v3/files": list_files})
    try:
        per_page = 1000
        for page in range(ENTRIES // per_page):
            items = [
                {
                    "id": f"1{i:032d}",
                    "name": f"Notebook {i:06d}.ipynb",
                    "mimeType": "application/x-ipynb+json",
                    "size": str(100 + i % 900),
                    "md5Checksum": f"{i:032x}",
                    "version": "3",
                    "modifiedTime": "2024-09-01T10:00:00.000Z",
                    "createdTime": "2024-09-01T10:00:00.000Z",
                    "trashed": False,
                    "capabilities": {"canDownload": True},
                }  # fmt: skip
                for i in range(page * per_page, (page + 1) * per_page)
            ]
            body: dict[str, Any] = {"files": items, "incompleteSearch": False}
            if page + 1 < ENTRIES // per_page:
                body["nextPageToken"] = f"page{page + 1}"
            pages["" if page == 0 else f"page{page}"] = json.dumps(body).encode()
        credentials = EnvCredentialSource(
            {"GOOGLE_DRIVE_ACCESS_TOKEN": token, "GOOGLE_DRIVE_API_URL": f"{base}/drive/v3/"}
        )
        repo = GoogleDriveFolder(folder_id, "Big")

        async def list_and_plan() -> Any:
            async with open_repo(repo, credentials) as source:
                listing = await source.list()
            return apply_limits(drop_unwritable(listing.files)[0], SyncConfig())

        started = time.monotonic()
        (kept, excluded), peak = await measured(list_and_plan())
        elapsed = time.monotonic() - started
    finally:
        await runner.cleanup()
    assert len(kept) == ENTRIES and excluded == []
    assert peak < 2 * 1024 * ENTRIES, f"{peak / MiB:.0f} MB"
    assert elapsed < 45, elapsed
