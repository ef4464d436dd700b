"""Skipped and excluded files: one refused file never stops a course, and a file left out is
never taken away from the student.

Issue 11, findings 10 and 11:

- A Drive file that Google will not send (flagged as malware, downloads turned off by its owner,
  its download quota used up, any other 403 about that one file) is skipped and reported, and
  the rest of the folder is synced. Only refusals of the whole account (token, scope, domain
  policy, quotas after backoff) still fail the sync. `acknowledgeAbuse` is never sent.
- A file excluded by a size limit or the total cap, or skipped (locked, refused...), that the
  student already has stays in their folder exactly as it was: lowering a limit removes
  nothing. A file deleted upstream is still removed, as nbgitpuller would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import CanvasWorld, blob_id
from gdrive_helpers import DriveWorld, content_requests, make_world, pull_drive
from gdrive_helpers import tree as drive_tree
from privatepuller.console import summary
from privatepuller.errors import ConfigurationError, LoginExpired, NoAccess, PullError, RateLimited
from privatepuller.http.session import SessionOptions
from privatepuller.providers.canvas.skips import CanvasSkip
from privatepuller.providers.gdrive.links import GoogleDriveFolder
from privatepuller.providers.gdrive.policy import GOOGLE_POLICY
from privatepuller.providers.gdrive.skips import DriveSkip
from privatepuller.providers.repoproviders import Fetcher
from privatepuller.pull import pull
from privatepuller.server.events import report_lines
from privatepuller.sync.config import SyncConfig
from privatepuller.sync.engine import SyncReport
from privatepuller.sync.local_origin import LocalOrigin
from privatepuller.sync.manifest import ManifestEntry
from privatepuller.sync.plan import keep_earlier_copies
from privatepuller.sync.source import Skipped, SyncSkip
from privatepuller.sync.store import origin_for
from privatepuller.testing.drive.fake import DEFAULT_SA_EMAIL, FakeDrive, FakeItem
from server_helpers import DriveThread, JupyterServer, outputs, tree
from test_cli import canvas_env, run

KiB = 1024
FAST = SessionOptions(GOOGLE_POLICY.scaled(0.001))


@pytest.fixture
async def drive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DriveWorld]:
    """gdrive_helpers' world (the demo course "Intro to Data"), with a fast backoff."""
    monkeypatch.setenv("PRIVATEPULLER_HOME", str(tmp_path / "pp-home"))
    for name in ("GOOGLE_DRIVE_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PRIVATEPULLER_DRIVE_EXPORTS", raising=False)
    async with FakeDrive() as fake:
        world = await make_world(tmp_path, fake)
        yield dataclasses.replace(
            world, config=dataclasses.replace(world.config, backoff_scale=0.001)
        )


def never_acknowledged_abuse(fake: FakeDrive) -> bool:
    return not [r for r in fake.requests if "acknowledgeabuse" in r.path_qs.lower()]


# -- finding 10: Drive's per-file refusals are per file -------------------------------------


async def test_one_malware_flagged_file_does_not_stop_the_course(drive: DriveWorld) -> None:
    bad = drive.drive.add_file("setup.exe", drive.course.id, b"MZ...", abusive=True)
    report = await pull_drive(drive, drive.folder_url(drive.course))
    skipped = {s.path: s for s in report.skipped}
    assert skipped["setup.exe"].reason == "abusive"
    assert not (report.target / "setup.exe").exists()
    # Everything else arrived.
    assert (report.target / "01-welcome.ipynb").exists()
    assert (report.target / "data/iris.csv").exists()
    assert (report.target / "Syllabus.md").exists()
    assert "setup.exe" not in report.added
    # Asked once (a final 403 is not retried), and never with acknowledgeAbuse=true.
    assert len(content_requests(drive.drive, bad)) == 1
    assert never_acknowledged_abuse(drive.drive)
    line = next(x for x in report_lines(report) if "setup.exe" in x)
    assert "flagged by Google as possibly harmful" in line


