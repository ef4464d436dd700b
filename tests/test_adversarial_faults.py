"""Faults mid-sync (issue #7), for Canvas and for Google Drive.

One invariant, whatever breaks: **the student's folder and the local origin are each exactly
the old state or exactly the new state** -- never in between, no partial or temporary file in
the folder or next to it (the origin moves first; the folder follows) -- **and the next sync
completes**, with the student's edits kept.

One exception git itself imposes: it writes a folder's files one by one, so a process killed
while git is writing them leaves some files old and some new (one perhaps cut short). Then no
file is lost, and the next sync first puts back what the killed merge had written, then merges
(`test_killed_halfway_through_the_merges_checkout`). A disk that fills up while git writes
gets the same treatment at once.

The scenario: the student pulled a course and then edited a line of README.md and made a file
of their own; the instructor changed README.md (another line) and iris.csv, added a file and
removed one. The "new state" is nbgitpuller's merge of the two (tests/test_canvas_pull.py
checks those rules); the "old state" is the folder as the student left it.

What breaks:
- the network: connection reset before the response and mid-body, a 502 with an HTML body, a
  500, a server that stops answering (a small `read_timeout`), a body shorter than its
  Content-Length -- on the listing and on the downloads; a few times (retried, the sync
  completes) and every time (the sync fails with a message that says to try again);
- the disk: a small tmpfs for the home folder, full during the download, during the origin's
  git step and during the merge into the student's folder;
- the process: `privatepuller pull` killed with SIGKILL (with its git children) during a
  download, in the origin's git step and in every step of the merge into the folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import blob_id
from leak_scan import observe, scan_tree_now
from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.errors import DiskFull, PullError, SyncBusy
from privatepuller.pull import pull
from privatepuller.sync.config import SyncConfig
from privatepuller.sync.engine import SyncReport
from privatepuller.sync.local_origin import LocalOrigin
from privatepuller.sync.merge import UNFINISHED
from privatepuller.testing.canvas.fake import FakeCanvas
from privatepuller.testing.drive.fake import DEFAULT_SA_EMAIL, FakeDrive

README = b"line 1\nline 2\nline 3\nline 4\nline 5\n"
OLD_REMOTE = {
    "README.md": README,
    "Week 1/intro.ipynb": b'{"cells": []}\n',
    "Week 1/data/iris.csv": b"a,b\n1,2\n",
}
NEW_REMOTE = {
    "README.md": README.replace(b"line 5", b"NEW line 5"),
    "Week 1/data/iris.csv": b"a,b\n1,2\n3,4\n",
    "Week 2/new.csv": b"x,y\n",
}
STUDENT_README = README.replace(b"line 1", b"student line 1")
NEW_TREE = {  # the folder after the merge
    **NEW_REMOTE,
    "README.md": STUDENT_README.replace(b"line 5", b"NEW line 5"),
    "mine.txt": b"my own notes\n",
}
STALL_TIMEOUT = 0.15  # seconds without a byte before a connection counts as stalled
FOREVER = 10**6


# --- one course, on either provider ---------------------------------------------------------


@dataclass
class Course:
    provider: str  # "canvas" | "drive"
    url: str
    env: dict[str, str]  # the student's credentials (CANVAS_* or GOOGLE_*)
    config: SyncConfig
    workdir: Path  # the student's home
    name: str  # the folder the link creates
    # (where: "listing", "download" or a regex from `add_file`, kind, times)
    inject: Callable[[str, str, int], None]
    clear_faults: Callable[[], None]
    instructor_update: Callable[[], None]
    add_file: Callable[[str, bytes], str]  # returns a regex for the file's download
    service: FakeCanvas | FakeDrive

    @property
    def target(self) -> Path:
        return self.workdir / self.name

    @property
    def credentials(self) -> EnvCredentialSource:
        return EnvCredentialSource(self.env)

    def origin(self) -> LocalOrigin:
        [path] = self.config.origins_dir.glob("*.git")
        return LocalOrigin(path)

    async def pull(self, **kwargs: Any) -> SyncReport:
        return await pull(
            self.url,
            parent_dir=self.workdir,
            credentials=self.credentials,
            config=kwargs.pop("config", self.config),
            **kwargs,
        )

    def cli_env(self) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CANVAS_", "GOOGLE_", "JUPYTERHUB_", "PRIVATEPULLER_"))
        }
        return {**keep, **self.env, "PRIVATEPULLER_HOME": str(self.config.home)}


CANVAS_PLACES = {"listing": r"^/api/v1/courses/\d+/files\?", "download": r"^/blob/"}
DRIVE_PLACES = {"listing": r"^/drive/v3/files\?", "download": r"alt=media"}
DRIVE_KINDS = {"502": "502_html"}


@contextlib.asynccontextmanager
async def canvas_course(workdir: Path, pp_home: Path) -> AsyncIterator[Course]:
    async with FakeCanvas() as canvas:
        course = canvas.add_course("Data Science 101")
        student = canvas.add_user("Ada Student")
        course.enroll(student)
        for path, content in OLD_REMOTE.items():
            course.files.add_file(path, content)

        def update() -> None:
            course.files.update_file("README.md", NEW_REMOTE["README.md"])
            course.files.update_file("Week 1/data/iris.csv", NEW_REMOTE["Week 1/data/iris.csv"])
            course.files.add_file("Week 2/new.csv", NEW_REMOTE["Week 2/new.csv"])
            course.files.remove("Week 1/intro.ipynb")

        yield Course(
            "canvas",
            f"{canvas.base_url}/courses/{course.id}/files",
            {"CANVAS_BASE_URL": canvas.base_url, "CANVAS_ACCESS_TOKEN": student.token},
            SyncConfig(home=pp_home, backoff_scale=0.001),
            workdir,
            "Data Science 101",
            lambda where, kind, times: canvas.inject_fault(
                CANVAS_PLACES.get(where, where),
                kind,
                times,
            ),
            canvas.clear_faults,
            update,
            lambda path, content: f"^/blob/{course.files.add_file(path, content).uuid}",
            canvas,
        )


@contextlib.asynccontextmanager
async def drive_course(workdir: Path, pp_home: Path) -> AsyncIterator[Course]:
    async with FakeDrive() as drive:
        root = drive.add_folder("Data Science 101", share_with=DEFAULT_SA_EMAIL)
        week1 = drive.add_folder("Week 1", root.id)
        data = drive.add_folder("data", week1.id)
        parents = {"": root.id, "Week 1": week1.id, "Week 1/data": data.id}
        ids = {}
        for path, content in OLD_REMOTE.items():
            folder, _, name = path.rpartition("/")
            ids[path] = drive.add_file(name, parents[folder], content, mime_type="text/plain").id

        def add_file(path: str, content: bytes) -> str:
            folder, _, name = path.rpartition("/")
            if folder not in parents:
                up, _, leaf = folder.rpartition("/")
                parents[folder] = drive.add_folder(leaf, parents[up]).id
            item = drive.add_file(name, parents[folder], content, mime_type="text/plain")
            return f"/files/{item.id}\\?.*alt=media"

        def update() -> None:
            drive.update_file(ids["README.md"], NEW_REMOTE["README.md"])
            drive.update_file(ids["Week 1/data/iris.csv"], NEW_REMOTE["Week 1/data/iris.csv"])
            add_file("Week 2/new.csv", NEW_REMOTE["Week 2/new.csv"])
            drive.delete(ids["Week 1/intro.ipynb"])

        def inject(where: str, kind: str, times: int) -> None:
            drive.inject_fault(
                DRIVE_PLACES.get(where, where),
                DRIVE_KINDS.get(kind, kind),
                times,
            )

        yield Course(
            "drive",
            f"https://drive.google.com/drive/folders/{root.id}",
            {
                "GOOGLE_DRIVE_ACCESS_TOKEN": drive.issue_token(DEFAULT_SA_EMAIL),
                "GOOGLE_DRIVE_API_URL": drive.api_url,
            },
            SyncConfig(home=pp_home, backoff_scale=0.001),
            workdir,
            "Data Science 101",
            inject,
            drive.clear_faults,
            update,
            add_file,
            drive,
        )


@contextlib.asynccontextmanager
async def make_course(
    provider: str, workdir: Path, pp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Course]:
    for name in list(os.environ):
        if name.startswith(("CANVAS_", "GOOGLE_", "JUPYTERHUB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PRIVATEPULLER_HOME", str(pp_home))
    workdir.mkdir(exist_ok=True)
    factory = canvas_course if provider == "canvas" else drive_course
    async with factory(workdir, pp_home) as made:
        yield made


@pytest.fixture(params=["canvas", "drive"])
async def course(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Course]:
    async with make_course(
        request.param, tmp_path / "home", tmp_path / "pp-home", monkeypatch
    ) as c:
        yield c


# --- the invariant ---------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    files: dict[str, bytes]  # the student's folder, .git aside
    head: str | None  # the origin's branch

    def __repr__(self) -> str:
        return f"State(head={self.head}, files={sorted(self.files)})"


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) except git's own."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if (p.is_file() or p.is_symlink()) and ".git" not in p.relative_to(folder).parts
    }


def state(course: Course) -> State:
    head = course.origin().head() if list(course.config.origins_dir.glob("*.git")) else None
    files = tree(course.target) if course.target.exists() else {}
    return State(files, head)


async def pulled_and_edited(course: Course) -> State:
    """The student pulled the course, then edited a line and made a file; the instructor
    has since updated the course. Returns the student's (old) state."""
    await course.pull()
    (course.target / "README.md").write_bytes(STUDENT_README)
    (course.target / "mine.txt").write_bytes(NEW_TREE["mine.txt"])
    course.instructor_update()
    return state(course)


