"""The hub's privatepuller service over HTTP, with a student's server's client.

The service's tornado app runs on loopback with a stand-in for JupyterHub's token check (the
real hub is in tests/test_e2e_hub_service.py); snapshots are real commits in a real bare git
origin, fetched as real bundles into a student's local origin.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
from jupyterhub.services.auth import check_scopes
from tornado.httpserver import HTTPServer
from yarl import URL

from privatepuller.errors import DownloadFailed, LoginExpired, NoAccess, NotConfigured
from privatepuller.hub.service import ACCESS_SCOPE, ServiceSettings, listen_address, make_app
from privatepuller.hub.snapshots import Event, ServedSnapshot, SnapshotRef
from privatepuller.providers.gdrive.hub import HubClient, HubService
from privatepuller.providers.gdrive.links import GoogleDriveFileLink, GoogleDriveFolderLink
from privatepuller.sync.local_origin import LocalOrigin
from privatepuller.sync.progress import NullProgress
from server_helpers import free_port

PREFIX = "/services/privatepuller/"
FOLDER = "1folderaaaaaaaaaaaaaaaaa"
SECRET_FOLDER = "1secretaaaaaaaaaaaaaaaaa"


class StubHubAuth:
    """JupyterHub's answers for tokens and group membership (hub/service.py uses the same two
    calls of `jupyterhub.services.auth.HubAuth`)."""

    api_url = "http://hub.invalid/hub/api"

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[str]] = {}

    def add(self, token: str, name: str, scopes: list[str], groups: tuple[str, ...] = ()) -> None:
        self.users[token] = {"kind": "user", "name": name, "scopes": scopes}
        self.groups[name] = list(groups)

    async def user_for_token(self, token: str, sync: bool = True) -> dict[str, Any] | None:
        return self.users.get(token)

    def check_scopes(self, required: set[str], model: dict[str, Any]) -> set[str]:
        return check_scopes(required, set(model["scopes"]))  # type: ignore[no-any-return]

    async def _api_request(self, method: str, url: str) -> dict[str, Any]:
        # As the hub reads the URL: the path (a "#" ends it), its last segment unquoted.
        name = unquote(urlsplit(url).path.rsplit("/", 1)[1])
        return {"name": name, "groups": self.groups.get(name, [])}


@dataclass
class Upstream:
    """What the service's refresh produces: commits in a real bare origin."""

    origin: LocalOrigin
    files: dict[str, bytes] = field(default_factory=lambda: {"README.md": b"v1\n"})
    refs: list[SnapshotRef] = field(default_factory=list)
    fail: Exception | None = None
    events: list[Event] = field(default_factory=list)
    ancestors: tuple[str, ...] = ()
    paths: list[list[Any]] = field(default_factory=list)  # the report's rows

    def commit(self) -> str:
        blobs = {}
        for path, content in self.files.items():
            blob = (
                subprocess.run(
                    ["git", "--git-dir", str(self.origin.path), "hash-object", "-w", "--stdin"],
                    input=content,
                    capture_output=True,
                    check=True,
                )
                .stdout.decode()
                .strip()
            )
            blobs[path] = blob
        self.origin.commit_tree(blobs, "snapshot")
        head = self.origin.head()
        assert head is not None
        return head

    async def info(self, ref: SnapshotRef, emit: Callable[[Event], None]) -> dict[str, Any]:
        self.refs.append(ref)
        if self.fail is not None:
            raise self.fail
        source_id = f"gdrive:test/{ref.item_id}"
        return {"name": "Week 1", "kind": ref.kind, "source_id": source_id,
                "ancestors": list(self.ancestors)}  # fmt: skip

    async def refresh(self, ref: SnapshotRef, emit: Callable[[Event], None]) -> ServedSnapshot:
        self.refs.append(ref)
        for event in self.events:
            emit(event)
        if self.fail is not None:
            raise self.fail
        report = {
            "excluded": [],
            "skipped": [],
            "kept": [],
            "paths": self.paths,
            "ancestors": list(self.ancestors),
        }
        return ServedSnapshot(
            "Week 1", self.commit(), self.origin.path, f"gdrive:test/{ref.item_id}", report
        )