# (fault kind, reported reason); the fault is Drive's exact 403 body for that reason.
BLOB_REFUSALS = [
    ("403_cannotDownloadAbusiveFile", "abusive"),
    ("403_cannotDownloadFile", "download_disabled"),
    ("403_insufficientFilePermissions", "download_disabled"),
    ("403_downloadQuotaExceeded", "download_quota"),
    ("403_appNotAuthorizedToFile", "refused"),
]
EXPORT_REFUSALS = [*BLOB_REFUSALS, ("403_exportSizeLimitExceeded", "export_too_large")]


@pytest.mark.parametrize(("kind", "reason"), BLOB_REFUSALS)
async def test_each_per_file_refusal_of_a_download_skips_only_that_file(
    drive: DriveWorld, kind: str, reason: str
) -> None:
    iris = drive.child(drive.child(drive.course, "data"), "iris.csv")
    drive.drive.inject_fault(rf"/files/{iris.id}\?.*alt=media", kind, times=100)  # type: ignore[arg-type]
    report = await pull_drive(drive, drive.folder_url(drive.course))
    assert [(s.path, s.reason) for s in report.skipped if s.path == "data/iris.csv"] == [
        ("data/iris.csv", reason)
    ]
    assert not (report.target / "data/iris.csv").exists()
    assert (report.target / "01-welcome.ipynb").exists()
    assert len(content_requests(drive.drive, iris)) == 1
    assert never_acknowledged_abuse(drive.drive)
    # The reason has words of its own for the student, and the report uses them.
    (skipped,) = [s for s in report.skipped if s.path == "data/iris.csv"]
    assert skipped.reason.words and skipped.reason.words != reason
    assert any(f"data/iris.csv: {skipped.reason.words}" in line for line in report_lines(report))


@pytest.mark.parametrize(("kind", "reason"), EXPORT_REFUSALS)
async def test_each_per_file_refusal_of_an_export_skips_only_that_file(
    drive: DriveWorld, kind: str, reason: str
) -> None:
    syllabus = drive.child(drive.course, "Syllabus")
    drive.drive.inject_fault(rf"/files/{syllabus.id}/export", kind, times=100)  # type: ignore[arg-type]
    report = await pull_drive(drive, drive.folder_url(drive.course))
    assert ("Syllabus.md", reason) in {(s.path, s.reason) for s in report.skipped}
    assert not (report.target / "Syllabus.md").exists()
    assert (report.target / "data/iris.csv").exists()
    assert len(content_requests(drive.drive, syllabus)) == 1


async def test_a_doc_whose_owner_turned_downloads_off_is_not_called_locked_in_canvas(
    drive: DriveWorld,
) -> None:
    drive.drive.add_google_doc("Answers", drive.course.id, "document", "42", can_download=False)
    report = await pull_drive(drive, drive.folder_url(drive.course))
    assert ("Answers.md", "download_disabled") in {(s.path, s.reason) for s in report.skipped}
    words = "\n".join(report_lines(report)) + summary(report)
    line = next(x for x in report_lines(report) if "Answers.md" in x)
    assert "downloads of this file are turned off by its owner" in line
    assert "Canvas" not in words


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        ("403_domainPolicy", NoAccess),
        ("403_dailyLimitExceeded", RateLimited),
        ("403_insufficientPermissions", ConfigurationError),
        ("403_rateLimitExceeded", RateLimited),  # retried by the backoff, then final
        ("401", LoginExpired),
    ],
)
async def test_refusals_of_the_whole_account_still_fail_the_sync_and_change_nothing(
    drive: DriveWorld, kind: str, error_type: type[PullError]
) -> None:
    url = drive.folder_url(drive.course)
    first = await pull_drive(drive, url)
    before = drive_tree(first.target)
    origin = origin_for(drive.config, f"gdrive:{drive.drive.base_url}/folders/{drive.course.id}")
    head = origin.head()
    iris = drive.child(drive.child(drive.course, "data"), "iris.csv")
    drive.drive.update_file(iris.id, b"sepal_length,species\n9.9,new\n")
    drive.drive.inject_fault(rf"/files/{iris.id}\?.*alt=media", kind, times=10**6)  # type: ignore[arg-type]
    with pytest.raises(error_type):
        await pull_drive(drive, url)
    assert drive_tree(first.target) == before
    assert origin.head() == head