def snapshot_of(course: Course, commit: str) -> dict[str, str]:
    """{path: blob id} of an origin commit."""
    lines = course.origin().git("ls-tree", "-r", commit).splitlines()
    return {line.split("\t", 1)[1]: line.split()[2] for line in lines}


def assert_old_or_new(
    course: Course, old: State, extra: dict[str, bytes] | None = None, *, leftovers: bool = False
) -> tuple[str, str]:
    """The invariant: the folder is exactly the old or the new state, and so is the origin (a
    new folder only with a new origin; the origin moves first). Returns (folder, origin), each
    "old" or "new". `extra`: files the instructor added besides the scenario's."""
    now = state(course)
    new_tree, new_remote = {**NEW_TREE, **(extra or {})}, {**NEW_REMOTE, **(extra or {})}
    if not leftovers:
        assert sorted(p.name for p in course.workdir.iterdir()) == [course.name], "leftovers"
    if now.files == old.files:
        folder = "old"
    else:
        assert now.files == new_tree, f"the folder is neither old nor new: {now} (old: {old})"
        folder = "new"
    if now.head == old.head:
        origin = "old"
    else:
        assert now.head is not None
        expected = {path: blob_id(content) for path, content in new_remote.items()}
        assert snapshot_of(course, now.head) == expected, "the origin is neither old nor new"
        origin = "new"
    assert (folder, origin) != ("new", "old")
    return folder, origin


