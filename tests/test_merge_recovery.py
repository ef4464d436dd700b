"""No edit is lost when an update of the student's folder stops halfway (issue #11, finding 4).

nbgitpuller updates a folder in steps: `git fetch`; rename the local files in the way of new
ones (`new.csv` -> `new__<timestamp>.csv`); check out the files the student deleted; `git reset
--mixed`; "Automatic commit by nbgitpuller"; `git merge -Xours`. The update is stopped at each
step: the process killed (SIGKILL, its git too), another program's `index.lock` (fresh, held
open; stale, abandoned), a full disk. Each time:

- all the student's uncommitted edits are there afterwards, exactly: a changed file, a CSV cut
  to its first rows (the reported bug: the old recovery gave the rows back, taking the file
  for one git had cut short), a deleted file, a new file, and an untracked file at a path the
  new version adds (under its own name, not nbgitpuller's renamed one), and HEAD, git's locks
  and our own bookkeeping are as they were;
- the next click completes the update, ending exactly as an uninterrupted nbgitpuller update
  of the same folder does (run here on a copy made before the click): the student's edits win
  on conflict, their new files are kept, deleted files come back.

"Afterwards" for a killed sync is after the recovery the next sync starts with; the tests run
it on its own (`recover`) to look at the folder before the next update.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nbgitpuller.pull import GitPuller

from privatepuller.errors import DiskFull, SyncBusy
from privatepuller.sync.config import SyncConfig
from privatepuller.sync.merge import UNFINISHED, fetched_commit
from privatepuller.sync.recovery import git_working_in, recover
from privatepuller.testing.canvas.fake import FakeCanvas
from test_adversarial_faults import (
    BIG,
    Course,
    Disk,
    Pull,
    disk,  # noqa: F401 (a fixture)
    filter_env,
    git_stand_in,
    pause_env,
    pull_again,
    tree,
)

README = b"".join(b"line %d\n" % i for i in range(1, 9))
IRIS = b"a,b\n1,2\n3,4\n5,6\n7,8\n"
OLD_REMOTE = {
    "README.md": README,
    "data/iris.csv": IRIS,
    "notes.md": b"lecture notes\n",
    "old.txt": b"removed upstream\n",
    "plot.py": b"import matplotlib\nplot()\n",
    "zeta.txt": b"zeta 1\n",
}
NEW_REMOTE = {  # changed: README's last line, the CSV's header, zeta.txt; one removed, one added
    "README.md": README.replace(b"line 8", b"NEW line 8"),
    "data/iris.csv": IRIS.replace(b"a,b", b"A,B"),
    "notes.md": b"lecture notes\n",
    "Week 2/new.csv": b"x,y\n" + b"10,20\n" * 200,
    "plot.py": b"import matplotlib\nplot()\n",
    "zeta.txt": b"zeta 2\n" * 100,
}
STUDENT_README = README.replace(b"line 1\n", b"student line 1\n")
STUDENT_IRIS = IRIS[: IRIS.index(b"5,6")]  # the last rows deleted: a prefix of HEAD's version
STUDENT_NEW_CSV = b"my own new.csv\n"  # untracked, where the new version adds a file
TIMESTAMP = re.compile(r"__\d{14}")


# --- the course and the student --------------------------------------------------------------


@contextlib.asynccontextmanager
async def recovery_course(workdir: Path, pp_home: Path) -> AsyncIterator[Course]:
    async with FakeCanvas() as canvas:
        course = canvas.add_course("Data Science 101")
        student = canvas.add_user("Ada Student")
        course.enroll(student)
        for path, content in OLD_REMOTE.items():
            course.files.add_file(path, content)

        def update() -> None:
            for path in ("README.md", "data/iris.csv", "zeta.txt"):
                course.files.update_file(path, NEW_REMOTE[path])
            course.files.add_file("Week 2/new.csv", NEW_REMOTE["Week 2/new.csv"])
            course.files.remove("old.txt")

        workdir.mkdir(exist_ok=True)
        yield Course(
            "canvas",
            f"{canvas.base_url}/courses/{course.id}/files",
            {"CANVAS_BASE_URL": canvas.base_url, "CANVAS_ACCESS_TOKEN": student.token},
            SyncConfig(home=pp_home, backoff_scale=0.001),
            workdir,
            "Data Science 101",
            lambda where, kind, times: canvas.inject_fault(where, kind, times),
            canvas.clear_faults,
            update,
            lambda path, content: f"^/blob/{course.files.add_file(path, content).uuid}",
            canvas,
        )


@contextlib.asynccontextmanager
async def student_course(
    workdir: Path, pp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Course]:
    for name in list(os.environ):
        if name.startswith(("CANVAS_", "GOOGLE_", "JUPYTERHUB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PRIVATEPULLER_HOME", str(pp_home))
    async with recovery_course(workdir, pp_home) as course:
        yield course


@pytest.fixture
async def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Course]:
    async with student_course(tmp_path / "home", tmp_path / "pp-home", monkeypatch) as made:
        yield made


class Student:
    """The student's folder just before the click that gets interrupted."""

    def __init__(self, course: Course, copy: Path) -> None:
        self.course = course
        self.target = course.target
        self.files = tree(self.target)  # their edits, exactly
        self.head = git(self.target, "rev-parse", "HEAD")
        self.fetched = git(self.target, "rev-parse", "refs/remotes/origin/main")
        self.copy = copy  # for the uninterrupted update to compare with
        shutil.copytree(self.target, copy, symlinks=True)

    def assert_edits_all_there(self) -> None:
        """The folder is exactly as the student left it, and so are HEAD and git's state."""
        now = tree(self.target)
        assert now.get("README.md") == STUDENT_README  # a change
        assert now.get("data/iris.csv") == STUDENT_IRIS  # a CSV cut short by the student
        assert "notes.md" not in now  # a deletion
        assert now.get("mine.txt") == b"my own notes\n"  # a new file
        assert now.get("Week 2/new.csv") == STUDENT_NEW_CSV  # under its own name
        assert now == self.files, "the folder is not as the student left it"
        assert git(self.target, "rev-parse", "HEAD") == self.head
        assert fetched_commit(self.target) == self.fetched  # the room check counts again
        status = git(self.target, "status", "--porcelain", "--untracked-files=no", strip=False)
        assert status == " M README.md\n M data/iris.csv\n D notes.md\n"  # nothing staged
        self.assert_no_bookkeeping()

    def assert_no_bookkeeping(self) -> None:
        git_dir = self.target / ".git"
        assert not (git_dir / UNFINISHED).exists()
        assert not list(git_dir.glob("*.lock")) and not list((git_dir / "refs").rglob("*.lock"))
        assert not (git_dir / "MERGE_HEAD").exists()
        assert git(self.target, "for-each-ref", "refs/privatepuller/") == ""
        assert not list(git_dir.glob("privatepuller-*"))
        assert len(git(self.target, "worktree", "list").splitlines()) == 1
        assert not [p for p in self.target.parent.iterdir() if p.name != self.target.name]

    def uninterrupted(self) -> dict[str, bytes]:
        """The folder after nbgitpuller's own update of the copy, uninterrupted."""
        origin = git(self.copy, "config", "remote.origin.url")
        for _ in GitPuller(origin, str(self.copy), branch="main").pull():
            pass
        return normalised(tree(self.copy))

    def assert_update_completed(self) -> None:
        expected = self.uninterrupted()
        assert normalised(tree(self.target)) == expected
        # What that means, spelt out: the student's edits won, their file was renamed aside.
        assert expected["README.md"] == STUDENT_README.replace(b"line 8", b"NEW line 8")
        assert expected["data/iris.csv"] == STUDENT_IRIS.replace(b"a,b", b"A,B")
        assert expected["notes.md"] == b"lecture notes\n"  # deleted files come back
        assert expected["Week 2/new.csv"] == NEW_REMOTE["Week 2/new.csv"]
        assert expected["Week 2/new__TS.csv"] == STUDENT_NEW_CSV
        assert expected["mine.txt"] == b"my own notes\n" and "old.txt" not in expected
        self.assert_no_bookkeeping()


