"""nbgitpuller's own GitPuller merges a local origin into the student's folder.

git writes a folder's files one by one, so a merge that is interrupted (the server killed, git
failing on a full disk) leaves the folder part old, part new, with git's lock files in `.git`
that would stop every later sync. Around nbgitpuller, therefore:

- a first clone is made under a hidden temporary name next to the folder and renamed into
  place when complete: the folder is either absent or whole;
- while a merge runs, `.git/privatepuller-merging` exists. Found at the start of a sync (which
  holds the folder's lock), it means the last merge did not finish: git's stale lock files are
  removed and the files that merge had written, whole or in part, are put back as they were
  (nbgitpuller had committed the student's changes just before merging), so nbgitpuller then
  merges from the old state as if nothing had happened;
- there must be room for the new files (twice: git's objects and the checkout) before the
  folder is touched; if the disk fills up during the merge all the same, what git wrote is
  put back at once.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from nbgitpuller.pull import GitPuller

from ..errors import DiskFull, MergeFailed, PullError, SyncBusy
from .local_origin import BRANCH
from .space import free_bytes, looks_full, store_failed

UNFINISHED = "privatepuller-merging"  # in the folder's .git while a merge runs
CLONE_PREFIX = ".privatepuller-clone-"  # a first clone, next to the folder, until complete
ROOM_MARGIN = 1024 * 1024  # git's index, refs and logs besides the files themselves
THEIRS = f"refs/remotes/origin/{BRANCH}"


def merge_into(
    origin: str,
    target: Path,
    *,
    backup: bool = False,
    on_line: Callable[[str], None] = lambda line: None,
    parent: Any = None,
    paths: Iterable[str] = (),
    new_bytes: int = 0,
) -> None:
    """Clone or merge `origin` (a local repository's path) exactly as nbgitpuller does
    (student edits win; deleted files return).

    `paths` are the files of the snapshot being merged. A folder of theirs that is a symbolic
    link in the student's folder stops the merge: nbgitpuller would follow it (it renames a
    "local" file that is in the way of a new one, wherever the link points). `new_bytes`: the
    size of the files the folder does not have yet (`LocalOrigin.bytes_new_since`).
    """
    if not backup and os.path.isdir(target):
        link = symlinked_folder(target, paths)
        if link is not None:
            raise MergeFailed(
                f"“{link}” in your folder {target.name} is a link to another place, and the "
                "new version has files in that folder. Nothing was changed, because files are "
                f"never written through links. Rename or remove “{link}”, or use “Backup and "
                "resync” to keep your work in a backup folder and get a fresh copy."
            )
    if backup and target.exists():  # nbgitpuller renames it aside; then it is a first clone

        def backup_only() -> Iterable[str]:
            GitPuller(origin, str(target), branch=BRANCH, backup=True)
            return ()

        _run(backup_only, target)
    free = free_bytes(target)
    needed = 2 * new_bytes + ROOM_MARGIN
    if new_bytes and free is not None and free < needed:
        raise DiskFull(
            f"Your disk is too full to update “{target.name}”: the new version needs about "
            f"{(needed - free) / 1024 / 1024:.1f} MB more than is free. Delete some files in "
            "your home folder and click the link again; nothing in your folder was changed."
        )
    if not target.exists():
        _clone(origin, target, on_line, parent)
        return
    marker = target / ".git" / UNFINISHED
    if marker.exists():
        undo_unfinished_merge(target)
    if marker.parent.is_dir():
        try:
            marker.write_text(f"{os.getpid()}\n")
        except OSError as error:
            raise store_failed(target, error) or error from None
    try:
        _run(
            lambda: GitPuller(origin, str(target), branch=BRANCH, parent=parent).pull(),
            target,
            on_line,
        )
    except DiskFull:
        # git stopped halfway: put back what it wrote (this frees space), or at least leave
        # the marker for the next sync to do it.
        with contextlib.suppress(Exception):
            undo_unfinished_merge(target)
        raise
    marker.unlink(missing_ok=True)


def _clone(origin: str, target: Path, on_line: Callable[[str], None], parent: Any) -> None:
    """A first clone under a temporary name, renamed into place once complete.

    All of the origin's history (depth 0, whatever NBGITPULLER_DEPTH says): git then clones a
    local path by hard-linking its objects, where a shallow clone would pack every file anew.
    """
    digest = hashlib.sha256(target.name.encode()).hexdigest()[:16]
    temp = target.with_name(CLONE_PREFIX + digest)
    shutil.rmtree(temp, ignore_errors=True)  # left by a clone that was killed

    def shown(line: str) -> None:
        on_line(line.replace(str(temp), str(target)))

    def clone() -> Iterable[str]:
        return GitPuller(origin, str(temp), branch=BRANCH, depth=0, parent=parent).pull()

    try:
        _run(clone, target, shown)
        os.rename(temp, target)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _run(
    steps: Callable[[], Iterable[str]],
    target: Path,
    on_line: Callable[[str], None] = lambda line: None,
) -> None:
    """Run a GitPuller's steps; their failures become errors a student can act on."""
    recent: collections.deque[str] = collections.deque(maxlen=20)  # git's last words
    try:
        for line in steps():
            recent.append(line)
            on_line(line.rstrip("\n"))
    except subprocess.CalledProcessError as error:
        if looks_full(target, "".join(recent)):
            raise DiskFull(
                f"Your disk is full, so your folder {target.name} could not be updated. Delete "
                "some files in your home folder and click the link again; your work is safe."
            ) from error
        if "merge" in error.cmd:
            raise MergeFailed(
                "Your copy of the folder and the new version could not be merged automatically. "
                "Use “Backup and resync” to keep your work in a backup folder and get a fresh copy."
            ) from error
        raise PullError(
            f"Updating your folder {target.name} failed (git {error.cmd[1]}). Nothing was lost; "
            "if the folder is not a copy made by this link, rename it and click the link again."
        ) from error
    except Exception as error:
        if "index.lock" not in str(error):
            raise
        # nbgitpuller's "Recent .git/index.lock found": another git is at work in the folder.
        raise SyncBusy(
            f"Another program is using git in your folder {target.name} right now. Wait a few "
            "minutes, then click the link again."
        ) from error