async def assert_next_sync_completes(
    course: Course, old: State, extra: dict[str, bytes] | None = None
) -> None:
    course.clear_faults()
    await course.pull()
    assert assert_old_or_new(course, old, extra) == ("new", "new")
    origin = course.origin()
    assert list(origin.staging_dir.iterdir()) == [], "temporary files left in the origin"
    assert not list((course.target / ".git").glob("*.lock"))
    assert not (course.target / ".git" / UNFINISHED).exists()
    # The next click after that: nothing to download, nothing changes.
    report = await course.pull()
    assert report.downloaded_files == 0 and report.commit is None
    assert tree(course.target) == {**NEW_TREE, **(extra or {})}


# --- the network -----------------------------------------------------------------------------

KINDS = ["reset", "502", "500", "stall", "truncate"]


@pytest.mark.parametrize("where", ["listing", "download"])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_fault_that_passes_is_retried_and_the_sync_completes(
    course: Course, where: str, kind: str
) -> None:
    old = await pulled_and_edited(course)
    course.inject(where, kind, 2)
    await course.pull(config=dataclasses.replace(course.config, read_timeout=STALL_TIMEOUT))
    assert assert_old_or_new(course, old) == ("new", "new")
    assert list(course.origin().staging_dir.iterdir()) == []


@pytest.mark.parametrize("where", ["listing", "download"])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_fault_that_lasts_leaves_everything_as_it_was_and_says_try_again(
    course: Course, where: str, kind: str
) -> None:
    old = await pulled_and_edited(course)
    course.inject(where, kind, FOREVER)
    with pytest.raises(PullError) as error:
        await course.pull(config=dataclasses.replace(course.config, read_timeout=STALL_TIMEOUT))
    message = error.value.message
    assert "try again" in message.lower(), message
    if kind == "stall":
        assert "stopped answering" in message, message
    assert assert_old_or_new(course, old) == ("old", "old")
    assert list(course.origin().staging_dir.iterdir()) == []
    await assert_next_sync_completes(course, old)


# --- a stand-in for git: fill the disk, or pause, just before a given git subcommand --------