async def test_a_file_flagged_after_the_student_had_it_stays_as_it_was(drive: DriveWorld) -> None:
    url = drive.folder_url(drive.course)
    first = await pull_drive(drive, url)
    iris = drive.child(drive.child(drive.course, "data"), "iris.csv")
    had = (first.target / "data/iris.csv").read_bytes()
    drive.drive.update_file(iris.id, b"now flagged\n")
    drive.drive.restrict(iris.id, abusive=True)
    report = await pull_drive(drive, url)
    assert ("data/iris.csv", "abusive") in {(s.path, s.reason) for s in report.skipped}
    assert (report.target / "data/iris.csv").read_bytes() == had
    # Also reached through the demo's shortcut to "data": both copies stay.
    assert report.kept == ("Link to data/iris.csv", "data/iris.csv")
    assert report.removed == () and report.updated == ()
    # Once Google lets it go again, the new version arrives.
    drive.drive.restrict(iris.id, abusive=False)
    again = await pull_drive(drive, url)
    assert again.updated == ("Link to data/iris.csv", "data/iris.csv") and again.kept == ()
    assert (again.target / "data/iris.csv").read_bytes() == b"now flagged\n"


async def test_repoproviders_fetch_leaves_a_refused_file_out_and_fetches_the_rest(
    drive: DriveWorld, tmp_path: Path
) -> None:
    drive.drive.add_file("setup.exe", drive.course.id, b"MZ...", abusive=True)
    repo = GoogleDriveFolder(drive.course.id, "Intro to Data")
    out = tmp_path / "out"
    await Fetcher(drive.credentials, SyncConfig(backoff_scale=0.001)).fetch(repo, out)
    assert (out / "data/iris.csv").exists() and (out / "01-welcome.ipynb").exists()
    assert not (out / "setup.exe").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary file


# -- finding 11: excluded is not deleted ----------------------------------------------------


def add_dataset(world: CanvasWorld, count: int = 12, size: int = 150 * KiB) -> list[str]:
    paths = [f"data/part-{i:02d}.csv" for i in range(count)]
    for path in paths:
        world.course.files.add_file(path, size=size)
    return paths


async def pull_course(world: CanvasWorld, **limits: Any) -> SyncReport:
    config = dataclasses.replace(world.config, **limits)
    return await pull(
        world.url(), parent_dir=world.workdir, credentials=world.credentials, config=config
    )


def origin_files(world: CanvasWorld) -> dict[str, str]:
    """{path: blob} of the course's local origin (its only one)."""
    (path,) = world.config.origins_dir.glob("*.git")
    origin = LocalOrigin(path)
    head = origin.head()
    assert head is not None
    return {path: blob for path, (blob, _) in origin.files(head).items()}


