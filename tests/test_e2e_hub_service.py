"""Drive through the hub: a real JupyterHub with its managed `privatepuller` service.

Everything is real except Canvas and Google (the fakes): JupyterHub with GenericOAuthenticator
against the fake Canvas, configurable-http-proxy, SimpleLocalProcessSpawner running
jupyterhub-singleuser with the privatepuller extension, and the hub-managed service
`python -m privatepuller.hub.service`, registered by `CanvasPassthrough.configure` with the
fake Drive's service-account key (the hub's environment names the fake Drive, which configure
passes on to the service). Students' servers hold no Google credential: they resolve and sync
Drive links through the service with their own JupyterHub token.

One hub serves the whole module; each test uses folders of its own. Test-only settings: the
hub checks its managed service every second (JupyterHub's default is 30 s) so that a killed
service comes back quickly, and students' servers back off on a clock ten times faster.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from leak_scan import Scanner, allow_file, observe
from privatepuller.providers.gdrive.hub import UNREACHABLE
from privatepuller.testing.canvas.model import FakeCourse, FakeUser
from privatepuller.testing.drive.fake import FakeDrive, QuotaPolicy
from privatepuller.testing.drive.model import FakeItem
from server_helpers import HAVE_BROWSER, CanvasThread, free_port, headless_chromium, tree
from test_e2e_hub import (
    CLIENT_ID,
    CLIENT_SECRET,
    SERVICE_TOKEN,
    Browser,
    DriveThread,
    Hub,
    require_proxy,
)

pytestmark = pytest.mark.e2e

SERVICE_NAME = "privatepuller"
MIN_RELIST_SECONDS = 600  # every folder is listed once per service process in this module

# Test-only timings, after CanvasPassthrough(...).configure(c).
EXTRA_CONFIG = """
# JupyterHub restarts a managed service that exits when it next polls it (every 30 s); here
# every second, so that the restart tests need not wait half a minute.
from traitlets import Integer
from jupyterhub.services import service as _services


class _PolledEverySecond(_services._ServiceSpawner):
    poll_interval = Integer(1)