def normalised(files: dict[str, bytes]) -> dict[str, bytes]:
    """nbgitpuller's renamed files with their timestamp replaced by `__TS`."""
    return {TIMESTAMP.sub("__TS", path): content for path, content in files.items()}


async def edited(course: Course, tmp_path: Path) -> Student:
    """The student pulled the course and edited it; the instructor has updated it since."""
    await course.pull()
    target = course.target
    (target / "README.md").write_bytes(STUDENT_README)
    (target / "data/iris.csv").write_bytes(STUDENT_IRIS)
    (target / "notes.md").unlink()
    (target / "mine.txt").write_bytes(b"my own notes\n")
    (target / "Week 2").mkdir()
    (target / "Week 2/new.csv").write_bytes(STUDENT_NEW_CSV)
    course.instructor_update()
    return Student(course, tmp_path / "uninterrupted" / course.name)


def git(folder: Path, *args: str, strip: bool = True) -> str:
    out = subprocess.run(
        ["git", *args], cwd=folder, capture_output=True, text=True, check=True
    ).stdout
    return out.strip() if strip else out


# --- another program's index.lock --------------------------------------------------------------

LOCK_STAND_IN = """#!/bin/sh
# The first time git's subcommand $PP_GIT_AT runs (in the folder), just before it or just
# after it ($PP_GIT_WHEN): another program takes the folder's index.lock and keeps it open
# (its pid in $PP_GIT_FILE).
take_the_lock() {
    : > .git/index.lock
    sh -c 'exec 3<"$1"; exec sleep 60' sh .git/index.lock </dev/null >/dev/null 2>&1 &
    echo $! > "$PP_GIT_FILE"
}
for arg in "$@"; do
    if [ "$arg" = "$PP_GIT_AT" ] && [ ! -e "$0.done" ]; then
        : > "$0.done"
        if [ "$PP_GIT_WHEN" = after ]; then
            "$PP_REAL_GIT" "$@"
            code=$?
            take_the_lock
            exit $code
        fi
        take_the_lock
        break
    fi
done
exec "$PP_REAL_GIT" "$@"
"""


