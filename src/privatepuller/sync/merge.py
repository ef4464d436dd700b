"""nbgitpuller's own GitPuller merges a local origin into the student's folder.

nbgitpuller updates a folder in steps (fetch; rename local files in the way of new ones;
check out the files the student deleted; `git reset --mixed`; commit the student's changes;
`git merge -Xours`), and git writes a folder's files one by one. An update that stops halfway
(the server killed, another program's `index.lock`, git failing on a full disk) would leave the
folder part old, part new, with git's lock files in `.git` that would stop every later sync.
Around nbgitpuller, therefore:

- a first clone is made under a hidden temporary name next to the folder and renamed into
  place when complete: the folder is either absent or whole;
- before nbgitpuller touches an existing folder, the student's state is saved inside their
  repository (every tracked file as it is, and the untracked files at the incoming version's
  paths), and `.git/privatepuller-merging` records it (`sync/recovery.py`). An update that
  fails is undone at once; one that was killed is undone by the next sync (which holds the
  folder's lock), before nbgitpuller runs again. Undoing puts back exactly what git may have
  changed since (the saved files, under their own names) and never a file the student
  changed since; the edits the student had (changes, deletions, new files) are all there, and
  the next sync then ends as an uninterrupted nbgitpuller update would;
- an `index.lock` of another program (held open, or less than ten minutes old) stops the sync
  before anything is changed; git's lock files are removed only when they are the killed
  update's own or abandoned;
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
from ..sizes import size_text
from . import recovery
from .local_origin import BRANCH
from .recovery import git_working_in
from .space import free_bytes, looks_full

__all__ = ["fetched_commit", "git_working_in", "merge_into", "symlinked_folder"]

UNFINISHED = recovery.MARKER  # in the folder's .git while an update runs
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
        # The backup should hold the student's files as they were; if an interrupted update
        # cannot be undone now, it holds them as they are (renamed ones too): nothing is lost.
        with contextlib.suppress(PullError):
            recovery.recover(target, earlier=True)

        def backup_only() -> Iterable[str]:
            GitPuller(origin, str(target), branch=BRANCH, backup=True)
            return ()

        _run(backup_only, target)
    free = free_bytes(target)
    needed = 2 * new_bytes + ROOM_MARGIN
    if new_bytes and free is not None and free < needed:
        raise DiskFull(
            f"Your disk is too full to update “{target.name}”: the new version needs about "
            f"{size_text(needed - free)} more than is free. Delete some files in "
            "your home folder and click the link again; nothing in your folder was changed."
        )
    if not target.exists():
        _clone(origin, target, on_line, parent)
        return
    saved = None
    if (target / ".git").is_dir():
        recovery.recover(target, earlier=True)  # an update that was interrupted before
        if recovery.index_in_use(target):
            raise SyncBusy(recovery.BUSY.format(name=target.name))
        saved = recovery.save(target, paths)

    def watch(line: str) -> None:
        if saved is not None and line.startswith("$ git ") and " merge -Xours " in line:
            recovery.merge_starts(target, saved)  # before nbgitpuller starts it
        on_line(line)

    try:
        _run(
            lambda: GitPuller(origin, str(target), branch=BRANCH, parent=parent).pull(),
            target,
            watch,
        )
    except BaseException:
        if saved is not None:
            # Put the folder back now; if that cannot be done entirely (another program's
            # lock, a full disk), the next sync finishes it.
            with contextlib.suppress(Exception):
                recovery.recover(target, earlier=False)
        raise
    if saved is not None:
        recovery.finished(target)


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
        said = "".join(recent)
        if looks_full(target, said):
            raise DiskFull(
                f"Your disk is full, so your folder {target.name} could not be updated. Delete "
                "some files in your home folder and click the link again; your work is safe."
            ) from error
        if "index.lock': File exists" in said or (target / ".git" / "index.lock").exists():
            # Another program took git's lock between nbgitpuller's check and git.
            raise SyncBusy(recovery.BUSY.format(name=target.name)) from error
        if "merge" in error.cmd:
            raise MergeFailed(
                "Your copy of the folder and the new version could not be merged automatically. "
                "Use “Backup and resync” to keep your work in a backup folder and get a fresh copy."
            ) from error
        command = next((a for a in error.cmd[1:] if not a.startswith("-") and "=" not in a), "")
        raise PullError(
            f"Updating your folder {target.name} failed (git {command}). Nothing was lost; "
            "if the folder is not a copy made by this link, rename it and click the link again."
        ) from error
    except Exception as error:
        if "index.lock" not in str(error):
            raise
        # nbgitpuller's "Recent .git/index.lock found": another git is at work in the folder.
        raise SyncBusy(recovery.BUSY.format(name=target.name)) from error


def fetched_commit(target: Path) -> str | None:
    """The origin commit the folder last fetched, if it is a clone (for an update that did
    not finish: the one before it)."""
    if not (target / ".git").is_dir():
        return None
    saved = recovery.read_marker(target / ".git")
    if saved is not None:
        return saved.theirs
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