_services._ServiceSpawner = _PolledEverySecond
# Students' servers retry an unanswering service on a clock ten times faster.
c.Spawner.args = ["--allow-root", "--PrivatePuller.backoff_scale=0.1"]
"""


@dataclass
class ServiceHub(Hub):
    """The test hub of tests/test_e2e_hub.py, with the fake Drive's API URL in the hub's own
    environment (configure() hands it to the service it registers)."""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(GOOGLE_DRIVE_API_URL=self.drive_thread.drive.api_url, **extra)


@dataclass
class Folders:
    lab: FakeItem  # the students' Drive folder (one notebook, a text file, a Google Form)
    limited: FakeItem  # folder_groups: only the course's members
    exam: FakeItem  # shared with the account, never linked: nobody may list it
    restart: FakeItem
    busy: FakeItem
    rotation: FakeItem
    browser: FakeItem


@dataclass
class World:
    hub: ServiceHub
    course: FakeCourse
    ada: FakeUser  # enrolled: in the course's groups
    bo: FakeUser  # not enrolled: in no group
    cy: FakeUser  # enrolled; clicks in Chromium
    folders: Folders
    service_port: int
    service_home: Path
    browsers: dict[str, Browser] = field(default_factory=dict)

    @property
    def drive(self) -> FakeDrive:
        return self.hub.drive_thread.drive

    def on_drive(self, fn: Any, *args: Any) -> Any:
        return self.hub.drive_thread.call(fn, *args)

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.service_port}/services/{SERVICE_NAME}/"

    def home(self, user: FakeUser) -> Path:
        return self.hub.workdir / "home" / user.login_id

    def logged_in(self, user: FakeUser) -> Browser:
        """The student's browser, logged in with Canvas and with a running server."""
        if user.login_id not in self.browsers:
            browser = Browser(self.hub, user)
            browser.login()
            browser.spawn()
            self.browsers[user.login_id] = browser
        return self.browsers[user.login_id]

    def server_env(self, user: FakeUser) -> dict[str, str]:
        """The environment of the user's jupyterhub-singleuser process, as /proc has it."""
        self.logged_in(user)
        pid = self.hub.api(f"users/{user.login_id}")["servers"][""]["state"]["pid"]
        return environ_of(pid)

    def server_token(self, user: FakeUser) -> str:
        return self.server_env(user)["JUPYTERHUB_API_TOKEN"]

    def drive_requests(self) -> list[Any]:
        return self.on_drive(lambda: list(self.drive.requests))

    def lists_of(self, folder: FakeItem) -> int:
        """How many files.list requests asked for the folder's children."""
        return sum(
            1
            for r in self.drive_requests()
            if r.path == "/drive/v3/files" and f"'{folder.id}' in parents" in r.query.get("q", "")
        )

    # -- the service process (a child of the hub) -------------------------------------------

    def service_pid(self, timeout: float = 30) -> int:
        """The pid of the running service, once it answers on its port."""
        assert self.hub.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [
                pid
                for pid in children_of(self.hub.process.pid)
                if "privatepuller.hub.service" in cmdline_of(pid)
            ]
            if len(pids) == 1 and answers(self.service_port):
                return pids[0]
            time.sleep(0.1)
        raise RuntimeError(f"the privatepuller service is not running:\n{self.hub.log()[-5000:]}")

    def kill_service(self) -> int:
        pid = self.service_pid()
        os.kill(pid, signal.SIGKILL)  # a child of our hub, by its id
        deadline = time.monotonic() + 10
        while answers(self.service_port) and time.monotonic() < deadline:
            time.sleep(0.02)
        return pid

    def service_origins(self) -> set[Path]:
        origins = self.service_home / "origins"
        return set(origins.glob("*.git")) if origins.exists() else set()


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def cmdline_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def children_of(ppid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == ppid:
            found.append(int(entry.name))
    return found


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def blob_id(content: bytes) -> str:
    """The id git gives a blob of `content`."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def git(git_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True, check=False
    )


def start_world(workdir: Path) -> World:
    canvas_thread = CanvasThread()
    canvas = canvas_thread.canvas
    (workdir / "hub-secrets").mkdir()
    drive_thread = DriveThread(workdir / "hub-secrets" / "drive-sa.json")
    drive, account = drive_thread.drive, drive_thread.key["client_email"]

    def populate_drive() -> Folders:
        def folder(name: str, files: dict[str, bytes]) -> FakeItem:
            made = drive.add_folder(name, share_with=account)
            for path, content in files.items():
                drive.add_file(path, made.id, content, mime_type="text/plain")
            return made

        lab = folder("Drive Lab", {"lab.txt": b"from Drive\n"})
        drive.add_file(
            "intro.ipynb", lab.id, b'{"cells": []}\n', mime_type="application/x-ipynb+json"
        )
        drive.add_google_doc("Quiz", lab.id, "form")
        return Folders(
            lab=lab,
            limited=folder("Course Only", {"answers.txt": b"for the course\n"}),
            exam=folder(
                "MATH300 - exam + SOLUTIONS (instructors only)", {"solutions.txt": b"42\n"}
            ),
            restart=folder("Restart Lab", {f"{n}.txt": f"{n}\n".encode() for n in "abc"}),
            busy=folder("Busy Lab", {f"part{n}.txt": b"x" * n for n in range(1, 6)}),
            rotation=folder("Rotation Lab", {"rotated.txt": b"after the rotation\n"}),
            browser=folder("Browser Lab", {"README.md": b"Read me first, from Drive.\n"}),
        )

    def populate_canvas() -> tuple[FakeCourse, FakeUser, FakeUser, FakeUser]:
        canvas.register_client(CLIENT_ID, CLIENT_SECRET, redirect_uri="http://127.0.0.1/")
        course = canvas.add_course("Data Science 101")
        ada = canvas.add_user("Ada Student", login_id="ada")
        bo = canvas.add_user("Bo Outsider", login_id="bo")
        cy = canvas.add_user("Cy Clicker", login_id="cy")
        course.enroll(ada)
        course.enroll(cy)
        return course, ada, bo, cy

    folders = drive_thread.call(populate_drive)
    course, ada, bo, cy = canvas_thread.call(populate_canvas)
    service_port = free_port()
    service_home = workdir / "privatepuller-service"
    limited = {folders.limited.id: [f"canvas:course:{course.id}"]}
    args = (
        "canvas_groups=True,\n"
        f"    service_url='http://127.0.0.1:{service_port}',\n"
        f"    service_home={str(service_home)!r},\n"
        f"    min_relist_seconds={MIN_RELIST_SECONDS},\n"
        f"    folder_groups={limited!r}"
    )
    hub = ServiceHub(
        workdir, canvas_thread, drive_thread, extra_config=EXTRA_CONFIG, passthrough_args=args
    )
    try:
        hub.start()
    except BaseException:
        hub.stop()
        canvas_thread.close()
        drive_thread.close()
        raise
    return World(hub, course, ada, bo, cy, folders, service_port, service_home)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_proxy()
    started = start_world(tmp_path_factory.mktemp("hub-service"))
    try:
        started.service_pid()
        yield started
    finally:
        started.hub.stop()
        started.hub.canvas_thread.close()
        started.hub.drive_thread.close()


def drive_url(folder: FakeItem) -> str:
    return f"https://drive.google.com/drive/folders/{folder.id}?usp=sharing"


def assert_finished(events: list[dict[str, Any]]) -> None:
    assert events, "no events"
    assert events[-1]["phase"] == "finished", json.dumps(events, indent=1)[-3000:]


def output_of(events: list[dict[str, Any]]) -> str:
    return "".join(e.get("output", "") for e in events)


# -- one sync for every student, and the link builder --------------------------------------


def test_students_drive_link_is_pulled_through_the_hub_once_for_everyone(world: World) -> None:
    """Ada's server has no Google credential: her click is resolved and synced by the hub's
    service, and nbgitpuller merges its snapshot into her home. Bo's click, inside
    min_relist_seconds, is served from the same snapshot without Drive hearing of it. An
    instructor's link check of the folder shows the hub's snapshot, again without Drive."""
    lab = world.folders.lab
    ada = world.logged_in(world.ada)
    env = world.server_env(world.ada)
    assert env["PRIVATEPULLER_SERVICE_URL"] == world.service_url
    assert "GOOGLE_DRIVE_ACCESS_TOKEN" not in env and "GOOGLE_APPLICATION_CREDENTIALS" not in env

    # The service runs the privatepuller under test (the hub's environment reaches it).
    service_env = environ_of(world.service_pid())
    assert service_env.get("PYTHONPATH") == os.environ.get("PYTHONPATH")
    assert service_env["GOOGLE_APPLICATION_CREDENTIALS"] == str(world.hub.drive_thread.key_path)
    assert service_env["GOOGLE_DRIVE_API_URL"] == world.drive.api_url

    events = ada.pull(drive_url(lab))
    assert_finished(events)
    target = world.home(world.ada) / "Drive Lab"
    assert (target / "lab.txt").read_bytes() == b"from Drive\n"
    assert (target / "intro.ipynb").read_bytes() == b'{"cells": []}\n'
    assert set(tree(target)) == {"lab.txt", "intro.ipynb"}
    # The student hears what the hub left out, in the usual words.
    assert "Quiz" in output_of(events) and "cannot be exported" in output_of(events)
    # A git repository of the student's own, whose origin is a local one (not the service).
    remote = subprocess.run(
        ["git", "-C", str(target), "remote", "get-url", "origin"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert remote.startswith(("file://", "/")) and str(world.home(world.ada)) in remote
    # ... holding the very commit the service made (its objects came as a bundle).
    local_head = git(Path(remote.removeprefix("file://")), "rev-parse", "refs/heads/main")
    service_heads = {
        git(o, "rev-parse", "refs/heads/main").stdout.strip() for o in world.service_origins()
    }
    assert local_head.stdout.strip() in service_heads
    assert world.lists_of(lab) == 1
    # Every Drive request came from the service, with tokens of the hub's service account.
    requests_ = world.drive_requests()
    assert requests_ and {r.email for r in requests_} == {
        world.hub.drive_thread.key["client_email"]
    }

    # Bo, a second student, clicks the same link: the snapshot serves him too.
    before = len(world.drive_requests())
    bo = world.logged_in(world.bo)
    assert_finished(bo.pull(drive_url(lab)))
    assert tree(world.home(world.bo) / "Drive Lab") == tree(target)
    assert world.lists_of(lab) == 1  # no second listing inside min_relist_seconds
    assert len(world.drive_requests()) == before  # Drive never heard of Bo's click

    # The instructors' link builder (here in Ada's server) shows the hub's snapshot of the
    # folder: its name, its files and what students will not get; Drive is not asked again.
    answer = ada.http.get(
        f"{world.hub.url}/user/ada/privatepuller/api/link",
        params={"url": drive_url(lab)},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text[:2000]
    check = answer.json()
    assert check["problems"] == [], check
    assert (check["name"], check["files"]) == ("Drive Lab", 2)
    assert check["bytes"] == len(b"from Drive\n") + len(b'{"cells": []}\n')
    assert [(s["path"], s["why"]) for s in check["skipped"]] == [
        ("Quiz", "cannot be exported (a Google Form has no file form)")
    ]
    assert check["notebooks"] == ["intro.ipynb"]
    assert check["link"].startswith(f"{world.hub.url}/hub/user-redirect/git-pull?")
    assert len(world.drive_requests()) == before


# -- folders limited to groups -------------------------------------------------------------


def test_a_folder_limited_to_a_group_is_refused_outside_it_and_served_inside(world: World) -> None:
    """folder_groups limits "Course Only" to canvas:course:<id> (from the Canvas enrollments,
    canvas_groups): Bo, not enrolled, is refused with a message naming the group, and nothing
    of the folder reaches him; Ada, enrolled, gets it."""
    limited, group = world.folders.limited, f"canvas:course:{world.course.id}"
    assert group in world.hub.api("users/ada")["groups"]
    assert world.hub.api("users/bo")["groups"] == []

    events = world.logged_in(world.bo).pull(drive_url(limited))
    assert events[-1]["phase"] == "error", events
    assert events[-1]["error"]["code"] == "no_access"
    message = events[-1]["message"]
    assert f"only for members of {group} on this hub" in message
    assert "Course Only" not in json.dumps(events)  # not even its name
    assert not (world.home(world.bo) / "Course Only").exists()
    assert "for the course" not in "".join(
        p.read_text(errors="replace") for p in world.home(world.bo).rglob("*.txt")
    )

    # Nor a file inside it, linked on its own (the service looks up the folders above it).
    inside = world.on_drive(lambda: world.drive.children(limited.id)[0])
    events = world.logged_in(world.bo).pull(f"https://drive.google.com/file/d/{inside.id}/view")
    assert events[-1]["phase"] == "error", events
    assert f"only for members of {group} on this hub" in events[-1]["message"]
    assert not (world.home(world.bo) / "answers").exists()

    assert_finished(world.logged_in(world.ada).pull(drive_url(limited)))
    assert (world.home(world.ada) / "Course Only" / "answers.txt").read_bytes() == (
        b"for the course\n"
    )

    # Bo cannot fetch the snapshot Ada was given either, even knowing its commit.
    token = world.server_token(world.bo)
    heads = [git(o, "rev-parse", "refs/heads/main").stdout.strip() for o in world.service_origins()]
    assert any(heads)
    for head in filter(None, heads):
        bundle = requests.get(
            f"{world.service_url}api/drive/folder/{limited.id}/bundle",
            params={"commit": head},
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert bundle.status_code == 403, bundle.text[:500]
        assert group in bundle.json()["error"]["message"]


# -- what a student's tokens get from the service ------------------------------------------


def test_a_students_tokens_get_only_the_services_reads_and_nothing_is_ever_listed(
    world: World,
) -> None:
    """The server's JupyterHub token reaches the service's two reads of a folder it names,
    nothing else of the service (no listing, no other method) and nothing of the hub's API
    beyond its own user; a student's own token without the service's scope is refused; tokens
    that are not a user's are refused. Drive is never asked what the account can see."""
    token = world.server_token(world.ada)
    auth = {"Authorization": f"token {token}"}
    lab = world.folders.lab

    def service(method: str, path: str, headers: dict[str, str] | None = None) -> int:
        response = requests.request(
            method, world.service_url + path, headers=auth if headers is None else headers,
            timeout=30,
        )  # fmt: skip
        return response.status_code

    # Its own reads: the folder a link names.
    assert service("GET", f"api/drive/folder/{lab.id}/info") == 200
    assert service("GET", f"api/drive/folder/{lab.id}") == 200
    # Nothing that lists, nothing but GET, nothing else.
    before = len(world.drive_requests())
    paths = (
        "",
        "api/",
        "api/drive",
        "api/drive/folder",
        "api/drive/folder/",
        "api/drive/sharedWithMe",
        "api/drive/files?q=sharedWithMe",
        "api/drive/search?q=SOLUTIONS",
        "api/drive/folder/root",
        f"api/drive/folder/{lab.id}/children",
        f"api/drive/folder/{lab.id}/../../sharedWithMe",
        "api/drive/drives",
        "api/users",
        "oauth_callback",
    )
    assert {path: service("GET", path) for path in paths} == dict.fromkeys(paths, 404)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert service(method, f"api/drive/folder/{lab.id}") == 405, method
    assert service("GET", f"api/drive/folder/{lab.id}/bundle?commit=HEAD") == 400
    assert len(world.drive_requests()) == before  # none of these reached Drive

    # Tokens that are not a user's with the service's scope.
    assert service("GET", f"api/drive/folder/{lab.id}", headers={}) == 403
    assert service("GET", f"api/drive/folder/{lab.id}", {"Authorization": "token nope"}) == 403
    as_service = {"Authorization": f"token {SERVICE_TOKEN}"}  # another service's token
    assert service("GET", f"api/drive/folder/{lab.id}", as_service) == 403
    # Ada makes herself a token on the hub, without the service's scope (as the hub's token
    # page lets her): the service refuses it, and says which scope it lacks.
    browser = world.logged_in(world.ada)
    browser.http.get(f"{world.hub.url}/hub/token", timeout=30)
    xsrf = browser.http.cookies.get("_xsrf", path="/hub/")
    made = browser.http.post(
        f"{world.hub.url}/hub/api/users/ada/tokens",
        json={"scopes": ["read:users:name!user=ada"], "note": "e2e: no service scope"},
        headers={"X-XSRFToken": xsrf or ""},
        timeout=30,
    )
    assert made.status_code == 201, made.text[:500]
    narrow = made.json()["token"]
    refused = requests.get(
        f"{world.service_url}api/drive/folder/{lab.id}",
        headers={"Authorization": f"token {narrow}"},
        timeout=30,
    )
    assert refused.status_code == 403
    assert "access:services!service=privatepuller" in refused.json()["error"]["message"]

    # The server's token on the hub's API: its own user, nothing beyond.
    def hub(path: str) -> int:
        return requests.get(f"{world.hub.url}/hub/api/{path}", headers=auth, timeout=30).status_code

    me = requests.get(f"{world.hub.url}/hub/api/user", headers=auth, timeout=30).json()
    assert me["name"] == "ada" and me["kind"] == "user"
    # Exactly what the `server` role gives (configure() added the service's scope): its own
    # user's activity, name, groups and auth_state, its own server, and this one service.
    assert sorted(me["scopes"]) == [
        "access:servers!server=ada/",
        f"access:services!service={SERVICE_NAME}",
        "admin:auth_state!user=ada",
        "read:users:activity!user=ada",
        "read:users:groups!user=ada",
        "read:users:name!user=ada",
        "users:activity!user=ada",
    ]
    assert hub("users") == 403
    assert hub("users/bo") == 404
    assert hub("groups") == 403
    assert hub("services") == 403
    assert hub("users/ada/tokens") == 403

    # Drive was never asked to list anything but the folders links named (never
    # sharedWithMe, never a search of the account's files): the exam folder, shared with the
    # account and linked nowhere, was never named in any request.
    linked = {f.id for f in vars(world.folders).values()} - {world.folders.exam.id}
    lists = [r for r in world.drive_requests() if r.path == "/drive/v3/files"]
    assert lists
    for r in lists:
        q = r.query.get("q", "")
        named = re.findall(r"'([A-Za-z0-9_-]+)' in parents", q)
        assert named and set(named) <= linked, q
        assert "sharedWithMe" not in q and "fullText" not in q
    assert all(world.folders.exam.id not in r.path_qs for r in world.drive_requests())


# -- faults ------------------------------------------------------------------------------------


def test_the_service_restarts_in_the_middle_of_a_sync(world: World) -> None:
    """The service is killed while Drive is slow to send the folder's last file. Ada is told
    the hub's file service is not answering; the service's origin has no commit (a snapshot
    is committed only whole); her home has nothing of the folder. JupyterHub starts the
    service again, and her next click finishes the folder."""
    folder = world.folders.restart
    ada = world.logged_in(world.ada)
    children = world.on_drive(lambda: list(world.drive.children(folder.id)))
    last = next(c for c in children if c.name == "c.txt")
    world.on_drive(world.drive.inject_fault, rf"/files/{last.id}\?.*alt=media", "stall")
    origins_before = world.service_origins()
    killed_pid = world.service_pid()

    events: list[dict[str, Any]] = []
    click = threading.Thread(target=lambda: events.extend(ada.pull(drive_url(folder))))
    click.start()
    # The service has the first two files in its origin's object store and waits for the
    # last one: then it is killed.
    blobs = [blob_id(b"a\n"), blob_id(b"b\n")]
    deadline = time.monotonic() + 30
    while not (
        any(r.fault == "stall" for r in world.drive_requests())
        and len(world.service_origins() - origins_before) == 1
        and all(
            git(origin, "cat-file", "-e", blob).returncode == 0
            for origin in world.service_origins() - origins_before
            for blob in blobs
        )
    ):
        assert time.monotonic() < deadline, "the service never got to the last file"
        time.sleep(0.05)
    assert world.kill_service() == killed_pid
    click.join(60)
    assert not click.is_alive()

    assert events[-1]["phase"] == "error", events
    assert events[-1]["message"] == UNREACHABLE, events[-1]
    assert "Traceback" not in json.dumps(events)
    assert not (world.home(world.ada) / "Restart Lab").exists()
    new_origins = world.service_origins() - origins_before
    assert len(new_origins) == 1
    (origin,) = new_origins
    assert all(git(origin, "cat-file", "-e", blob).returncode == 0 for blob in blobs)
    assert git(origin, "rev-parse", "--verify", "-q", "refs/heads/main").returncode != 0
    assert git(origin, "for-each-ref").stdout == ""  # no commit, no ref: nothing half made
    assert not (origin / "privatepuller-manifest.json").exists()

    # JupyterHub noticed and started it again.
    restarted = world.service_pid()
    assert restarted != killed_pid
    assert f"Service {SERVICE_NAME} exited with status -9" in world.hub.log()

    events = ada.pull(drive_url(folder))
    assert_finished(events)
    assert tree(world.home(world.ada) / "Restart Lab") == {
        "a.txt": b"a\n", "b.txt": b"b\n", "c.txt": b"c\n"
    }  # fmt: skip
    head = git(origin, "rev-parse", "refs/heads/main").stdout.strip()
    listed = git(origin, "ls-tree", "-r", "--name-only", head).stdout.split()
    assert sorted(listed) == ["a.txt", "b.txt", "c.txt"]


def test_when_drive_throttles_the_service_backs_off_and_students_are_told(world: World) -> None:
    """Drive's quota runs out while the service syncs: it waits as Drive asks (Retry-After),
    relays the wait to the student's page, and finishes."""
    folder = world.folders.busy
    ada = world.logged_in(world.ada)
    throttled_before = world.on_drive(lambda: world.drive.throttled_count)
    world.on_drive(
        setattr, world.drive, "quota", QuotaPolicy(rate=2.0, burst=3, status=429, retry_after=1)
    )
    try:
        events = ada.pull(drive_url(folder))
    finally:
        world.on_drive(setattr, world.drive, "quota", None)
    assert_finished(events)
    assert world.on_drive(lambda: world.drive.throttled_count) > throttled_before
    assert "Google Drive asks us to slow down (many students are syncing); waiting 1 s" in (
        output_of(events)
    )
    assert tree(world.home(world.ada) / "Busy Lab") == {
        f"part{n}.txt": b"x" * n for n in range(1, 6)
    }


class Squatter:
    """Holds the service's port while it is down (JupyterHub's restarts then fail), and drops
    every connection to it: a service that does not answer."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            conn.close()  # reset

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


def test_when_the_service_is_down_the_student_is_told_and_their_folder_is_untouched(
    world: World,
) -> None:
    ada = world.logged_in(world.ada)
    folder = world.home(world.ada) / "Drive Lab"
    (folder / "lab.txt").write_text("from Drive\nmy notes\n")  # her work, not committed
    (folder / "mine.py").write_text("print('mine')\n")
    before = tree(folder)

    world.kill_service()
    squatter = Squatter(world.service_port)
    try:
        events = ada.pull(drive_url(world.folders.lab))
    finally:
        squatter.close()
    assert events[-1]["phase"] == "error", events
    assert events[-1]["message"] == UNREACHABLE
    assert "The hub's file service (privatepuller) is not answering" in events[-1]["message"]
    assert "Nothing in your folder was changed" in events[-1]["message"]
    assert tree(folder) == before

    # It comes back (JupyterHub restarts it once the port is free): a click works again,
    # and her work is still hers.
    world.service_pid()
    assert_finished(ada.pull(drive_url(world.folders.lab)))
    assert (folder / "lab.txt").read_text() == "from Drive\nmy notes\n"
    assert (folder / "mine.py").exists()


def test_a_rotated_key_is_picked_up_without_a_restart(world: World) -> None:
    """The admin replaces the key file with a new key of the same account and deletes the old
    key (Google then refuses it and the tokens minted with it): the service's next sync mints
    with the new key; neither the hub nor the service restarted. While the file is broken,
    students are told Drive is not set up, and the hub's log says why."""
    hub_pid, service_pid = world.hub.process.pid, world.service_pid()  # type: ignore[union-attr]
    key_path = world.hub.drive_thread.key_path
    old = world.hub.drive_thread.key
    new = world.on_drive(lambda: world.drive.service_account_key(new_key=True))

    def install(text: str) -> None:
        # The way a Kubernetes Secret is updated: a new file moved over the old one.
        with tempfile.NamedTemporaryFile("w", dir=key_path.parent, delete=False) as out:
            out.write(text)
        allow_file(Path(out.name), "the hub admin's service-account key")
        os.replace(out.name, key_path)

    # Half way through, the file is not a key: students are told Drive is not set up here
    # (the file's name and the reason go to the hub's log only).
    install('{"type": "service_account", "client_email": ')
    events = world.logged_in(world.ada).pull(drive_url(world.folders.rotation))
    assert events[-1]["phase"] == "error", events
    assert "the hub's Google service account is not set up correctly" in events[-1]["message"]
    assert "drive-sa.json" not in json.dumps(events)
    assert f"Google Drive cannot be read: The Google service-account key file {key_path}" in (
        world.hub.log()
    )

    install(json.dumps(new))
    world.on_drive(lambda: world.drive.delete_key(old["private_key_id"], revoke_tokens=True))
    since = len(world.drive_requests())

    events = world.logged_in(world.ada).pull(drive_url(world.folders.rotation))
    assert_finished(events)
    assert (world.home(world.ada) / "Rotation Lab" / "rotated.txt").read_bytes() == (
        b"after the rotation\n"
    )
    tokens = world.on_drive(lambda: dict(world.drive.tokens))
    used = [r.authorization.removeprefix("Bearer ") for r in world.drive_requests()[since:]]
    assert used and {tokens[t].key_id for t in used} == {new["private_key_id"]}
    assert world.hub.process.pid == hub_pid and world.service_pid() == service_pid  # type: ignore[union-attr]


# -- in a real browser -------------------------------------------------------------------------

# Every message nbgitpuller's page receives on its EventSource, kept across the pages of the
# hub's origin (the page moves on to urlpath when it is done).
RECORD_EVENTS = """
window.__sse = JSON.parse(sessionStorage.getItem("__sse") || "[]");
const NativeEventSource = window.EventSource;
window.EventSource = function (url, options) {
  const source = new NativeEventSource(url, options);
  source.addEventListener("message", (event) => {
    window.__sse.push(JSON.parse(event.data));
    sessionStorage.setItem("__sse", JSON.stringify(window.__sse));
  });
  return source;
};
window.EventSource.prototype = NativeEventSource.prototype;
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not HAVE_BROWSER:
        pytest.skip("needs chromium and chromedriver (./dev test installs them)")
    with headless_chromium(on_new_document=RECORD_EVENTS, page_load_timeout=60) as driver:
        yield driver


def test_a_student_clicks_a_drive_link_in_a_browser_through_the_hub(
    world: World, chromium: Any
) -> None:
    """Cy, not logged in and with no server yet, opens the nbgitpuller link of a Drive folder:
    the hub sends her to Canvas and back, starts her server, nbgitpuller's progress page
    shows the hub's sync, and she lands on urlpath with the folder in her home."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait

    def wait(seconds: float = 60) -> WebDriverWait[Any]:
        return WebDriverWait(chromium, seconds, poll_frequency=0.05)

    folder = world.folders.browser
    urlpath = "api/contents/Browser Lab/README.md"
    query = urllib.parse.urlencode(
        {"repo": drive_url(folder), "urlpath": urlpath}, quote_via=urllib.parse.quote
    )
    link = f"{world.hub.url}/hub/user-redirect/git-pull?{query}"
    world.hub.canvas_call(setattr, world.hub.canvas, "oauth_login_user", world.cy)
    no_user = requests.get(
        f"{world.hub.url}/hub/api/users/cy",
        headers={"Authorization": f"token {SERVICE_TOKEN}"},
        timeout=10,
    )
    assert no_user.status_code == 404  # never logged in: no hub user, no server

    world.on_drive(setattr, world.drive, "latency", 0.3)  # the progress page stays up a while
    try:
        chromium.get(link)
        # The hub's login page: "Sign in with Canvas" (the fake Canvas approves at once).
        wait().until(ec.element_to_be_clickable((By.PARTIAL_LINK_TEXT, "Sign in with"))).click()
        # She had no server: the hub starts one (its "spawn pending" page), then goes on.
        wait().until(lambda d: urlsplit(d.current_url).path == "/hub/spawn-pending/cy")
        wait().until(ec.presence_of_element_located((By.ID, "status-panel-title")))
        assert urlsplit(chromium.current_url).path == "/user/cy/git-pull"
        header = chromium.find_element(By.CLASS_NAME, "page-header").text
        assert f"before sending you to {urlpath}" in header
        wait().until(
            lambda d: "README.md" in "".join(
                e.get("output", "") for e in d.execute_script("return window.__sse || [];")
            )
        )  # fmt: skip
    finally:
        world.on_drive(setattr, world.drive, "latency", 0.0)
    wait().until(lambda d: d.current_url.endswith(urllib.parse.quote(urlpath)))
    assert "Read me first, from Drive." in chromium.find_element(By.TAG_NAME, "body").text
    sse = chromium.execute_script("return window.__sse || [];")
    for event in sse:
        observe("an SSE event in the browser", json.dumps(event))
    assert sse[-1]["phase"] == "finished"
    assert tree(world.home(world.cy) / "Browser Lab") == {
        "README.md": b"Read me first, from Drive.\n"
    }
    env = world.server_env(world.cy)
    assert "GOOGLE_DRIVE_ACCESS_TOKEN" not in env


# -- no Google token anywhere in a student's server ----------------------------------------


def test_no_google_token_reaches_the_students_server(world: World) -> None:
    """Last, after every sync of the module: the service minted tokens of the account (and,
    after the rotation, of its new key); none of them, and nothing of either key, is in a
    student's server: its process environment, the auth_state its own token
    reads, the files in the home (the folder, the local origins' git objects), or the logs
    (the hub's, which holds the servers' and the service's)."""
    drive_tokens = world.on_drive(lambda: list(world.drive.tokens))
    assert drive_tokens, "the service minted no token: nothing was tested"
    keys = [world.hub.drive_thread.key, json.loads(world.hub.drive_thread.key_path.read_text())]
    secrets = {token: "Google access token" for token in drive_tokens}
    for key in keys:
        secrets |= {
            line: "service-account private key" for line in key["private_key"].splitlines()[1:-1]
        }
    scanner = Scanner(secrets)
    findings = []
    users = [u for u in (world.ada, world.bo, world.cy) if u.login_id in world.browsers]
    assert len(users) >= 2
    for user in users:
        env = world.server_env(user)
        findings += scanner.scan(f"{user.login_id}'s server environment", "\n".join(
            f"{k}={v}" for k, v in env.items()
        ))  # fmt: skip
        assert not any(k.startswith("GOOGLE_") and k != "GOOGLE_DRIVE_API_URL" for k in env)
        assert "hub-secrets" not in "".join(env.values())  # not even the key's path
        # What the server's token reads of its user: auth_state without a Google section.
        answer = requests.get(
            f"{world.hub.url}/hub/api/users/{user.login_id}",
            headers={"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}"},
            timeout=30,
        )
        assert answer.status_code == 200
        assert "auth_state" in answer.json()  # it may read it (the Canvas passthrough)...
        assert "google" not in answer.json()["auth_state"]["privatepuller"]  # ...no Drive token
        findings += scanner.scan(f"{user.login_id}'s auth_state", answer.text)
        home = world.home(user)
        assert (home / ".privatepuller" / "origins").is_dir()
        findings += scanner.scan_tree(home)
    log = world.hub.log()
    assert "privatepuller service: Drive through the hub at" in log  # the service logs here
    findings += scanner.scan("the hub's log", log)
    assert [str(f) for f in findings] == []
    # The service account's tokens did reach Drive, from the service alone.
    used = {r.authorization for r in world.drive_requests()}
    assert used and used <= {f"Bearer {t}" for t in drive_tokens}