class OtherProgram:
    """A process (not git) that holds `.git/index.lock` open, as an editor's git tool would."""

    def __init__(self, pid_file: Path) -> None:
        self.pid_file = pid_file

    @property
    def pid(self) -> int:
        return int(self.pid_file.read_text())

    def holds(self, lock: Path) -> bool:
        fds = Path(f"/proc/{self.pid}/fd")
        return any(os.readlink(fd) == str(lock) for fd in fds.iterdir())

    def finish(self, lock: Path) -> None:
        """Done with git: the lock goes, and the program with it."""
        lock.unlink()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


@contextlib.contextmanager
def other_program_locks_the_index_at(
    at: str, folder: Path, monkeypatch: pytest.MonkeyPatch, when: str = "before"
) -> Iterator[OtherProgram]:
    """Every git of this test's process runs through LOCK_STAND_IN."""
    real = shutil.which("git")
    assert real is not None
    folder.mkdir(exist_ok=True)
    script = folder / "git"
    script.write_text(LOCK_STAND_IN)
    script.chmod(0o755)
    pid_file = folder / "holder.pid"
    with monkeypatch.context() as patch:
        patch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        patch.setenv("PP_REAL_GIT", real)
        patch.setenv("PP_GIT_AT", at)
        patch.setenv("PP_GIT_WHEN", when)
        patch.setenv("PP_GIT_FILE", str(pid_file))
        program = OtherProgram(pid_file)
        try:
            yield program
        finally:
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(program.pid, signal.SIGKILL)


def hold_open(lock: Path) -> subprocess.Popen[bytes]:
    """Another program (not git) that keeps `lock` open until killed."""
    lock.touch()
    return subprocess.Popen(["sh", "-c", 'exec 3<"$1"; exec sleep 60', "sh", str(lock)])


# --- the reported bug ----------------------------------------------------------------------


