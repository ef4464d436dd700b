"""The student's folder is saved before nbgitpuller updates it, and put back exactly as it was
when the update stops halfway (`sync/merge.py` calls these around nbgitpuller's `GitPuller`).

nbgitpuller's update changes the folder in steps (`git fetch`; local files in the way of new
ones renamed `x__<timestamp>.csv`; files the student deleted checked out again; `git reset
--mixed`; "Automatic commit by nbgitpuller"; `git merge -Xours`), and git writes files one by
one. Any of these can be interrupted: the process killed, another program's `index.lock`, a
full disk. So, before nbgitpuller starts:

- `save` stores the student's state inside their repository, without touching their index or
  files: a copy of `.git/index` into which `git add -u` puts every tracked file as it is (a
  deletion is a deletion), plus the untracked (or ignored) files at the paths of the incoming
  version, which nbgitpuller renames and git may overwrite. The student's other untracked
  files (big data sets) are not read: nothing touches them. The tree is committed under
  `refs/privatepuller/before-update` (safe from `git gc`), and `.git/privatepuller-merging`
  records it with HEAD, the fetched commit, and the identity (device, inode) of each of those
  untracked files; once nbgitpuller's merge starts, also the two commits it merges.

- `recover` runs when that marker is found (at the next sync, which holds the folder's lock)
  and straight after an update that failed. It never guesses from the student's content: a
  file is put back (from the saved tree) or removed only when git could have written what is
  there now, or the beginning of it (a write cut short): for a file the student had deleted,
  the version nbgitpuller checks out again (the incoming one, or HEAD's); and, once the merge
  has started, for a file the incoming version changes, that version, what the merge writes
  there, or what it puts back there when it fails (a full disk). What the merge writes is not
  guessed either: the same `git merge -Xours` of the same two commits is run again in a
  temporary worktree, restricted to the files in question. Anything else there is the
  student's (they changed the file after the interruption) and is kept; files git does not
  write before or in the merge are never touched. A file nbgitpuller renamed is found by its
  inode and renamed back. Restored files are written to a temporary
  file and renamed into place, so recovery can itself be interrupted and run again. HEAD and
  the index go back to the saved HEAD (`git reset --mixed`, which also ends an unfinished
  merge) when the update had moved them, the fetched commit is forgotten (so the next sync's
  room check counts the new files again), and the marker goes.

- git's lock files: one that a live process holds open, or that was there before the update
  began and is less than ten minutes old (nbgitpuller's own limit), is another program's and
  is never removed; recovery then restores the files it can and asks the student to try again
  later. A lock left by our own killed git (made after the update began, held by no one) or
  an abandoned one (ten minutes) is removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import DiskFull, PullError, SyncBusy
from .local_origin import BRANCH
from .space import looks_full, store_failed

MARKER = "privatepuller-merging"  # in the folder's .git while an update runs
SAVED_REF = "refs/privatepuller/before-update"
SAVED_INDEX = "privatepuller-index"  # in .git: the saved state, with git's stat data
RESTORING = "privatepuller-restore"  # in .git: files being written, renamed into place
WORKTREE_PREFIX = "privatepuller-merge-"  # the temporary worktree that replays a merge
REPLAYING = "privatepuller-replay"  # in .git: where that worktree is, while it exists
THEIRS = f"refs/remotes/origin/{BRANCH}"
STALE_LOCK = 600  # seconds: nbgitpuller removes an index.lock older than this
NBGITPULLER = ("-c", "user.email=nbgitpuller@nbgitpuller.link", "-c", "user.name=nbgitpuller")
NBGITPULLER_EMAIL = "nbgitpuller@nbgitpuller.link"
# Our own git commands run no hooks or fsmonitor and never start a gc in the student's folder.
QUIET = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "gc.auto=0")
IDENTITY = {
    "GIT_AUTHOR_NAME": "privatepuller",
    "GIT_AUTHOR_EMAIL": "privatepuller@localhost",
    "GIT_COMMITTER_NAME": "privatepuller",
    "GIT_COMMITTER_EMAIL": "privatepuller@localhost",
}
BUSY = (
    "Another program is using git in your folder {name} right now. Wait a few minutes, then "
    "click the link again."
)


@dataclass
class Saved:
    """What `.git/privatepuller-merging` records (as JSON)."""

    commit: str  # the student's state
    head: str | None  # HEAD before the update
    branch: str | None  # the ref HEAD named
    theirs: str | None  # the origin commit fetched before the update
    started: float  # time.time() when the update began
    untracked: dict[str, list[int]] = field(default_factory=dict)  # path -> [st_dev, st_ino]
    new_dirs: list[str] = field(default_factory=list)  # folders git may create
    merge: dict[str, str] | None = None  # {"ours", "theirs"} once nbgitpuller's merge starts


# --- saving ----------------------------------------------------------------------------------


def save(target: Path, paths: Iterable[str]) -> Saved:
    """Save the folder's state (see the module's docstring); `paths`: the incoming version's."""
    git_dir = target / ".git"
    index = git_dir / SAVED_INDEX
    for leftover in (index, index.with_name(SAVED_INDEX + ".lock")):
        leftover.unlink(missing_ok=True)
    try:
        if (git_dir / "index").exists():
            shutil.copyfile(git_dir / "index", index)
        head = _rev(target, "HEAD")
        # Every path git may write: the incoming version's, and HEAD's (nbgitpuller checks
        # out the files the student deleted).
        paths = list(dict.fromkeys([*paths, *_ls_tree(target, head)]))
        _git(target, "add", "-u", index=index)
        tracked = set(_split(_git(target, "ls-files", "-z", index=index)))
        untracked: dict[str, list[int]] = {}
        files = []
        for path in paths:
            if path in tracked:
                continue
            try:
                info = os.lstat(target / path)
            except OSError:  # absent, or under something that is not a folder
                continue
            untracked[path] = [info.st_dev, info.st_ino]
            if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
                files.append(path)
        _add_untracked(target, index, files)
        tree = _git(target, "write-tree", index=index).decode().strip()
        parents = ["-p", head] if head else []
        message = "privatepuller: your folder as it was before an update\n"
        commit = _git(target, "commit-tree", tree, *parents, input=message.encode()).decode()
        commit = commit.strip()
        _git(target, "update-ref", SAVED_REF, commit)
        saved = Saved(
            commit=commit,
            head=head,
            branch=_symbolic_head(target),
            theirs=_rev(target, THEIRS),
            started=time.time(),
            untracked=untracked,
            new_dirs=_missing_folders(target, paths),
        )
        _write_marker(git_dir, saved)
    except subprocess.CalledProcessError as error:
        raise _git_failed(target, error) from error
    except OSError as error:
        raise store_failed(target, error) or _not_saved(target, error) from None
    return saved