@dataclass
class World:
    url: str
    auth: StubHubAuth
    upstream: Upstream
    tmp: Path

    def client(self, token: str = "ada-server-token") -> HubClient:
        return HubClient(
            HubService.from_env(
                {"PRIVATEPULLER_SERVICE_URL": self.url, "JUPYTERHUB_API_TOKEN": token}
            )
        )  # type: ignore[arg-type]

    def local_origin(self, name: str = "local") -> Path:
        path = self.tmp / f"{name}.git"
        if not path.exists():
            subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
        return path


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    origin = LocalOrigin(tmp_path / "service" / "origins" / "x.git")
    origin.ensure()
    upstream = Upstream(origin)
    auth = StubHubAuth()
    auth.add("ada-server-token", "ada", [ACCESS_SCOPE], ("canvas:course:101",))
    auth.add("bo-server-token", "bo", [ACCESS_SCOPE])
    auth.add("no-scope-token", "cy", ["access:servers!user=cy"])
    settings = ServiceSettings(
        home=tmp_path / "service",
        min_relist_seconds=0,
        folder_groups={SECRET_FOLDER: ("canvas:course:101",)},
    )
    app = make_app(settings, upstream.refresh, upstream.info, auth, PREFIX)
    port = free_port()
    server = HTTPServer(app)
    server.listen(port, "127.0.0.1")
    try:
        yield World(f"http://127.0.0.1:{port}{PREFIX}", auth, upstream, tmp_path)
    finally:
        server.stop()
        await server.close_all_connections()


def head_of(git_dir: Path) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-parse", "refs/heads/main"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