async def test_a_csv_the_student_cut_short_keeps_its_rows_deleted_when_the_index_is_busy(
    course: Course, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 4 exactly: nbgitpuller stops with "Recent .git/index.lock found" after its git
    fetch, because another program holds the lock; the student had deleted the last rows of a
    CSV. On the next click the rows came back (the old recovery restored every file that was
    the beginning of HEAD's version), and the edit was gone."""
    await course.pull()
    iris = course.target / "data/iris.csv"
    iris.write_bytes(STUDENT_IRIS)
    course.instructor_update()
    lock = course.target / ".git/index.lock"
    with other_program_locks_the_index_at("diff", tmp_path / "bin", monkeypatch) as other:
        with pytest.raises(SyncBusy) as error:
            await course.pull()
        assert "Another program is using git in your folder" in error.value.message
        assert other.holds(lock)  # never taken from the program that holds it
        assert iris.read_bytes() == STUDENT_IRIS
        other.finish(lock)
    await course.pull()  # the next click
    # The instructor's new header, and still without the rows the student deleted.
    assert iris.read_bytes() == b"A,B\n1,2\n3,4\n", "the rows the student deleted came back"
    assert (course.target / "Week 2/new.csv").read_bytes() == NEW_REMOTE["Week 2/new.csv"]


# --- another program's index.lock, at each point -------------------------------------------


@pytest.mark.parametrize(
    ("at", "when"),
    [
        # nbgitpuller's `ensure_lock` refuses: after renaming the student's new.csv aside ...
        ("diff", "before"),
        # ... after checking out the file the student deleted and `git reset --mixed` ...
        ("diff-files", "before"),
        # ... after its automatic commit (HEAD has moved: it goes back once the lock is free)
        ("commit", "after"),
        # git itself refuses, the lock having come between nbgitpuller's check and git
        ("checkout", "before"),
        ("reset", "before"),
        ("commit", "before"),
        ("merge", "before"),
    ],
)
async def test_another_programs_index_lock_during_the_update_loses_no_edit(
    course: Course,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    at: str,
    when: str,
) -> None:
    """Another program takes the index lock at each step after the fetch. The folder is put
    back at once, without touching the other program's lock; once it is done, the next click
    completes the update."""
    student = await edited(course, tmp_path)
    lock = course.target / ".git/index.lock"
    with other_program_locks_the_index_at(at, tmp_path / "bin", monkeypatch, when) as other:
        with pytest.raises(SyncBusy) as error:
            await course.pull()
        assert "Another program is using git in your folder" in error.value.message
        assert other.holds(lock)  # never taken from the program that holds it
        assert tree(course.target) == student.files  # every edit there, at once
        other.finish(lock)
    recover(course.target, earlier=True)  # what the next click starts with (HEAD, if moved)
    student.assert_edits_all_there()
    await course.pull()
    student.assert_update_completed()


async def test_a_fresh_index_lock_before_the_click_changes_nothing(
    course: Course, tmp_path: Path
) -> None:
    """nbgitpuller would fetch and rename before noticing; the sync stops before the folder
    is touched at all (not even a fetch), and leaves the lock alone."""
    student = await edited(course, tmp_path)
    lock = course.target / ".git/index.lock"
    holder = hold_open(lock)
    try:
        with pytest.raises(SyncBusy) as error:
            await course.pull()
        assert "Another program is using git in your folder" in error.value.message
        assert lock.exists() and holder.poll() is None
    finally:
        holder.kill()
        holder.wait()
    lock.unlink()
    student.assert_edits_all_there()
    await course.pull()
    student.assert_update_completed()


async def test_a_stale_index_lock_is_removed_as_nbgitpuller_does(
    course: Course, tmp_path: Path
) -> None:
    """Older than ten minutes and held by no one: abandoned (nbgitpuller's rule)."""
    student = await edited(course, tmp_path)
    lock = course.target / ".git/index.lock"
    lock.touch()
    os.utime(lock, (time.time() - 700, time.time() - 700))
    await course.pull()
    student.assert_update_completed()


async def test_an_old_index_lock_that_a_live_program_holds_open_is_not_removed(
    course: Course, tmp_path: Path
) -> None:
    """nbgitpuller would take it after ten minutes; a program still holding it open is alive
    (a `git commit` waiting for its editor, say), so the sync waits instead."""
    student = await edited(course, tmp_path)
    lock = course.target / ".git/index.lock"
    holder = hold_open(lock)
    os.utime(lock, (time.time() - 700, time.time() - 700))
    try:
        with pytest.raises(SyncBusy):
            await course.pull()
        assert lock.exists()
    finally:
        holder.kill()
        holder.wait()
    lock.unlink()
    student.assert_edits_all_there()
    await course.pull()
    student.assert_update_completed()


# --- the process, killed -------------------------------------------------------------------


async def killed_at(course: Course, env: dict[str, str], signal_file: Path) -> None:
    """`privatepuller pull` killed (with its git) once `signal_file` appears."""
    pull = await Pull(course, env).start()
    await pull.kill_when(signal_file.exists)
    for _ in range(100):  # the killed git is gone a moment later
        if not git_working_in(course.target):
            return
        await asyncio.sleep(0.05)
    pytest.fail("the killed git is still at work in the folder")


@pytest.mark.parametrize("step", ["fetch", "checkout", "reset", "commit", "merge"])
async def test_killed_at_each_step_of_the_update_loses_no_edit(
    course: Course, tmp_path: Path, step: str
) -> None:
    """Killed just before git's `step` runs: before the fetch; after it, with new.csv renamed
    aside (`checkout`); with notes.md checked out again (`reset`, `commit`); after
    nbgitpuller's automatic commit (`merge`)."""
    student = await edited(course, tmp_path)
    signal_file = tmp_path / "paused"
    await killed_at(course, pause_env(course, step, signal_file), signal_file)
    target = course.target
    # Where it stopped, as claimed.
    fetched = git(target, "rev-parse", "refs/remotes/origin/main") != student.fetched
    assert fetched == (step != "fetch")
    renamed = [p for p in tree(target) if TIMESTAMP.search(p)]
    assert renamed == ([] if step == "fetch" else ["Week 2/" + renamed[0].split("/")[1]])
    assert (target / "notes.md").exists() == (step in ("reset", "commit", "merge"))
    head = git(target, "log", "-1", "--format=%s")
    assert (head == "Automatic commit by nbgitpuller") == (step == "merge")
    # What was saved: every tracked file as the student had it, and the untracked file at a
    # path the new version adds; not their other untracked files (mine.txt).
    saved = git(target, "ls-tree", "-r", "--name-only", "refs/privatepuller/before-update")
    assert saved.splitlines() == [
        "README.md",
        "Week 2/new.csv",
        "data/iris.csv",
        "old.txt",
        "plot.py",
        "zeta.txt",
    ]
    assert git(target, "show", "refs/privatepuller/before-update:data/iris.csv") + "\n" == (
        STUDENT_IRIS.decode()
    )
    assert (target / ".git" / UNFINISHED).exists()
    recover(target, earlier=True)  # what the next click starts with
    student.assert_edits_all_there()
    await course.pull()
    student.assert_update_completed()


async def test_killed_halfway_through_the_merges_checkout_loses_no_edit(
    course: Course, tmp_path: Path
) -> None:
    """git had written README.md (merged: the student's line 1 and the instructor's line 8)
    and new.csv (the instructor's), cut both short as a kill mid-write would, and left its
    index.lock. A merged file is neither HEAD's nor the origin's: what the merge writes there is
    found by replaying the merge."""
    student = await edited(course, tmp_path)
    signal_file = tmp_path / "paused"
    await killed_at(course, filter_env(course, "zeta.txt", signal_file), signal_file)
    target = course.target
    merged = (target / "README.md").read_bytes()
    assert merged == STUDENT_README.replace(b"line 8", b"NEW line 8")
    assert (target / "Week 2/new.csv").read_bytes() == NEW_REMOTE["Week 2/new.csv"]
    assert (target / ".git/index.lock").exists()  # git's own, killed with it
    (target / "README.md").write_bytes(merged[: len(merged) // 2])
    (target / "Week 2/new.csv").write_bytes(NEW_REMOTE["Week 2/new.csv"][:100])
    recover(target, earlier=True)
    student.assert_edits_all_there()
    await course.pull()
    student.assert_update_completed()


async def test_files_the_student_changed_after_the_interruption_are_kept(
    course: Course, tmp_path: Path
) -> None:
    """Killed halfway through the merge, the student goes on working in the half-updated
    folder before clicking again: their newer edits are not taken for git's."""
    student = await edited(course, tmp_path)
    signal_file = tmp_path / "paused"
    await killed_at(course, filter_env(course, "zeta.txt", signal_file), signal_file)
    target = course.target
    later_readme = (target / "README.md").read_bytes() + b"added after the interruption\n"
    (target / "README.md").write_bytes(later_readme)
    (target / "notes.md").write_bytes(b"lecture notes\nand mine\n")  # git had restored it
    (target / "plot.py").write_bytes(b"import matplotlib\n")  # the merge leaves it alone
    recover(target, earlier=True)
    assert (target / "README.md").read_bytes() == later_readme
    assert (target / "notes.md").read_bytes() == b"lecture notes\nand mine\n"
    assert (target / "plot.py").read_bytes() == b"import matplotlib\n"  # cut, but by them
    now = tree(target)
    assert now["data/iris.csv"] == STUDENT_IRIS
    assert now["Week 2/new.csv"] == STUDENT_NEW_CSV  # renamed back
    assert not [p for p in now if TIMESTAMP.search(p)]
    await pull_again(course)
    final = tree(target)
    assert final["README.md"] == later_readme
    assert final["notes.md"] == b"lecture notes\nand mine\n"
    assert final["data/iris.csv"] == STUDENT_IRIS.replace(b"a,b", b"A,B")
    assert final["plot.py"] == b"import matplotlib\n"
    student.assert_no_bookkeeping()


async def test_a_recovery_that_is_itself_killed_is_finished_by_the_next_click(
    course: Course, tmp_path: Path
) -> None:
    """Killed in the merge, then the next click killed while it replays that merge: the click
    after that still puts everything back first, then completes the update."""
    student = await edited(course, tmp_path)
    first = tmp_path / "paused"
    await killed_at(course, filter_env(course, "zeta.txt", first), first)
    second = tmp_path / "paused-again"
    await killed_at(course, pause_env(course, "read-tree", second), second)
    replay = Path((course.target / ".git/privatepuller-replay").read_text())
    assert replay.is_dir()  # its temporary worktree, left behind
    recover(course.target, earlier=True)
    assert not replay.exists()
    student.assert_edits_all_there()  # git's record of that worktree gone too
    await pull_again(course)
    student.assert_update_completed()


async def test_the_next_click_alone_recovers_and_completes(course: Course, tmp_path: Path) -> None:
    """The whole path as a student has it: killed in the merge, click again."""
    student = await edited(course, tmp_path)
    signal_file = tmp_path / "paused"
    await killed_at(course, filter_env(course, "zeta.txt", signal_file), signal_file)
    await pull_again(course)
    student.assert_update_completed()


async def test_a_marker_of_an_older_version_restores_nothing_on_a_guess(
    course: Course, tmp_path: Path
) -> None:
    """An earlier privatepuller left only its pid in the marker: nothing was saved, so no file
    is put back (the old rule would have given the CSV its rows back)."""
    student = await edited(course, tmp_path)
    (course.target / ".git" / UNFINISHED).write_text("12345\n")
    await course.pull()
    student.assert_update_completed()


# --- the disk, full ----------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["merge", "merge, halfway"])
async def test_a_full_disk_during_the_merge_loses_no_edit(
    disk: Disk,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    """The disk fills up just before the merge ("halfway": with room for the small files, not
    for a big new one): the folder is put back at once, and completes once there is room."""
    async with student_course(disk.mount / "home", disk.mount / "pp", monkeypatch) as course:
        student = await edited(course, tmp_path)
        course.add_file("big.bin", BIG)
        leave = len(BIG) // 3 if step.endswith("halfway") else 0
        env = git_stand_in(disk.mount.parent / "bin", "merge", "fill", disk.filler, leave)
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            with pytest.raises(DiskFull) as error:
                await course.pull()
        assert "disk is full" in error.value.message
        assert tree(course.target) == student.files  # at once, on the full disk
        disk.empty()
        student.assert_edits_all_there()
        await course.pull()
        student.assert_update_completed()
        assert (course.target / "big.bin").read_bytes() == BIG


async def test_recovery_waits_for_a_git_still_at_work_in_the_folder(
    course: Course, tmp_path: Path
) -> None:
    student = await edited(course, tmp_path)
    signal_file = tmp_path / "paused"
    await killed_at(course, pause_env(course, "commit", signal_file), signal_file)
    named_git = tmp_path / "fake" / "git"  # a process called git (its comm), at work there
    named_git.parent.mkdir()
    sleep = shutil.which("sleep")
    assert sleep is not None
    named_git.symlink_to(sleep)
    busy = await asyncio.create_subprocess_exec(str(named_git), "30", cwd=course.target)
    try:
        await asyncio.sleep(0.2)
        with pytest.raises(SyncBusy) as error:
            recover(course.target, earlier=True)
        assert "still finishing" in error.value.message
    finally:
        busy.kill()
        await busy.wait()
    recover(course.target, earlier=True)
    student.assert_edits_all_there()