GIT_STAND_IN = """#!/bin/sh
# The first time the git subcommand $PP_GIT_AT runs: fill the disk, leaving $PP_GIT_LEAVE
# bytes ($PP_GIT_DO=fill), or create $PP_GIT_FILE and wait to be killed ($PP_GIT_DO=pause).
# Then run the real git.
for arg in "$@"; do
    if [ "$arg" = "$PP_GIT_AT" ] && [ ! -e "$0.done" ]; then
        : > "$0.done"
        case "$PP_GIT_DO" in
            fill)
                free=$(df --output=avail -B1 "$(dirname "$PP_GIT_FILE")" | tail -n 1)
                blocks=$(( (free - ${PP_GIT_LEAVE:-0}) / 4096 ))
                dd if=/dev/zero of="$PP_GIT_FILE" bs=4096 count="$blocks" 2>/dev/null ;;
            pause) : > "$PP_GIT_FILE"; sleep 120 ;;
        esac
        break
    fi
done
exec "$PP_REAL_GIT" "$@"
"""


def git_stand_in(folder: Path, at: str, do: str, file: Path, leave: int = 0) -> dict[str, str]:
    """The environment that puts the stand-in first on PATH."""
    real = shutil.which("git")
    assert real is not None
    folder.mkdir(exist_ok=True)
    script = folder / "git"
    script.write_text(GIT_STAND_IN)
    script.chmod(0o755)
    return {
        "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}",
        "PP_REAL_GIT": real,
        "PP_GIT_AT": at,
        "PP_GIT_DO": do,
        "PP_GIT_FILE": str(file),
        "PP_GIT_LEAVE": str(leave),
    }


# --- the disk --------------------------------------------------------------------------------

DISK_SIZE = 8 << 20
BIG = os.urandom(1 << 20)  # incompressible: git stores it at full size