def undo_unfinished_merge(target: Path) -> None:
    """Put the folder back as it was before a merge that did not finish (see the module's
    docstring). A file the student changed since, differently, is left alone."""
    git_dir = target / ".git"
    if git_working_in(target):
        raise SyncBusy(
            f"An earlier, interrupted update of your folder {target.name} is still finishing. "
            "Wait a minute, then click the link again."
        )
    for lock in [*git_dir.glob("*.lock"), *(git_dir / "refs").rglob("*.lock")]:
        lock.unlink(missing_ok=True)
    try:
        ours, theirs = _tree(target, "HEAD"), _tree(target, THEIRS)
    except subprocess.CalledProcessError:
        ours = theirs = {}  # nothing to compare with; nbgitpuller says what is wrong
    restore: list[str] = []
    for path in sorted(set(ours) | set(theirs)):
        if ours.get(path) == theirs.get(path):
            continue  # a merge does not write a file both sides have alike
        file = target / path
        if file.is_symlink() or (file.exists() and not file.is_file()):
            continue
        current = file.read_bytes() if file.exists() else None
        versions = [_blob(target, b) for b in (ours.get(path), theirs.get(path)) if b]
        written = current is not None and any(v.startswith(current) for v in versions)
        if path in ours and (current is None or (written and _blob_id(current) != ours[path])):
            restore.append(path)
        elif path not in ours and written:
            file.unlink()  # a new file of theirs that the merge had (partly) written
    if restore:
        subprocess.run(
            ["git", "checkout", "HEAD", "--pathspec-from-file=-", "--pathspec-file-nul"],
            cwd=target,
            input="\0".join(restore).encode(),
            capture_output=True,
            check=True,
        )
    (git_dir / UNFINISHED).unlink(missing_ok=True)


def _tree(target: Path, rev: str) -> dict[str, str]:
    """{path: blob id} of a commit of the folder's repository."""
    out = subprocess.run(
        ["git", "ls-tree", "-r", "-z", rev], cwd=target, capture_output=True, check=True
    ).stdout.decode()
    tree: dict[str, str] = {}
    for entry in filter(None, out.split("\0")):
        meta, path = entry.split("\t", 1)
        mode, kind, blob = meta.split()
        if kind == "blob" and mode != "120000":
            tree[path] = blob
    return tree


def _blob(target: Path, blob: str) -> bytes:
    return subprocess.run(
        ["git", "cat-file", "blob", blob], cwd=target, capture_output=True, check=True
    ).stdout


def _blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def git_working_in(folder: Path) -> bool:
    """Is a git process (say, one a killed sync left running) working in `folder`? Linux's
    /proc tells; elsewhere we cannot know and say no."""
    where = os.path.realpath(folder)
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            if (cwd == where or cwd.startswith(where + os.sep)) and (
                (entry / "comm").read_text().startswith("git")
            ):
                return True
        except OSError:
            continue
    return False


def fetched_commit(target: Path) -> str | None:
    """The origin commit the folder last fetched, if it is a clone."""
    if not (target / ".git").is_dir():
        return None
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", THEIRS], cwd=target, capture_output=True
    )
    return result.stdout.decode().strip() or None


def symlinked_folder(target: Path, paths: Iterable[str]) -> str | None:
    """The first folder of `paths` (relative POSIX paths) that is a symbolic link in `target`."""
    checked: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if folder in checked:
                continue
            checked.add(folder)
            if os.path.islink(target / folder):
                return folder
    return None