async def test_lowering_the_file_size_limit_removes_nothing(world: CanvasWorld) -> None:
    data = add_dataset(world)
    first = await pull_course(world)
    assert set(data) <= set(first.added)
    (first.target / "README.md").write_text("my notes\n")  # the student's own edit
    before = drive_tree(first.target)
    world.course.files.remove("Week 1/data/iris.csv")  # deleted upstream meanwhile

    report = await pull_course(world, max_file_size=100 * KiB)
    after = drive_tree(report.target)
    del before["Week 1/data/iris.csv"]
    assert after == before  # byte for byte, the student's edit included
    assert report.removed == ("Week 1/data/iris.csv",)  # deleted upstream: still removed
    assert [(s.path, s.reason) for s in report.excluded] == [(p, "too_large") for p in data]
    assert report.kept == tuple(data)
    assert report.added == () and report.updated == ()
    assert report.unchanged == 2  # README.md and Week 1/intro.ipynb; kept files are not counted
    # The origin's snapshot still has them, with their earlier content.
    files = origin_files(world)
    assert all(files[p] == blob_id((first.target / p).read_bytes()) for p in data)
    lines = report_lines(report)
    assert lines[0].endswith(", 12 kept from an earlier sync")
    assert all(
        any(
            p in line and "your copy from an earlier sync stays as it was" in line for line in lines
        )
        for p in data
    )


async def test_raising_the_limit_again_downloads_only_what_changed_upstream(
    world: CanvasWorld,
) -> None:
    data = add_dataset(world)
    await pull_course(world)
    await pull_course(world, max_file_size=100 * KiB)
    world.course.files.update_file(data[3], size=160 * KiB)  # changed while excluded
    world.course.files.remove(data[4])  # deleted while excluded
    report = await pull_course(world)
    assert report.updated == (data[3],)  # the carried-over entry was not taken as current
    assert report.removed == (data[4],)
    assert report.downloaded_files == 1  # the others reuse their blobs
    assert report.kept == () and report.excluded == ()
    assert (report.target / data[3]).stat().st_size == 160 * KiB
    assert not (report.target / data[4]).exists()


async def test_lowering_the_total_cap_removes_nothing(world: CanvasWorld) -> None:
    data = add_dataset(world, count=6)
    first = await pull_course(world)
    before = drive_tree(first.target)
    report = await pull_course(world, max_total_size=300 * KiB)
    assert drive_tree(report.target) == before
    assert report.removed == ()
    capped = {s.path for s in report.excluded if s.reason == "total_cap"}
    assert capped and capped <= set(data)
    assert set(report.kept) == capped


async def test_a_file_locked_after_the_student_had_it_stays(world: CanvasWorld) -> None:
    first = await pull_course(world)
    (first.target / "Week 1/intro.ipynb").write_text('{"cells": ["mine"]}\n')
    before = drive_tree(first.target)
    world.course.files.file("Week 1/intro.ipynb").module_lock = "Week 1"
    world.course.files.file("README.md").module_lock = "Week 1"
    report = await pull_course(world)
    assert drive_tree(report.target) == before
    locked = {s.path for s in report.skipped if s.reason == "locked"}
    assert locked == {"Week 1/intro.ipynb", "README.md"}
    assert report.kept == ("README.md", "Week 1/intro.ipynb")
    assert report.removed == ()
    assert any(
        "README.md: locked in Canvas" in line and "stays" in line for line in report_lines(report)
    )


async def test_a_lost_manifest_does_not_turn_excluded_into_removed(world: CanvasWorld) -> None:
    data = add_dataset(world, count=3)
    first = await pull_course(world)
    before = drive_tree(first.target)
    (manifest,) = world.config.origins_dir.glob("*.git/privatepuller-manifest.json")
    manifest.unlink()  # as if a sync had been killed between its commit and its manifest
    report = await pull_course(world, max_file_size=100 * KiB)
    assert drive_tree(report.target) == before
    assert report.kept == tuple(data)
    # Copied again with the limit raised: the same bytes, nothing removed.
    again = await pull_course(world)
    assert drive_tree(again.target) == before
    assert again.removed == () and again.kept == ()