@dataclass
class Disk:
    mount: Path
    filler: Path

    @property
    def free(self) -> int:
        return shutil.disk_usage(self.mount).free

    def fill(self, leave: int = 0) -> None:
        """Fill the disk with a file of the student's, leaving about `leave` bytes."""
        with open(self.filler, "ab") as out:
            while self.free > leave + 65536:
                out.write(b"\0" * min(1 << 20, self.free - leave - 65536))
                out.flush()

    def empty(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """A small tmpfs (we run as root here and in CI); a clear skip elsewhere, never in CI."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        message = f"cannot mount a small tmpfs for disk-full tests: {result.stderr.strip()}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield Disk(mount, mount / "home" / "my-big-dataset.bin")
    finally:
        scan_tree_now(mount)  # the leak scan runs after teardown, when the tmpfs is gone
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture(params=["canvas", "drive"])
async def course_on_disk(
    request: pytest.FixtureRequest, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Course]:
    """The student's home and PRIVATEPULLER_HOME on the small disk."""
    async with make_course(request.param, disk.mount / "home", disk.mount / "pp", monkeypatch) as c:
        yield c


async def test_disk_full_during_the_download(course_on_disk: Course, disk: Disk) -> None:
    course = course_on_disk
    old = await pulled_and_edited(course)
    course.add_file("big.bin", BIG)
    disk.fill(leave=len(BIG) // 2)
    with pytest.raises(DiskFull) as error:
        await course.pull()
    assert "disk is full" in error.value.message and "nothing was changed" in error.value.message
    assert_untouched(course, old, disk)
    disk.empty()
    await assert_next_sync_completes(course, old, {"big.bin": BIG})


def assert_untouched(course: Course, old: State, disk: Disk) -> None:
    """Folder and origin as they were; nothing else in the home but the student's big file."""
    assert assert_old_or_new(course, old, {"big.bin": BIG}, leftovers=True) == ("old", "old")
    assert sorted(p.name for p in course.workdir.iterdir()) == [course.name, disk.filler.name]
    assert list(course.origin().staging_dir.iterdir()) == []


@pytest.mark.parametrize(
    "step", ["hash-object", "update-index", "write-tree", "commit-tree", "update-ref"]
)
async def test_disk_full_in_the_origins_git_step(
    course_on_disk: Course, disk: Disk, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    course = course_on_disk
    old = await pulled_and_edited(course)
    course.add_file("big.bin", BIG)
    for name, value in git_stand_in(disk.mount.parent / "bin", step, "fill", disk.filler).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DiskFull) as error:
        await course.pull()
    assert "disk is full" in error.value.message
    assert_untouched(course, old, disk)
    disk.empty()
    await assert_next_sync_completes(course, old, {"big.bin": BIG})


@pytest.mark.parametrize("step", ["fetch", "merge", "merge, halfway"])
async def test_disk_full_in_the_merge_into_the_folder(
    course_on_disk: Course, disk: Disk, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    course = course_on_disk
    old = await pulled_and_edited(course)
    course.add_file("big.bin", BIG)
    # "halfway": room for git's own files and the small ones, not for all of big.bin.
    leave = len(BIG) // 3 if step.endswith("halfway") else 0
    stand_in = git_stand_in(
        disk.mount.parent / "bin", step.split(",")[0], "fill", disk.filler, leave
    )
    for name, value in stand_in.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DiskFull) as error:
        await course.pull()
    assert "disk is full" in error.value.message
    assert assert_old_or_new(course, old, {"big.bin": BIG}, leftovers=True) == ("old", "new")
    disk.empty()
    await assert_next_sync_completes(course, old, {"big.bin": BIG})


async def test_a_home_too_full_for_the_new_files_is_refused_before_the_folder_is_touched(
    disk: Disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The origin lives elsewhere (PRIVATEPULLER_HOME): downloading works, but the student's
    home has room for git's objects or for the new files, not for both."""
    async with make_course("canvas", disk.mount / "home", tmp_path / "pp", monkeypatch) as course:
        old = await pulled_and_edited(course)
        course.add_file("big.bin", BIG)
        disk.fill(leave=len(BIG) * 3 // 2)
        with pytest.raises(DiskFull) as error:
            await course.pull()
        assert "too full" in error.value.message and "nothing in your folder" in error.value.message
        assert assert_old_or_new(course, old, {"big.bin": BIG}, leftovers=True) == ("old", "new")
        disk.empty()
        await assert_next_sync_completes(course, old, {"big.bin": BIG})


# --- the process, killed -----------------------------------------------------------------------

PAUSE_FILTER = """#!/bin/sh
# A git smudge filter that stops the checkout halfway: says so, then waits to be killed.
: > "$PP_GIT_FILE"
sleep 120
exec cat
"""


class Pull:
    """`privatepuller pull` as a student runs it, in its own process group (killed whole)."""

    def __init__(self, course: Course, env: dict[str, str] | None = None) -> None:
        self.course = course
        self.env = {**course.cli_env(), **(env or {})}
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Pull:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "privatepuller.cli",
            "pull",
            self.course.url,
            str(self.course.target),
            env=self.env,
            cwd=self.course.workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    async def finish(self, timeout: float = 60) -> tuple[int, str]:
        assert self.process is not None
        try:
            out, _ = await asyncio.wait_for(self.process.communicate(), timeout)
        except TimeoutError:
            os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
            pytest.fail(f"privatepuller pull did not finish within {timeout} s")
        observe("the output of privatepuller pull", out)
        return self.process.returncode or 0, out.decode()

    async def kill_when(self, ready: Callable[[], bool], timeout: float = 30) -> None:
        """SIGKILL the whole process group (Python and its git) once `ready()` is true."""
        assert self.process is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while not ready():
            if self.process.returncode is not None or asyncio.get_running_loop().time() > deadline:
                code, out = await self.finish()
                pytest.fail(f"privatepuller pull did not get there (exit {code}):\n{out}")
            await asyncio.sleep(0.02)
        os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()


async def pull_again(course: Course) -> None:
    code, out = await (await Pull(course).start()).finish()
    assert code == 0, out
    assert "Traceback" not in out


def pause_env(course: Course, at: str, file: Path) -> dict[str, str]:
    return git_stand_in(course.workdir.parent / "bin", at, "pause", file)


def filter_env(course: Course, name: str, file: Path) -> dict[str, str]:
    """Git's checkout stops at the file called `name` (a smudge filter that waits)."""
    folder = course.workdir.parent / "bin"
    folder.mkdir(exist_ok=True)
    script = folder / "pause-filter"
    script.write_text(PAUSE_FILTER)
    script.chmod(0o755)
    attributes = folder / "attributes"
    attributes.write_text(f"{name} filter=pause\n")
    return {
        "PP_GIT_FILE": str(file),
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "filter.pause.smudge",
        "GIT_CONFIG_VALUE_0": str(script),
        "GIT_CONFIG_KEY_1": "core.attributesFile",
        "GIT_CONFIG_VALUE_1": str(attributes),
    }


def big_part_in_staging(course: Course) -> bool:
    """big.bin's download is under way: its temporary file in the origin's staging has bytes
    (more than any other file of the course has)."""
    for part in course.config.origins_dir.rglob("*.part"):
        with contextlib.suppress(FileNotFoundError):
            if part.stat().st_size > len(BIG) // 4:
                return True
    return False


async def test_killed_during_a_download(course: Course) -> None:
    old = await pulled_and_edited(course)
    big = course.add_file("big.bin", BIG)
    course.inject(big, "stall_body", 1)  # half of it arrives, then nothing
    pull = await Pull(course).start()
    await pull.kill_when(lambda: big_part_in_staging(course))
    assert assert_old_or_new(course, old, {"big.bin": BIG}) == ("old", "old")
    await pull_again(course)
    await assert_next_sync_completes(course, old, {"big.bin": BIG})


@pytest.mark.parametrize("step", ["hash-object", "commit-tree", "update-ref"])
async def test_killed_in_the_origins_git_step(course: Course, step: str) -> None:
    old = await pulled_and_edited(course)
    signal_file = course.workdir.parent / "paused"
    pull = await Pull(course, pause_env(course, step, signal_file)).start()
    await pull.kill_when(signal_file.exists)
    assert assert_old_or_new(course, old) == ("old", "old")
    # git itself may die holding its lock on the branch: the next sync must not be stuck.
    (course.origin().path / "refs/heads/main.lock").write_text("0" * 40 + "\n")
    await pull_again(course)
    await assert_next_sync_completes(course, old)


@pytest.mark.parametrize("step", ["fetch", "merge"])
async def test_killed_before_a_step_of_the_merge_into_the_folder(course: Course, step: str) -> None:
    old = await pulled_and_edited(course)
    signal_file = course.workdir.parent / "paused"
    pull = await Pull(course, pause_env(course, step, signal_file)).start()
    await pull.kill_when(signal_file.exists)
    assert assert_old_or_new(course, old) == ("old", "new")
    await pull_again(course)
    await assert_next_sync_completes(course, old)


async def test_killed_halfway_through_the_merges_checkout(course: Course) -> None:
    """git writes the folder's files one by one: killed in the middle, the folder is part old,
    part new, with git's index.lock left behind. No file may be lost or stay cut short, and
    the next sync must finish the job."""
    old = await pulled_and_edited(course)
    signal_file = course.workdir.parent / "paused"
    pull = await Pull(course, filter_env(course, "new.csv", signal_file)).start()
    await pull.kill_when(signal_file.exists)
    now = state(course)
    assert now.head != old.head  # the origin has the new snapshot
    assert now.files not in (old.files, NEW_TREE)  # the folder is in between ...
    for path, content in now.files.items():  # ... each file its old or its new self ...
        assert content in (old.files.get(path), NEW_TREE.get(path)), path
    assert (course.target / ".git/index.lock").exists()
    assert (course.target / ".git" / UNFINISHED).exists()
    # ... except one git was writing when it was killed: cut short.
    iris = course.target / "Week 1/data/iris.csv"
    iris.write_bytes(NEW_TREE["Week 1/data/iris.csv"][:5])
    await pull_again(course)
    await assert_next_sync_completes(course, old)


async def test_killed_halfway_through_the_first_clone(course: Course) -> None:
    signal_file = course.workdir.parent / "paused"
    pull = await Pull(course, filter_env(course, "intro.ipynb", signal_file)).start()
    await pull.kill_when(signal_file.exists)
    assert not course.target.exists()  # no half a folder: the half clone has another name
    [half] = course.workdir.iterdir()
    assert half.name.startswith(".privatepuller-clone-")  # hidden, removed by the next sync
    await pull_again(course)
    assert tree(course.target) == OLD_REMOTE
    assert sorted(p.name for p in course.workdir.iterdir()) == [course.name]


async def test_a_lock_left_by_some_other_git_is_explained_not_broken(course: Course) -> None:
    """Not our sync's: say so (nbgitpuller gives such a lock ten minutes before removing it)."""
    old = await pulled_and_edited(course)
    lock = course.target / ".git/index.lock"
    lock.write_bytes(b"")
    with pytest.raises(SyncBusy) as error:
        await course.pull()
    assert "Another program is using git in your folder" in error.value.message
    assert assert_old_or_new(course, old) == ("old", "new") and lock.exists()
    lock.unlink()
    await assert_next_sync_completes(course, old)