async def test_a_student_fetches_the_snapshot_and_later_only_what_changed(world: World) -> None:
    client = world.client()
    link = GoogleDriveFolderLink(FOLDER, "rk-secret")
    first = await client.snapshot(link, NullProgress())
    assert (first.name, first.source_id) == ("Week 1", f"gdrive:test/{FOLDER}")
    local = world.local_origin()
    await client.fetch(first, local, None)
    assert head_of(local) == first.commit
    # The resource key travelled in a header: the service got it, no URL carried it.
    assert world.upstream.refs[-1].resource_key == "rk-secret"

    await client.fetch(first, local, first.commit)  # nothing new: 204, nothing changes
    assert head_of(local) == first.commit

    world.upstream.files["data.csv"] = b"a,b\n" * 1000
    second = await client.snapshot(link, NullProgress())
    assert second.commit != first.commit
    await client.fetch(second, local, first.commit)
    assert head_of(local) == second.commit
    shown = subprocess.run(
        ["git", "--git-dir", str(local), "show", f"{second.commit}:data.csv"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert shown == b"a,b\n" * 1000


async def test_fetching_a_snapshot_costs_no_second_listing(world: World) -> None:
    """min_relist_seconds = 0 lists on every request for a snapshot, but the bundle of the
    snapshot the student was just given comes from that snapshot (one click, one listing)."""
    client = world.client()
    link = GoogleDriveFolderLink(FOLDER)
    snapshot = await client.snapshot(link, NullProgress())
    await client.fetch(snapshot, world.local_origin(), None)
    assert len(world.upstream.refs) == 1
    await client.snapshot(link, NullProgress())  # the next click lists again
    assert len(world.upstream.refs) == 2


async def test_progress_and_errors_of_the_hubs_sync_reach_the_student(world: World) -> None:
    heard: list[tuple[str, Any]] = []

    class Heard(NullProgress):
        def listed(self, files: int, total_bytes: int) -> None:
            heard.append(("listed", (files, total_bytes)))

        def file_done(self, path: str, size: int) -> None:
            heard.append(("file", (path, size)))

        def waiting(self, seconds: float, provider: str) -> None:
            heard.append(("waiting", (seconds, provider)))

    world.upstream.events = [
        {"waiting": [4.0, "gdrive"]},
        {"listed": [2, 30]},
        {"file": ["README.md", 3]},
    ]
    await world.client().snapshot(GoogleDriveFolderLink(FOLDER), Heard())
    assert heard == [
        ("waiting", (4.0, "gdrive")),
        ("listed", (2, 30)),
        ("file", ("README.md", 3)),
    ]
    world.upstream.fail = NoAccess("Share the folder with hub@project.iam.gserviceaccount.com.")
    with pytest.raises(NoAccess, match="hub@project.iam.gserviceaccount.com"):
        await world.client().snapshot(GoogleDriveFolderLink(FOLDER), NullProgress())


@pytest.mark.parametrize("token", ["no-scope-token", "unknown-token", ""])
async def test_only_a_server_token_with_access_to_the_service_is_served(
    world: World, token: str
) -> None:
    with pytest.raises(LoginExpired, match="did not accept this server's login"):
        await world.client(token or "x").snapshot(GoogleDriveFolderLink(FOLDER), NullProgress())
    assert world.upstream.refs == []  # refused before anything was synced


async def test_a_folder_limited_to_groups_is_served_only_to_their_members(world: World) -> None:
    with pytest.raises(NoAccess, match="canvas:course:101"):
        await world.client("bo-server-token").snapshot(
            GoogleDriveFolderLink(SECRET_FOLDER), NullProgress()
        )
    assert world.upstream.refs == []
    snapshot = await world.client().snapshot(GoogleDriveFolderLink(SECRET_FOLDER), NullProgress())
    # ... and its bundle too: Bo cannot fetch the commit Ada was given.
    with pytest.raises(NoAccess):
        await world.client("bo-server-token").fetch(snapshot, world.local_origin("bo"), None)


async def test_group_membership_is_asked_for_the_callers_own_name(world: World) -> None:
    """A user name with "#" (or "?") is quoted in the hub API's URL: unquoted, "ada#x" would
    be answered with the groups of "ada"."""
    world.auth.add("ada-x-token", "ada#x", [ACCESS_SCOPE])
    with pytest.raises(NoAccess, match="canvas:course:101"):
        await world.client("ada-x-token").snapshot(
            GoogleDriveFolderLink(SECRET_FOLDER), NullProgress()
        )
    assert world.upstream.refs == []


async def test_a_file_inside_a_limited_folder_is_limited_too(world: World) -> None:
    world.upstream.ancestors = ("1parentaaaaaaaaaaaaaaaa", SECRET_FOLDER)
    link = GoogleDriveFileLink("1fileinsideaaaaaaaaaaaa")
    with pytest.raises(NoAccess, match="canvas:course:101"):
        await world.client("bo-server-token").snapshot(link, NullProgress())
    assert (await world.client().snapshot(link, NullProgress())).name == "Week 1"


async def test_nothing_but_the_two_reads_is_served(world: World) -> None:
    headers = {"Authorization": "token ada-server-token"}

    def status(method: str, path: str) -> int:
        response = requests.request(method, world.url + path, headers=headers, timeout=10)
        return response.status_code

    statuses = await asyncio.to_thread(
        lambda: {
            "list": status("GET", "api/drive/folder"),
            "shared": status("GET", "api/drive/sharedWithMe"),
            "post": status("POST", f"api/drive/folder/{FOLDER}"),
            "delete": status("DELETE", f"api/drive/folder/{FOLDER}"),
            "other": status("GET", "api/users"),
            "bad commit": status("GET", f"api/drive/folder/{FOLDER}/bundle?commit=HEAD"),
        }
    )
    assert statuses == {
        "list": 404,
        "shared": 404,
        "post": 405,
        "delete": 405,
        "other": 404,
        "bad commit": 400,
    }
    assert world.upstream.refs == []


async def test_a_service_that_is_down_is_said_in_words(world: World) -> None:
    client = HubClient(
        HubService.from_env(  # type: ignore[arg-type]
            {
                "PRIVATEPULLER_SERVICE_URL": f"http://127.0.0.1:{free_port()}{PREFIX}",
                "JUPYTERHUB_API_TOKEN": "ada-server-token",
            }
        )
    )
    client.options = client.options.__class__(
        client.options.policy.scaled(0.01), read_timeout=5.0, min_throughput=0.0
    )
    with pytest.raises(DownloadFailed, match="file service .* is not answering"):
        await client.snapshot(GoogleDriveFolderLink(FOLDER), NullProgress())


async def test_a_stream_cut_off_part_way_is_said_in_words(world: World) -> None:
    """The service dies while it streams progress (the connection ends inside a chunked
    body): the student is told the service is not answering, not shown aiohttp's words."""

    async def cut_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        line = b'{"output": "Listing the folder"}\n'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(line), line)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(cut_off, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    heard: list[str] = []

    class Heard(NullProgress):
        def git_output(self, line: str) -> None:
            heard.append(line)

    client = HubClient(
        HubService.from_env(  # type: ignore[arg-type]
            {
                "PRIVATEPULLER_SERVICE_URL": f"http://127.0.0.1:{port}{PREFIX}",
                "JUPYTERHUB_API_TOKEN": "ada-server-token",
            }
        )
    )
    try:
        with pytest.raises(DownloadFailed, match="file service .* is not answering"):
            await client.snapshot(GoogleDriveFolderLink(FOLDER), Heard())
    finally:
        server.close()
        await server.wait_closed()
    assert heard == ["Listing the folder"]


async def test_the_report_of_a_large_folder_reaches_the_student(world: World) -> None:
    """The snapshot's last line lists every file: for a large folder it is longer than
    aiohttp's own line limit (twice its 256 KiB read buffer)."""
    world.upstream.paths = [[f"week {n % 14}/data/sample-{n:06d}.csv", n] for n in range(20_000)]
    snapshot = await world.client().snapshot(GoogleDriveFolderLink(FOLDER), NullProgress())
    assert len(json.dumps(snapshot.report)) > 2 * 256 * 1024
    assert snapshot.report["paths"] == world.upstream.paths


@pytest.mark.parametrize(
    ("service_url", "address"),
    [
        ("http://127.0.0.1:10101", ("127.0.0.1", 10101)),
        ("http://[::1]:10101", ("::1", 10101)),
        ("http://10.0.3.7:10101", ("10.0.3.7", 10101)),
        ("http://localhost:10101", ("localhost", 10101)),
        # Zero to JupyterHub: `hub` is the Kubernetes Service in front of the hub's pod.
        ("http://hub:10101", ("", 10101)),
        ("http://privatepuller.jhub.svc.cluster.local:8080", ("", 8080)),
    ],
)
def test_the_service_listens_where_its_url_leads(
    service_url: str, address: tuple[str, int]
) -> None:
    assert listen_address(URL(service_url)) == address


# -- the whole path: the fake Drive, the service's Drive side, students' pulls --------------


@dataclass
class HubWorld:
    drive_world: Any
    url: str
    auth: StubHubAuth
    side: Any

    def student_env(self, token: str = "ada-server-token") -> dict[str, str]:
        return {"PRIVATEPULLER_SERVICE_URL": self.url, "JUPYTERHUB_API_TOKEN": token}


@pytest.fixture
async def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HubWorld]:
    from gdrive_helpers import make_world
    from privatepuller.hub.drive import DriveSide, KeyFile
    from privatepuller.sync.config import SyncConfig
    from privatepuller.testing.drive.fake import FakeDrive

    for name in ("GOOGLE_DRIVE_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    async with FakeDrive() as drive:
        world = await make_world(tmp_path, drive)
        key_env = {
            "GOOGLE_APPLICATION_CREDENTIALS": str(world.key_file),
            "GOOGLE_DRIVE_API_URL": drive.api_url,
        }
        config = SyncConfig(home=tmp_path / "service-home", backoff_scale=0.01)
        side = DriveSide(config, KeyFile(key_env), find_ancestors=True)
        auth = StubHubAuth()
        auth.add("ada-server-token", "ada", [ACCESS_SCOPE])
        auth.add("bo-server-token", "bo", [ACCESS_SCOPE])
        settings = ServiceSettings(home=config.home, min_relist_seconds=30)
        app = make_app(settings, side.refresh, side.info, auth, PREFIX)
        port = free_port()
        server = HTTPServer(app)
        server.listen(port, "127.0.0.1")
        try:
            yield HubWorld(world, f"http://127.0.0.1:{port}{PREFIX}", auth, side)
        finally:
            server.stop()
            await server.close_all_connections()


async def test_students_pull_a_drive_folder_through_the_hub_with_no_google_token(
    hub: HubWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from privatepuller.credentials.sources import EnvCredentialSource
    from privatepuller.pull import pull
    from privatepuller.sync.config import SyncConfig
    from server_helpers import tree

    world = hub.drive_world
    for who, token in (("ada", "ada-server-token"), ("bo", "bo-server-token")):
        for name, value in hub.student_env(token).items():
            monkeypatch.setenv(name, value)
        config = SyncConfig(home=tmp_path / who / ".privatepuller", backoff_scale=0.01)
        report = await pull(
            world.folder_url(world.course),
            parent_dir=tmp_path / who,
            credentials=EnvCredentialSource({}),  # no Google credential in the server
            config=config,
        )
        assert report.name == "Intro to Data"
        assert len(report.added) == len(tree(tmp_path / who / "Intro to Data")) > 0
    # One listing of the folder served both students (min_relist_seconds = 30).
    folder_lists = [
        r for r in world.drive.requests
        if r.path == "/drive/v3/files" and world.course.id in r.query.get("q", "")
    ]  # fmt: skip
    assert len(folder_lists) == 1
    assert tree(tmp_path / "ada" / "Intro to Data") == tree(tmp_path / "bo" / "Intro to Data")


async def test_a_broken_key_is_told_to_students_in_words_and_to_the_admin_in_the_log(
    hub: HubWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """The service cannot use its key: students read that Drive is not set up on this hub
    (not the key file's path or Google's error), the hub log says why; a repaired key works
    at the next click, without a restart."""
    world = hub.drive_world
    original = world.key_file.read_text()
    world.key_file.write_text("{not json")
    client = HubClient(HubService.from_env(hub.student_env()))  # type: ignore[arg-type]
    link = GoogleDriveFolderLink(world.course.id)
    for attempt in (client.info(link), client.snapshot(link, NullProgress())):
        with pytest.raises(NotConfigured) as refused:
            await attempt
        assert "the hub's Google service account is not set up correctly" in refused.value.message
        assert str(world.key_file) not in refused.value.message
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.name == "privatepuller.service" and r.levelname == "ERROR"
    ]
    assert logged == [
        "privatepuller service: Google Drive cannot be read: The Google service-account key "
        f"file {world.key_file} is not valid JSON."
    ]  # once, however many students ask

    world.key_file.write_text(original)
    assert (await client.snapshot(link, NullProgress())).name == "Intro to Data"