async def test_cli_pull_with_a_lower_max_file_size_keeps_the_folder(world: CanvasWorld) -> None:
    data = add_dataset(world, count=5)
    env = canvas_env(world)
    code, out = await run("pull", world.url(), "course", env=env, cwd=world.workdir)
    assert code == 0, out
    before = drive_tree(world.workdir / "course")
    code, out = await run(
        "pull", "--max-file-size", "0.1", world.url(), "course", env=env, cwd=world.workdir
    )
    assert code == 0, out
    assert drive_tree(world.workdir / "course") == before
    assert "removed 0" in out and "kept 5" in out, out
    for path in data:
        line = next(x for x in out.splitlines() if path in x)
        assert "--max-file-size" in line and "stays as it was" in line, line


def test_keep_earlier_copies_rules() -> None:
    def entry(name: str) -> ManifestEntry:
        return ManifestEntry(f"key:{name}", 1, blob_id(name.encode()))

    earlier = {
        p: entry(p)
        for p in ["big.csv", "Week 3/quiz.ipynb", "Week 3/data/a.csv", "gone.txt", "x", "y/z"]
    }
    entries = {"y": entry("new file y"), "x/inner": entry("new x folder")}
    left_out = [
        Skipped("big.csv", SyncSkip.TOO_LARGE),
        Skipped("Week 3/", CanvasSkip.LOCKED),  # a folder: everything under it
        Skipped("x", SyncSkip.TOO_LARGE),  # now a folder in the new snapshot: cannot be kept
        Skipped("y/z", CanvasSkip.LOCKED),  # its folder is now a file: cannot be kept
    ]
    kept = keep_earlier_copies(earlier, entries, left_out)
    assert kept == ["Week 3/data/a.csv", "Week 3/quiz.ipynb", "big.csv"]
    assert entries["big.csv"] == earlier["big.csv"]  # same blob and same (earlier) change key
    assert "gone.txt" not in entries  # not listed any more: deleted upstream
    assert entries["y"] == entry("new file y") and "x" not in entries


def test_skip_words_for_students() -> None:
    report = SyncReport(
        name="Week 1",
        target=Path("/home/ada/Week 1"),
        added=(),
        updated=(),
        removed=(),
        unchanged=1,
        excluded=(Skipped("data/big.csv", SyncSkip.TOO_LARGE, "150.0 MB"),),
        skipped=(
            Skipped(
                "setup.exe", DriveSkip.ABUSIVE, "ask your instructor to check it and replace it"
            ),
            Skipped("answers.pdf", DriveSkip.DOWNLOAD_DISABLED),
            Skipped("popular.zip", DriveSkip.DOWNLOAD_QUOTA),
            Skipped("Week 3/", CanvasSkip.LOCKED),
        ),
        downloaded_files=0,
        downloaded_bytes=0,
        commit=None,
        kept=("Week 3/quiz.ipynb", "data/big.csv"),
    )
    lines = report_lines(report)
    assert lines[0] == (
        "Synced “Week 1”: 0 added, 0 updated, 0 removed, 1 unchanged, 2 kept from an earlier sync"
    )
    text = "\n".join(lines)
    assert (
        "  data/big.csv (150.0 MB): larger than this hub's limit for one file; your copy from an "
        "earlier sync stays as it was" in lines
    )
    assert "flagged by Google as possibly harmful; Google does not allow downloading it" in text
    assert "  answers.pdf: downloads of this file are turned off by its owner" in lines
    assert (
        "  popular.zip: Google's download limit for this file was reached; try again later" in lines
    )
    assert "  Week 3/: locked in Canvas; your copy from an earlier sync stays as it was" in lines
    cli = summary(report)
    assert "unchanged 1, kept 2;" in cli
    assert "data/big.csv (150.0 MB): larger than the limit for one file (--max-file-size)" in cli
    assert "answers.pdf: downloads of this file are turned off by its owner" in cli
    assert "Canvas" not in next(x for x in cli.splitlines() if "answers.pdf" in x)


# -- through a real Jupyter server ------------------------------------------------------------

SERVER_MAX_FILE_SIZE = 64 * KiB