def _not_saved(target: Path, error: OSError) -> PullError:
    return PullError(
        f"Your folder {target.name} could not be prepared for the update ({error.strerror}). "
        "Nothing was changed; try again in a minute."
    )


def merge_starts(target: Path, saved: Saved) -> None:
    """Record the two commits nbgitpuller's merge is about to merge (before it runs)."""
    saved.merge = {"ours": _rev(target, "HEAD") or "", "theirs": _rev(target, THEIRS) or ""}
    try:
        _write_marker(target / ".git", saved)
    except OSError as error:
        raise store_failed(target, error) or _not_saved(target, error) from None


def finished(target: Path) -> None:
    """The update completed: forget the saved state."""
    _forget(target / ".git")


def read_marker(git_dir: Path) -> Saved | None:
    """The saved state an unfinished update left, or None (none, or an older version's)."""
    try:
        data = json.loads((git_dir / MARKER).read_text())
        return Saved(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def _add_untracked(target: Path, index: Path, files: Sequence[str]) -> None:
    """Force-add `files` (literal paths) to the saved index; one by one if git refuses the
    batch (say, a path inside a nested repository), leaving out the ones it refuses."""
    if not files:
        return
    env = {"GIT_LITERAL_PATHSPECS": "1"}
    args = ("add", "-f", "--pathspec-from-file=-", "--pathspec-file-nul")
    try:
        _git(target, *args, index=index, input=b"\0".join(map(os.fsencode, files)), env=env)
    except subprocess.CalledProcessError as error:
        if looks_full(target, (error.stderr or b"").decode("utf-8", "replace")):
            raise
        for path in files:
            with contextlib.suppress(subprocess.CalledProcessError):
                _git(target, *args, index=index, input=os.fsencode(path), env=env)


def _missing_folders(target: Path, paths: Iterable[str]) -> list[str]:
    missing: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if folder in missing or not os.path.lexists(target / folder):
                missing.add(folder)
    return sorted(missing)


def _write_marker(git_dir: Path, saved: Saved) -> None:
    temp = git_dir / f"{MARKER}.{uuid.uuid4().hex}"
    try:
        temp.write_text(json.dumps(asdict(saved)))
        os.replace(temp, git_dir / MARKER)
    finally:
        temp.unlink(missing_ok=True)


# --- git's lock files ----------------------------------------------------------------------


def index_in_use(target: Path) -> bool:
    """Is `.git/index.lock` another program's (nbgitpuller would refuse or break it)? Held
    open by a live process, a git process at work in the folder, or younger than ten minutes."""
    lock = target / ".git" / "index.lock"
    try:
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return False
    return age <= STALE_LOCK or _held_open([lock]) != set() or git_working_in(target)


def _locks(git_dir: Path) -> list[Path]:
    return [*git_dir.glob("*.lock"), *(git_dir / "refs").rglob("*.lock")]


def _clear_dead_locks(git_dir: Path, started: float) -> list[Path]:
    """Remove the lock files a killed update left (made after it began, held by no live
    process) and abandoned ones (older than ten minutes, held by no one); return the others."""
    locks = _locks(git_dir)
    held = _held_open(locks)
    kept = []
    for lock in locks:
        try:
            age = time.time() - lock.stat().st_mtime
        except OSError:
            continue
        stale = age > STALE_LOCK
        ours = age <= time.time() - started + 2  # made after the update began (coarse clocks)
        if (stale or ours) and not (lock in held if held is not None else not stale):
            lock.unlink(missing_ok=True)
        else:
            kept.append(lock)
    return kept


def _held_open(files: Iterable[Path]) -> set[Path] | None:
    """The files of `files` that some process has open (Linux's /proc tells; elsewhere None:
    we cannot know)."""
    wanted = {os.path.realpath(f): f for f in files}
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    held: set[Path] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if (name := os.readlink(fd)) in wanted:
                    held.add(wanted[name])
    return held


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
            if (
                (cwd == where or cwd.startswith(where + os.sep))
                and (entry / "comm").read_text().startswith("git")
                and (entry / "stat").read_text().rpartition(")")[2].split()[0] not in "ZX"
            ):
                return True
        except (OSError, IndexError):
            continue
    return False


# --- recovering ----------------------------------------------------------------------------


def recover(target: Path, *, earlier: bool) -> None:
    """Put the folder back as it was saved, if an update did not finish (see the module's
    docstring). `earlier`: the update was interrupted in an earlier run (its git may have been
    killed holding its locks); otherwise it just failed here, and every lock is another's.

    Raises `SyncBusy` (another program's git lock, or git still at work), `DiskFull` or
    `PullError` when the folder could not be put back entirely; the marker then stays, and
    the next sync tries again (what was restored already is not touched again)."""
    git_dir = target / ".git"
    if not (git_dir / MARKER).exists():
        return
    if earlier and git_working_in(target):
        raise SyncBusy(
            f"An earlier, interrupted update of your folder {target.name} is still finishing. "
            "Wait a minute, then click the link again."
        )
    _remove_leftovers(target)
    saved = read_marker(git_dir)
    started = saved.started if saved else (git_dir / MARKER).stat().st_mtime
    kept = _clear_dead_locks(git_dir, started) if earlier else _locks(git_dir)
    if saved is None:
        # An older version's marker: nothing was saved to compare with, and nothing is
        # restored on a guess. nbgitpuller's next update starts with `git reset --mixed`.
        if kept:
            raise SyncBusy(BUSY.format(name=target.name))
        (git_dir / MARKER).unlink(missing_ok=True)
        return
    try:
        undecided = _Restore(target, saved).run()
        # Last: until every file is settled, the next try needs the refs as they are.
        moved = not undecided and _restore_refs(target, saved)
    except subprocess.CalledProcessError as error:
        if kept:
            raise SyncBusy(BUSY.format(name=target.name)) from error
        raise _git_failed(target, error) from error
    except OSError as error:
        raise store_failed(target, error) or PullError(
            f"An earlier update of your folder {target.name} was interrupted, and “"
            f"{os.path.relpath(error.filename or target, target)}” could not be put back as "
            f"it was ({error.strerror}). Nothing was lost; click the link again in a minute."
        ) from None
    if undecided:
        names = ", ".join(f"“{p}”" for p in undecided[:3])
        message = (
            f"An earlier update of your folder {target.name} was interrupted, and whether "
            f"{names} still hold the update's changes could not be checked yet. Nothing was "
            "lost; "
        )
        if looks_full(target):
            raise DiskFull(message + "delete some files in your home folder and click again.")
        raise PullError(message + "click the link again in a minute.")
    if not moved:
        raise SyncBusy(BUSY.format(name=target.name))
    _forget(git_dir)


def _restore_refs(target: Path, saved: Saved) -> bool:
    """HEAD and the index back to the saved HEAD if the update moved them (a merge left
    unfinished included); the fetched commit forgotten. False if another program's lock on
    the index stands in the way."""
    git_dir = target / ".git"
    head = _rev(target, "HEAD")
    moved = head != saved.head or (git_dir / "MERGE_HEAD").exists()
    # Only what the update did: not a branch or commits the student made since.
    ours = _symbolic_head(target) == saved.branch and _made_by_the_update(target, saved)
    if saved.head and moved and ours:
        if (git_dir / "index.lock").exists():
            return False
        _git(target, "reset", "--mixed", "-q", saved.head, "--")
    if saved.theirs and _rev(target, THEIRS) != saved.theirs:
        _git(target, "update-ref", THEIRS, saved.theirs)
    return True


def _made_by_the_update(target: Path, saved: Saved) -> bool:
    """Are the commits HEAD has beyond the saved HEAD nbgitpuller's and the origin's (not
    commits the student made since)?"""
    head = _rev(target, "HEAD")
    if head is None or saved.head is None:
        return False
    stop = [saved.head, *(c for c in (_rev(target, THEIRS), saved.theirs) if c)]
    if saved.merge:
        stop += [c for c in saved.merge.values() if c]
    emails = _git(target, "log", "--format=%ce", head, "--not", *stop).decode().split()
    return all(email == NBGITPULLER_EMAIL for email in emails)


def _forget(git_dir: Path) -> None:
    target = git_dir.parent
    if _rev(target, SAVED_REF):
        _git(target, "update-ref", "-d", SAVED_REF)
    (git_dir / SAVED_INDEX).unlink(missing_ok=True)
    shutil.rmtree(git_dir / RESTORING, ignore_errors=True)
    (git_dir / MARKER).unlink(missing_ok=True)


def _remove_leftovers(target: Path) -> None:
    """Files of a recovery or save that was itself interrupted."""
    git_dir = target / ".git"
    shutil.rmtree(git_dir / RESTORING, ignore_errors=True)
    (git_dir / f"{SAVED_INDEX}.lock").unlink(missing_ok=True)
    for temp in git_dir.glob(f"{MARKER}.*"):
        temp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        _remove_worktree(target, Path((git_dir / REPLAYING).read_text()))
    admin = git_dir / "worktrees"
    for worktree in admin.glob(WORKTREE_PREFIX + "*") if admin.is_dir() else ():
        with contextlib.suppress(OSError):
            _remove_worktree(target, Path((worktree / "gitdir").read_text().strip()).parent)
        shutil.rmtree(worktree, ignore_errors=True)


Entry = tuple[str, str]  # (mode, blob) of a tree entry
LINK = "120000"
CHUNK = 1 << 20


class _Restore:
    """Put back the saved files that git may have changed since; remove what git may have
    created (see the module's docstring). `run` returns the paths it could not decide."""

    def __init__(self, target: Path, saved: Saved) -> None:
        self.target = target
        self.saved = saved
        self.ours = _ls_tree(target, saved.commit)
        self.head = _ls_tree(target, saved.head)
        self.fetched = _ls_tree(target, _rev(target, THEIRS))  # what nbgitpuller checks out
        merge = saved.merge or {}
        self.merging = _ls_tree(target, merge.get("ours"))  # the merge's two sides
        self.incoming = _ls_tree(target, merge.get("theirs"))
        self.bases = [_ls_tree(target, base) for base in _merge_bases(target, merge)]
        self.replayed: _Replayed | None = None  # what the merge writes

    def run(self) -> list[str]:
        created = sorted(
            {
                path
                for tree in (self.head, self.fetched, self.incoming)
                for path in tree
                if path not in self.ours and os.path.lexists(self.target / path)
            }
        )
        others = sorted((self._changed() | set(self.saved.untracked)) - set(created))
        # What git created goes first: on a full disk, that makes room for the rest.
        undecided = [p for p in [*created, *others] if self._settle(p) is None]
        left = undecided
        if undecided and self.saved.merge:
            with _replayed_merge(self.target, self.saved.merge, undecided) as replayed:
                self.replayed = replayed
                left = [p for p in undecided if self._settle(p) is None]
                self.replayed = None
        for folder in sorted(self.saved.new_dirs, key=lambda f: -f.count("/")):
            path = self.target / folder
            if not path.is_symlink() and path.is_dir():
                with contextlib.suppress(OSError):
                    path.rmdir()  # only if empty
        return left

    def _changed(self) -> set[str]:
        """Saved paths whose file differs from the saved one, by git's stat data (a superset)."""
        index = self.target / ".git" / SAVED_INDEX
        if not index.exists():
            return set(self.ours)
        out = _git(self.target, "diff-files", "-z", "--name-only", index=index)
        return set(_split(out)) & set(self.ours)

    def _settle(self, path: str) -> bool | None:
        """Make `path` what it was, if git may have changed it. True: done (or nothing to
        do); False: the student's, kept; None: cannot tell (yet)."""
        if not self._safe(path):
            return False  # never through a link; git does not write there either
        full = self.target / path
        kind = _kind(full)
        if kind == "other":
            return False  # a folder (say): git writes files
        renamed = self._renamed(path)
        if renamed is not None:  # the student's untracked file, renamed by nbgitpuller
            if kind is not None:
                verdict = self._git_wrote(path, kind)
                if not verdict:
                    return verdict  # False: a new file of the student's is there: keep both
                full.unlink()
            os.rename(renamed, full)
            return True
        saved = self.ours.get(path)
        if saved is None:  # not there before the update: git may have created it
            if kind is None:
                return True
            verdict = self._git_wrote(path, kind)
            if verdict:
                full.unlink()
            return verdict
        if kind is None:  # deleted: by git (or by the student since: back it comes)
            return self._write(path, saved)
        if self._compare(path, kind, entry=saved) == "equal":
            return True
        verdict = self._git_wrote(path, kind)
        return self._write(path, saved) if verdict else verdict

    def _git_wrote(self, path: str, kind: str) -> bool | None:
        """Could git have written what is at `path` (whole, or cut short)? None: not known
        until what the merge writes there is known."""
        if path not in self.ours and path in self.head:
            # Deleted by the student: nbgitpuller checks it out again, from the origin (or
            # from HEAD when the origin deleted it too).
            for entry in (self.fetched.get(path), self.head.get(path)):
                if entry is not None and self._compare(path, kind, entry=entry):
                    return True
        if not self.saved.merge or (
            self.bases and all(base.get(path) == self.incoming.get(path) for base in self.bases)
        ):
            return False  # no merge, or one that keeps what the folder has there
        theirs = self.incoming.get(path)
        if theirs is not None and self._compare(path, kind, entry=theirs):
            return True  # changed upstream only
        if self.replayed is None:
            return None
        if path not in self.replayed.touched:
            return False  # the merge leaves it alone
        # What the merge writes there; or, when it fails (a full disk), what it had there
        # before: git puts back the files it was changing.
        written = self.replayed.files.get(path)
        if written is not None and self._compare(path, kind, file=written) is not None:
            return True
        before = self.merging.get(path)
        return before is not None and self._compare(path, kind, entry=before) is not None

    def _compare(
        self, path: str, kind: str, *, entry: Entry | None = None, file: Path | None = None
    ) -> str | None:
        """Is what is at `path` (a file or a link: `kind`) equal to a tree entry as git writes
        it there, or to `file` ("equal"), the beginning of it ("prefix"), or neither (None)?
        Files are compared as they stream, never read whole."""
        full = self.target / path
        if kind == "link" or (entry is not None and entry[0] == LINK):
            if kind != "link" or entry is None or entry[0] != LINK:
                return None
            mine = os.fsencode(os.readlink(full))
            text = _git(self.target, "cat-file", "blob", entry[1])
            return "equal" if mine == text else "prefix" if text.startswith(mine) else None
        with contextlib.ExitStack() as stack:
            own = stack.enter_context(open(full, "rb"))
            other: IO[bytes]
            if file is not None:
                other = stack.enter_context(open(file, "rb"))
            else:
                assert entry is not None
                args = ("cat-file", "--filters", f"--path={path}", entry[1])
                other = stack.enter_context(_git_stream(self.target, *args))
            while True:
                chunk = other.read(CHUNK)
                if not chunk:
                    return None if own.read(1) else "equal"
                mine = own.read(len(chunk))
                if mine != chunk[: len(mine)]:
                    return None
                if len(mine) < len(chunk):
                    return "prefix"

    def _safe(self, path: str) -> bool:
        """No folder on the way to `path` is a symbolic link."""
        folder = self.target
        for part in path.split("/")[:-1]:
            folder = folder / part
            if folder.is_symlink():
                return False
        return True

    def _renamed(self, path: str) -> Path | None:
        """Where nbgitpuller renamed the student's untracked `path` to (`x__<timestamp>.csv`),
        found by its device and inode, if it did."""
        ident = self.saved.untracked.get(path)
        if ident is None:
            return None
        with contextlib.suppress(OSError):
            info = os.lstat(self.target / path)
            if [info.st_dev, info.st_ino] == ident:
                return None  # still where it was
        folder, _, name = path.rpartition("/")
        root, ext = os.path.splitext(name)
        pattern = re.compile(re.escape(root) + r"__\d{14}" + re.escape(ext))
        try:
            entries = list(os.scandir(self.target / folder))
        except OSError:
            return None
        for item in entries:
            if pattern.fullmatch(item.name):
                info = item.stat(follow_symlinks=False)
                if [info.st_dev, info.st_ino] == ident:
                    return Path(item.path)
        return None

    def _write(self, path: str, entry: Entry) -> bool | None:
        """Write a saved entry at `path`: into a temporary file, then renamed into place.
        None if a file of the student's is where its folder should be (nothing is replaced,
        and the saved state is kept for later)."""
        mode, blob = entry
        dest = self.target / path
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            return None
        temps = self.target / ".git" / RESTORING
        temps.mkdir(exist_ok=True)
        temp = temps / uuid.uuid4().hex
        try:
            if mode == LINK:
                os.symlink(os.fsdecode(_git(self.target, "cat-file", "blob", blob)), temp)
            else:
                args = ("cat-file", "--filters", f"--path={path}", blob)
                # As git creates files: 0666 (0777 if executable), less the umask.
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
                perms = 0o777 if mode == "100755" else 0o666
                with (
                    _git_stream(self.target, *args) as content,
                    os.fdopen(os.open(temp, flags, perms), "wb") as out,
                ):
                    shutil.copyfileobj(content, out, CHUNK)
            try:
                os.replace(temp, dest)
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                near = dest.with_name(f".{dest.name}.privatepuller-{uuid.uuid4().hex[:8]}")
                shutil.move(temp, near)
                os.replace(near, dest)
        finally:
            temp.unlink(missing_ok=True)
        return True


def _kind(full: Path) -> str | None:
    """ "file", "link", "other" (a folder, say) or None (nothing there)."""
    try:
        info = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(info.st_mode):
        return "link"
    return "file" if stat.S_ISREG(info.st_mode) else "other"


def _merge_bases(target: Path, merge: dict[str, str]) -> list[str]:
    """The merge bases of a merge's two commits ([] if none, or no merge)."""
    if not merge.get("ours") or not merge.get("theirs"):
        return []
    result = _git_run(target, "merge-base", "--all", merge["ours"], merge["theirs"])
    return result.stdout.decode().split()


@dataclass
class _Replayed:
    files: dict[str, Path | None]  # what the merge writes at a path (None: no file)
    touched: set[str]  # the paths it changes (writes or deletes)


@contextlib.contextmanager
def _replayed_merge(
    target: Path, merge: dict[str, str], paths: Sequence[str]
) -> Iterator[_Replayed | None]:
    """What nbgitpuller's `git merge -Xours` does at `paths`, found by running the same merge
    of the same commits in a temporary worktree whose checkout is limited to `paths`. None if
    git could not replay it (say, the disk is full)."""
    worktree = Path(tempfile.mkdtemp(prefix=WORKTREE_PREFIX))
    try:
        try:
            (target / ".git" / REPLAYING).write_text(str(worktree))  # if killed: removed later
        except OSError:
            replayed = None
        else:
            replayed = _replay(target, worktree, merge, paths)
        yield replayed
    finally:
        _remove_worktree(target, worktree)


def _remove_worktree(target: Path, worktree: Path) -> None:
    """Remove a temporary worktree of ours (the folder and git's record of it)."""
    if worktree.name.startswith(WORKTREE_PREFIX):
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            _git(target, "worktree", "remove", "--force", "--force", str(worktree))
        shutil.rmtree(worktree, ignore_errors=True)
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            _git(target, "worktree", "prune")
    (target / ".git" / REPLAYING).unlink(missing_ok=True)


def _replay(
    target: Path, worktree: Path, merge: dict[str, str], paths: Sequence[str]
) -> _Replayed | None:
    if not merge.get("ours") or not merge.get("theirs"):
        return None
    try:
        _git(target, "worktree", "add", "--detach", "--no-checkout", str(worktree), merge["ours"])
        sparse: tuple[str, ...] = ()
        if not any("\n" in p or "\r" in p for p in paths):
            patterns = _git(worktree, "rev-parse", "--git-path", "info/sparse-checkout")
            file = worktree / os.fsdecode(patterns.strip())
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(b"".join(os.fsencode(_sparse_pattern(p)) + b"\n" for p in paths))
            sparse = ("-c", "core.sparseCheckout=true", "-c", "core.sparseCheckoutCone=false")
        _git(worktree, *sparse, "read-tree", "HEAD")
        result = _git_run(worktree, *sparse, *NBGITPULLER, "merge", "-Xours", merge["theirs"])
        if result.returncode not in (0, 1):  # 1: conflicts, whose files are written too
            return None
        changed = _git(worktree, "diff-index", "--cached", "--name-only", "-z", merge["ours"])
    except (OSError, subprocess.CalledProcessError):
        return None
    return _Replayed(
        {p: (worktree / p) if _kind(worktree / p) == "file" else None for p in paths},
        set(_split(changed)),
    )


def _sparse_pattern(path: str) -> str:
    """A sparse-checkout (gitignore) pattern matching exactly `path`."""
    return "/" + re.sub(r"([\\*?\[\]!# \t])", r"\\\1", path)


# --- git -------------------------------------------------------------------------------------


def _environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    environ = {**os.environ, "LANG": "C", **IDENTITY, **(extra or {})}
    environ.pop("GIT_INDEX_FILE", None)
    return environ


def _git_run(
    cwd: Path,
    *args: str,
    index: Path | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    environ = _environ(env)
    if index is not None:
        environ["GIT_INDEX_FILE"] = str(index)
    return subprocess.run(
        ["git", *QUIET, *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        env=environ,
    )


def _git(cwd: Path, *args: str, **kwargs: Any) -> bytes:
    result = _git_run(cwd, *args, **kwargs)
    if result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, ["git", *args], result.stdout, result.stderr
        )
    return result.stdout or b""


@contextlib.contextmanager
def _git_stream(cwd: Path, *args: str) -> Iterator[IO[bytes]]:
    """A git command's output, read as it comes; the command is stopped if not read to the end."""
    process = subprocess.Popen(
        ["git", *QUIET, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_environ(),
    )
    assert process.stdout is not None
    complete = False
    try:
        yield process.stdout
        complete = True
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.kill()
        code = process.wait()
    if complete and code not in (0, -9):
        raise subprocess.CalledProcessError(code, ["git", *args])


def _rev(cwd: Path, rev: str) -> str | None:
    result = _git_run(cwd, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    return result.stdout.decode().strip() or None


def _symbolic_head(cwd: Path) -> str | None:
    return _git_run(cwd, "symbolic-ref", "-q", "HEAD").stdout.decode().strip() or None


def _ls_tree(cwd: Path, rev: str | None) -> dict[str, Entry]:
    """{path: (mode, blob)} of the files of a commit."""
    if rev is None:
        return {}
    tree: dict[str, Entry] = {}
    for item in _split(_git(cwd, "ls-tree", "-r", "-z", rev)):
        meta, path = item.split("\t", 1)
        mode, kind, blob = meta.split()
        if kind == "blob":
            tree[path] = (mode, blob)
    return tree


def _split(out: bytes) -> list[str]:
    return [os.fsdecode(p) for p in out.split(b"\0") if p]


def _git_failed(target: Path, error: subprocess.CalledProcessError) -> PullError:
    detail = (error.stderr or b"").decode("utf-8", "replace")
    if looks_full(target, detail):
        return DiskFull(
            f"Your disk is full, so your folder {target.name} could not be updated. Delete "
            "some files in your home folder and click the link again; your work is safe."
        )
    command = next((a for a in error.cmd[1:] if not a.startswith("-") and "=" not in a), "")
    return PullError(
        f"Updating your folder {target.name} failed (git {command}). Nothing was lost; "
        "if the folder is not a copy made by this link, rename it and click the link again."
    )
