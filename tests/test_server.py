"""The server extension in a real `jupyter server`, against the fake Canvas, over HTTP.

One Jupyter server (nbgitpuller + privatepuller, Canvas credentials of a fake student) serves the
whole module; each test uses its own course or target folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from privatepuller.testing.canvas.fake import FakeCanvas, populate_demo
from privatepuller.testing.canvas.model import FakeCourse, FakeUser
from privatepuller.testing.drive.fake import DEFAULT_SA_EMAIL
from server_helpers import (
    CanvasThread,
    DriveThread,
    JupyterServer,
    make_git_repo,
    outputs,
    tree,
)

pytestmark = pytest.mark.e2e

MAX_FILE_SIZE = 1024 * 1024


@dataclass
class World:
    canvas_thread: CanvasThread
    drive_thread: DriveThread
    server: JupyterServer
    student: FakeUser
    course: FakeCourse  # "Data Science 101", the demo course
    secret: FakeCourse  # the student is not enrolled
    big: FakeCourse  # one file over the server's size limit

    @property
    def canvas(self) -> FakeCanvas:
        return self.canvas_thread.canvas

    def url(self, course: FakeCourse, suffix: str = "") -> str:
        return f"{self.canvas.base_url}/courses/{course.id}/files{suffix}"

    def drive_folder(self, name: str, files: dict[str, bytes], *, shared: bool = True) -> str:
        """A Drive folder (shared with the hub's service account); its sharing URL."""

        def make() -> str:
            drive = self.drive_thread.drive
            folder = drive.add_folder(name, share_with=DEFAULT_SA_EMAIL if shared else None)
            for path, content in files.items():
                drive.add_file(path, folder.id, content, mime_type="text/plain")
            return f"https://drive.google.com/drive/folders/{folder.id}?usp=sharing"

        return self.drive_thread.call(make)

    def new_course(self, name: str, files: dict[str, bytes]) -> FakeCourse:
        def make() -> FakeCourse:
            course = self.canvas.add_course(name)
            course.enroll(self.student)
            for path, content in files.items():
                course.files.add_file(path, content)
            return course

        return self.canvas_thread.call(make)

    def sync(self, repo: str, **params: str) -> list[dict[str, Any]]:
        events = self.server.sync(repo, **params)
        check_protocol(events)
        assert self.student.token not in str(events)
        assert self.server.env["GOOGLE_DRIVE_ACCESS_TOKEN"] not in str(events)
        return events


def check_protocol(events: list[dict[str, Any]]) -> None:
    """nbgitpuller's protocol: syncing lines, then exactly one final finished or error."""
    assert events, "no events"
    *progress, last = events
    assert all(e["phase"] == "syncing" and e["output"].endswith("\n") for e in progress)
    assert last["phase"] in ("finished", "error")
    if last["phase"] == "error":
        assert set(last["error"]) == {"code", "message", "traceback"}
        assert last["message"] == last["error"]["message"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    canvas_thread = CanvasThread()

    def populate() -> tuple[FakeUser, FakeCourse, FakeCourse, FakeCourse]:
        canvas = canvas_thread.canvas
        student, course = populate_demo(canvas)
        secret = canvas.add_course("Secret Seminar")
        secret.files.add_file("exam.ipynb", b"{}")
        big = canvas.add_course("Big Data")
        big.enroll(student)
        big.files.add_file("small.csv", b"a,b\n1,2\n")
        big.files.add_file("huge/all.parquet", size=2 * MAX_FILE_SIZE)
        return student, course, secret, big

    student, course, secret, big = canvas_thread.call(populate)
    drive_thread = DriveThread()
    server = JupyterServer(
        tmp_path_factory.mktemp("server"),
        env={
            "CANVAS_BASE_URL": canvas_thread.canvas.base_url,
            "CANVAS_ACCESS_TOKEN": student.token,
            **drive_thread.env(),
        },
        args=[
            "--PrivatePuller.backoff_scale=0.02",
            f"--PrivatePuller.max_file_size={MAX_FILE_SIZE}",
        ],
    )
    with server:
        yield World(canvas_thread, drive_thread, server, student, course, secret, big)
        log = server.log()
    canvas_thread.close()
    drive_thread.close()
    # Nothing the server logged, for any test, contains a token.
    assert student.token not in log
    assert server.env["GOOGLE_DRIVE_ACCESS_TOKEN"] not in log


def page_data(html: str) -> dict[str, str]:
    return {k: urllib.parse.unquote(v) for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', html)}


# -- the extension is installed ------------------------------------------------------------


def test_extension_is_listed_enabled_and_ok(tmp_path: Path) -> None:
    from server_helpers import VENV_BIN

    result = subprocess.run(
        [str(VENV_BIN / "jupyter"), "server", "extension", "list"],
        capture_output=True,
        text=True,
        env={
            "PATH": str(VENV_BIN),
            "HOME": str(tmp_path),
            "JUPYTER_CONFIG_DIR": str(tmp_path),
            # The caller's PYTHONPATH stays: it may name the sources under test.
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        },
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert re.search(r"privatepuller enabled", text), text
    assert re.search(r"privatepuller \S+ OK", text), text
    assert re.search(r"nbgitpuller \S+ OK", text), text


def test_server_says_routes_are_ok_at_start_up(world: World) -> None:
    log = world.server.log()
    assert "privatepuller | routes OK: /git-pull and /git-pull/api" in log
    assert "CONFLICT" not in log


# -- the progress page -----------------------------------------------------------------------


def test_page_names_the_folder_after_canvas_not_after_the_url(world: World) -> None:
    data = page_data(world.server.page(world.url(world.course)).text)
    assert data["repo"] == world.url(world.course)
    assert data["targetpath"] == "Data Science 101"  # the course's name, not "files"
    assert data["path"] == "tree/Data Science 101/."
    assert "branch" not in data and "depth" not in data

    subfolder = world.url(world.course, "/folder/Week%201?sort=name")
    data = page_data(world.server.page(subfolder).text)
    assert data["targetpath"] == "Week 1"  # not "Week%201?sort=name"


def test_page_keeps_nbgitpullers_parameters(world: World) -> None:
    url = world.url(world.course)
    requests_before = len(world.canvas.requests)
    data = page_data(
        world.server.page(url, targetpath="DS", urlpath="lab/tree/DS/README.md", branch="x").text
    )
    assert (data["targetpath"], data["path"]) == ("DS", "lab/tree/DS/README.md")
    assert "branch" not in data  # git-only parameters are ignored
    assert len(world.canvas.requests) == requests_before  # an explicit targetpath needs no API
    data = page_data(world.server.page(url, targetpath="DS", app="lab").text)
    assert data["path"] == "lab/tree/DS/."
    data = page_data(world.server.page(url, targetpath="DS", backup="true").text)
    assert (data["path"], data["backup"]) == ("tree/", "true")
    # urlpath is relative to the server: a leading "//host" cannot send the student elsewhere
    data = page_data(world.server.page(url, targetpath="DS", urlpath="//evil.example/x").text)
    assert data["path"] == "evil.example/x"


def test_page_escapes_what_the_link_author_wrote(world: World) -> None:
    hostile = world.url(world.course) + '?x="><script>alert(1)</script>'
    html = world.server.page(hostile, targetpath="DS").text
    assert "<script>alert(1)" not in html
    assert page_data(html)["repo"] == hostile  # the page's script still gets the exact link


def test_drive_link_page_names_the_folder_not_its_id(world: World) -> None:
    url = world.drive_folder("Lab Notebooks", {"lab1.txt": b"1\n"})
    data = page_data(world.server.page(url).text)
    assert data["targetpath"] == "Lab Notebooks"  # not "<id>?usp=sharing"
    assert data["path"] == "tree/Lab Notebooks/."


# -- syncing ---------------------------------------------------------------------------------


def test_canvas_link_syncs_with_a_line_per_file_then_a_second_click_merges(world: World) -> None:
    course = world.new_course(
        "Stats 200",
        {"README.md": b"v1\n", "Week 1/lab.ipynb": b'{"cells": []}\n', "data/x.csv": b"1,2\n"},
    )
    url = world.url(course)
    events = world.sync(url, targetpath="Stats 200")
    assert events[-1] == {"phase": "finished"}
    text = outputs(events)
    assert "Downloading 3 files (" in text
    for line in (
        "  README.md (3 bytes)",
        "  Week 1/lab.ipynb (14 bytes)",
        "  data/x.csv (4 bytes)",
    ):
        assert line + "\n" in text
    folder = world.server.root / "Stats 200"
    assert tree(folder) == {
        "README.md": b"v1\n",
        "Week 1/lab.ipynb": b'{"cells": []}\n',
        "data/x.csv": b"1,2\n",
    }

    # The instructor changes a file; the student edited another one and deleted a third.
    world.canvas_thread.call(course.files.update_file, "README.md", b"v2\n")
    (folder / "Week 1/lab.ipynb").write_text('{"cells": ["mine"]}\n')
    (folder / "data/x.csv").unlink()
    events = world.sync(url, targetpath="Stats 200")
    assert events[-1] == {"phase": "finished"}
    assert "Downloading 1 file (" in outputs(events)
    assert "  README.md (3 bytes)\n" in outputs(events)
    assert tree(folder) == {
        "README.md": b"v2\n",  # the instructor's update
        "Week 1/lab.ipynb": b'{"cells": ["mine"]}\n',  # the student's edit is kept
        "data/x.csv": b"1,2\n",  # a deleted file comes back (nbgitpuller's rule)
    }


def test_drive_link_syncs_then_a_second_click_merges(world: World) -> None:
    url = world.drive_folder("Drive Course", {"notes.txt": b"v1\n", "lab.txt": b"lab\n"})
    events = world.sync(url, targetpath="")
    assert events[-1] == {"phase": "finished"}
    assert "  notes.txt (3 bytes)\n" in outputs(events)
    folder = world.server.root / "Drive Course"
    assert tree(folder) == {"notes.txt": b"v1\n", "lab.txt": b"lab\n"}

    def update() -> None:
        drive = world.drive_thread.drive
        folder_id = url.split("/")[-1].split("?")[0]
        notes = next(f for f in drive.children(folder_id) if f.name == "notes.txt")
        drive.update_file(notes.id, b"v2\n")

    world.drive_thread.call(update)
    (folder / "lab.txt").write_text("my lab\n")
    assert world.sync(url, targetpath="")[-1] == {"phase": "finished"}
    assert tree(folder) == {"notes.txt": b"v2\n", "lab.txt": b"my lab\n"}


def test_drive_folder_not_shared_with_the_hub_is_explained(world: World) -> None:
    url = world.drive_folder("Not Shared", {"x.txt": b"x\n"}, shared=False)
    error = error_of(world.sync(url, targetpath="Not Shared"))
    assert error["code"] in ("not_found", "no_access")
    assert DEFAULT_SA_EMAIL in error["message"]  # share the folder with this account


def test_without_targetpath_the_sync_names_the_folder_itself(world: World) -> None:
    course = world.new_course("Physics 1", {"a.txt": b"a\n"})
    events = world.sync(world.url(course), targetpath="")
    assert events[-1] == {"phase": "finished"}
    assert tree(world.server.root / "Physics 1") == {"a.txt": b"a\n"}


def test_git_links_get_nbgitpullers_own_behaviour(world: World, tmp_path: Path) -> None:
    repo = make_git_repo(tmp_path / "lecture-notes", {"notes.md": "# Notes\n"})
    data = page_data(world.server.page(str(repo)).text)
    assert (data["targetpath"], data["path"]) == ("lecture-notes", "tree/lecture-notes/.")
    events = world.server.sync(str(repo), targetpath="lecture-notes")
    assert events[0]["output"].startswith("$ git clone --depth 1 --branch main -- ")
    assert events[-1] == {"phase": "finished"}
    assert tree(world.server.root / "lecture-notes") == {"notes.md": b"# Notes\n"}
    assert "privatepuller:" not in world.server.log().split("lecture-notes", 1)[1]

    # nbgitpuller's own quirks come through untouched, e.g. its error event for a bad repo
    events = world.server.sync(str(tmp_path / "missing"), targetpath="missing")
    first_error = next(e for e in events if e["phase"] == "error")
    assert first_error["error"]["code"] == "branch_resolve"


def test_git_link_events_equal_those_of_nbgitpuller_alone(world: World, tmp_path: Path) -> None:
    """The same git link on a server without privatepuller gives the same events."""
    repo = make_git_repo(tmp_path / "repo", {"a.py": "print(1)\n"})
    plain = JupyterServer(tmp_path / "plain", extensions={"privatepuller": False}, wait_for=None)
    with plain:
        assert "privatepuller |" not in plain.log()
        expected = plain.sync(str(repo), targetpath="repo")
        expected_page = page_data(plain.page(str(repo)).text)
    ours = world.server.sync(str(repo), targetpath="repo")
    ours_page = page_data(world.server.page(str(repo)).text)

    def normalised(events: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
        return [
            {k: v.replace(str(root), "ROOT") if isinstance(v, str) else v for k, v in e.items()}
            for e in events
        ]

    assert normalised(ours, world.server.root) == normalised(expected, plain.root)
    for page in (ours_page, expected_page):
        del page["xsrf"], page["jupyter-api-token"]
    assert ours_page == expected_page


# -- errors a student understands ------------------------------------------------------------


def error_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert events[-1]["phase"] == "error", events
    return events[-1]["error"]  # type: ignore[no-any-return]


def test_no_access_and_not_found(world: World) -> None:
    error = error_of(world.sync(world.url(world.secret), targetpath="secret"))
    assert error["code"] == "no_access"
    assert "do not have access" in error["message"]
    assert not (world.server.root / "secret").exists()

    error = error_of(world.sync(world.url(world.course, "/folder/Nope"), targetpath="nope"))
    assert error["code"] == "not_found"
    assert "There is no folder “Nope”" in error["message"]


def test_expired_login_says_what_to_do(world: World) -> None:
    token = world.student.token
    world.canvas_thread.call(world.canvas.expire_token, token)
    try:
        events = world.sync(world.url(world.course), targetpath="expired")
    finally:

        def restore() -> None:
            world.canvas.tokens[token].expires_at = None

        world.canvas_thread.call(restore)
    error = error_of(events)
    assert error["code"] == "login_expired"
    # A Jupyter server on its own (no hub): the token is the one set in its environment.
    assert "CANVAS_ACCESS_TOKEN" in error["message"] and "hub" not in error["message"]


@pytest.mark.parametrize("targetpath", ["../outside", "/tmp/abs", "a/../../b"])
def test_a_targetpath_outside_the_home_folder_is_refused(world: World, targetpath: str) -> None:
    error = error_of(world.sync(world.url(world.course), targetpath=targetpath))
    assert error["code"] == "targetpath"
    assert "Ask your instructor to fix the link" in error["message"]
    assert not (world.server.root.parent / "outside").exists()


def test_rate_limited_waits_then_continues(world: World) -> None:
    course = world.new_course("Busy Course", {f"f{i}.txt": b"x\n" for i in range(8)})
    # The student's Canvas bucket is so full (660 of 700) that even one request's up-front
    # cost (50) is refused: the sync is throttled until the bucket drains (about a second).
    world.canvas_thread.call(world.canvas.buckets.increment, f"token:{world.student.token}", 660)
    throttled_before = world.canvas.throttled_count
    world.canvas_thread.call(setattr, world.canvas, "latency", 0.1)
    try:
        events = world.sync(world.url(course), targetpath="Busy Course")
    finally:
        world.canvas_thread.call(setattr, world.canvas, "latency", 0.0)
    assert world.canvas.throttled_count > throttled_before
    assert events[-1] == {"phase": "finished"}
    assert "Canvas asks us to slow down (many students are syncing); waiting 0 s" in (
        outputs(events)
    )
    assert len(tree(world.server.root / "Busy Course")) == 8


def test_large_files_are_excluded_and_listed(world: World) -> None:
    events = world.sync(world.url(world.big), targetpath="Big Data")
    assert events[-1] == {"phase": "finished"}
    assert "  huge/all.parquet (2.0 MB): larger than this hub's limit for one file\n" in (
        outputs(events)
    )
    assert tree(world.server.root / "Big Data") == {"small.csv": b"a,b\n1,2\n"}

    # A link to nothing but a large file is an error, not an empty folder.
    error = error_of(world.sync(world.url(world.big, "/folder/huge"), targetpath="huge"))
    assert error["code"] == "too_large"
    assert "larger than this hub's limit" in error["message"]


def test_merge_failure_offers_backup_and_backup_resyncs(world: World) -> None:
    course = world.new_course("Merge 101", {"a.txt": b"a\n"})
    url = world.url(course)
    folder = world.server.root / "Merge 101"
    assert world.sync(url, targetpath="Merge 101")[-1] == {"phase": "finished"}
    (folder / "mine.txt").write_text("student work\n")
    # The local origin is lost (e.g. ~/.privatepuller deleted): the next snapshot has an
    # unrelated history, which nbgitpuller cannot merge.
    origin = subprocess.run(
        ["git", "-C", str(folder), "remote", "get-url", "origin"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    shutil.rmtree(origin.removeprefix("file://"))
    world.canvas_thread.call(course.files.update_file, "a.txt", b"a2\n")

    error = error_of(world.sync(url, targetpath="Merge 101"))
    assert error["code"] == "merge"  # nbgitpuller's page offers "Backup and resync"
    assert "Backup and resync" in error["message"]
    assert (folder / "mine.txt").read_text() == "student work\n"

    events = world.sync(url, targetpath="Merge 101", backup="true")
    assert events[-1] == {"phase": "finished"}
    backups = [p for p in world.server.root.iterdir() if p.name.startswith("Merge 101_backup_")]
    assert len(backups) == 1
    assert (backups[0] / "mine.txt").read_text() == "student work\n"
    assert tree(folder) == {"a.txt": b"a2\n"}


def test_a_second_click_while_syncing_is_refused_and_corrupts_nothing(world: World) -> None:
    # 32 files, 8 at a time, each download two slow requests: the first sync runs for seconds
    # after it starts downloading, while the second click needs about one to reach the lock.
    files = {f"part{i}/file{i}.txt": f"content {i}\n".encode() for i in range(32)}
    course = world.new_course("Slow Course", files)
    url = world.url(course)
    first_events: list[dict[str, Any]] = []
    first_started = threading.Event()

    def first() -> None:
        for event in world.server.iter_sync(url, targetpath="Slow Course"):
            first_events.append(event)
            # Downloads start only once the sync holds the folder's lock (earlier events, such
            # as waiting out Canvas's throttle while resolving the link, come before it).
            if event.get("output", "").startswith("Downloading"):
                first_started.set()
        first_started.set()

    world.canvas_thread.call(setattr, world.canvas, "latency", 0.4)
    try:
        thread = threading.Thread(target=first)
        thread.start()
        assert first_started.wait(30)
        second = world.sync(url, targetpath="Slow Course")
        thread.join(60)
    finally:
        world.canvas_thread.call(setattr, world.canvas, "latency", 0.0)
    error = error_of(second)
    assert error["code"] == "busy"
    assert "already being synced" in error["message"]
    assert first_events[-1] == {"phase": "finished"}
    assert tree(world.server.root / "Slow Course") == files


def test_closing_the_page_mid_sync_lets_the_sync_finish(world: World) -> None:
    files = {f"f{i}.txt": f"{i}\n".encode() for i in range(8)}
    course = world.new_course("Closed Tab", files)
    url = world.url(course)
    folder = world.server.root / "Closed Tab"
    world.canvas_thread.call(setattr, world.canvas, "latency", 0.3)
    try:
        stream = world.server.iter_sync(url, targetpath="Closed Tab")
        assert next(stream)["output"].startswith("Downloading 8 files")
        stream.close()  # the student closes the tab: the connection goes away
        assert not folder.exists()
        deadline = time.monotonic() + 30
        while not (folder.exists() and tree(folder) == files):
            assert time.monotonic() < deadline, "the sync did not finish"
            time.sleep(0.1)
    finally:
        world.canvas_thread.call(setattr, world.canvas, "latency", 0.0)
    # The next click finds a complete, merged folder and nothing left to download.
    events = world.sync(url, targetpath="Closed Tab")
    assert events[-1] == {"phase": "finished"}
    assert "No new or changed files to download\n" in outputs(events)


# -- authentication --------------------------------------------------------------------------


def test_authentication_is_required_exactly_as_for_nbgitpuller(
    world: World, tmp_path: Path
) -> None:
    git_repo = str(make_git_repo(tmp_path / "r", {"a": "a"}))
    canvas_repo = world.url(world.course)
    base = world.server.url

    def statuses(repo: str, headers: dict[str, str]) -> tuple[int, str, int]:
        page = requests.get(
            base + "git-pull",
            params={"repo": repo, "targetpath": "auth"},
            headers=headers,
            allow_redirects=False,
            timeout=10,
        )
        api = requests.get(
            base + "git-pull/api",
            params={"repo": repo, "targetpath": "auth"},
            headers=headers,
            timeout=10,
        )
        return page.status_code, page.headers.get("Location", "").split("?")[0], api.status_code

    for headers in ({}, {"Authorization": "token wrong"}):
        assert statuses(canvas_repo, headers) == statuses(git_repo, headers) == (302, "/login", 403)
    assert not (world.server.root / "auth").exists()
    assert statuses(canvas_repo, world.server.auth)[::2] == (200, 200)