@dataclass
class ServerWorld:
    drive_thread: DriveThread
    server: JupyterServer

    @property
    def drive(self) -> FakeDrive:
        return self.drive_thread.drive

    def folder(
        self, name: str, files: dict[str, bytes], flags: dict[str, dict[str, bool]] | None = None
    ) -> tuple[str, FakeItem]:
        def make() -> tuple[str, FakeItem]:
            folder = self.drive.add_folder(name, share_with=DEFAULT_SA_EMAIL)
            for path, content in files.items():
                extra = (flags or {}).get(path, {})
                self.drive.add_file(path, folder.id, content, mime_type="text/plain", **extra)
            return f"https://drive.google.com/drive/folders/{folder.id}", folder

        return self.drive_thread.call(make)

    def sync(self, repo: str, **params: str) -> list[dict[str, Any]]:
        events = self.server.sync(repo, **params)
        assert events and events[-1]["phase"] in ("finished", "error")
        assert self.server.env["GOOGLE_DRIVE_ACCESS_TOKEN"] not in str(events)
        return events


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerWorld]:
    drive_thread = DriveThread()
    server = JupyterServer(
        tmp_path_factory.mktemp("skips-server"),
        env=drive_thread.env(),
        args=[
            "--PrivatePuller.backoff_scale=0.01",
            f"--PrivatePuller.max_file_size={SERVER_MAX_FILE_SIZE}",
        ],
    )
    try:
        with server:
            yield ServerWorld(drive_thread, server)
    finally:
        drive_thread.close()


def test_server_syncs_a_folder_with_refused_files_and_says_why(sw: ServerWorld) -> None:
    link, _ = sw.folder(
        "Week 5",
        {
            "notes.md": b"# Week 5\n",
            "setup.exe": b"MZ\x90\x00",
            "answers.pdf": b"%PDF-1.4\n",
            "popular.zip": b"PK\x03\x04",
        },
        {
            "setup.exe": {"abusive": True},
            "answers.pdf": {"can_download": False},
            "popular.zip": {"download_quota_exceeded": True},
        },
    )
    events = sw.sync(link, targetpath="Week 5")
    assert events[-1] == {"phase": "finished"}, outputs(events)
    assert tree(sw.server.root / "Week 5") == {"notes.md": b"# Week 5\n"}
    text = outputs(events)
    assert "setup.exe: flagged by Google as possibly harmful" in text
    assert "answers.pdf: downloads of this file are turned off by its owner" in text
    assert "popular.zip: Google's download limit for this file was reached" in text
    assert "locked in Canvas" not in text
    assert never_acknowledged_abuse(sw.drive)


def test_server_keeps_a_file_that_grew_past_the_limit(sw: ServerWorld) -> None:
    link, folder = sw.folder("Week 6", {"data.csv": b"a,b\n1,2\n", "notes.md": b"notes\n"})
    assert sw.sync(link, targetpath="Week 6")[-1] == {"phase": "finished"}
    target = sw.server.root / "Week 6"
    (target / "notes.md").write_bytes(b"my notes\n")
    before = tree(target)

    def grow() -> None:
        data = next(c for c in sw.drive.children(folder.id) if c.name == "data.csv")
        sw.drive.update_file(data.id, b"x" * (SERVER_MAX_FILE_SIZE + 1))
        notes = next(c for c in sw.drive.children(folder.id) if c.name == "notes.md")
        sw.drive.update_file(notes.id, b"x" * (SERVER_MAX_FILE_SIZE + 1))

    sw.drive_thread.call(grow)
    events = sw.sync(link, targetpath="Week 6")
    # Every file is excluded now, but the student's folder is not empty: no "Nothing was
    # copied" error, and nothing removed.
    assert events[-1] == {"phase": "finished"}, outputs(events)
    assert tree(target) == before
    text = outputs(events)
    assert "0 removed" in text and "2 kept from an earlier sync" in text
    assert "data.csv (64.0 kB): larger than this hub's limit for one file; your copy" in text
