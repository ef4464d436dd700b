"""A snapshot carried from one bare origin to another as a git bundle.

The hub's `privatepuller` service keeps each Drive folder's origin; a student's server keeps a
local origin of its own (as for every link) and asks for the objects it lacks: a bundle of the
branch since the commit it has (`have`), or all of it when the service does not know that
commit. The student's server then merges from its local origin exactly as for any other link.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..errors import DownloadFailed
from .config import SyncConfig
from .local_origin import LocalOrigin
from .manifest import Manifest, ManifestEntry
from .source import Skipped
from .store import Snapshot, origin_for

BRANCH_REF = "refs/heads/main"
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


def _git(git_dir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args],
        capture_output=True,
        env={**os.environ, **GIT_ENV, "HOME": str(git_dir)},
    )


def has_commit(git_dir: Path, commit: str) -> bool:
    if not commit or not all(c in "0123456789abcdef" for c in commit) or len(commit) != 40:
        return False
    return _git(git_dir, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def create_bundle(git_dir: Path, commit: str, have: str | None, into: Path) -> Path | None:
    """A bundle file in `into` carrying `commit` (as `refs/snapshots/<commit>`) and what it
    needs beyond `have` (everything when `have` is not a commit of this origin); None when
    `have` already is `commit`. The branch may move on meanwhile: the bundle is of `commit`."""
    if have == commit:
        return None
    ref = snapshot_ref(commit)
    if _git(git_dir, "update-ref", ref, commit).returncode != 0:
        raise RuntimeError(f"{commit} is not a commit of {git_dir}")
    fd, name = tempfile.mkstemp(dir=into, prefix="bundle-", suffix=".bundle")
    os.close(fd)
    path = Path(name)
    exclude = [f"^{have}"] if have and has_commit(git_dir, have) else []
    result = _git(git_dir, "bundle", "create", "--quiet", str(path), ref, *exclude)
    if result.returncode != 0:
        path.unlink(missing_ok=True)
        raise RuntimeError(f"git bundle create failed: {result.stderr.decode()[:300]}")
    return path


def snapshot_ref(commit: str) -> str:
    return f"refs/snapshots/{commit}"


def fetch_bundle(git_dir: Path, bundle: Path, commit: str) -> None:
    """Fetch the snapshot `commit` from a bundle into the bare origin `git_dir`, as its
    branch. Nothing changes unless the bundle holds exactly that commit."""
    ref = snapshot_ref(commit)
    fetched = _git(git_dir, "fetch", "--quiet", "--no-tags", str(bundle), f"+{ref}:{ref}")
    if fetched.returncode != 0 or not has_commit(git_dir, commit):
        raise DownloadFailed(
            "The copy of the folder the hub sent could not be read. Nothing was changed; "
            "click the link again in a minute."
        )
    _git(git_dir, "update-ref", BRANCH_REF, commit)
    _git(git_dir, "update-ref", "-d", ref)


# Fetch a snapshot's objects beyond `have` (a commit, or None) into a bare origin's path.
Fetch = Callable[[Path, str | None], Awaitable[None]]


async def store_fetched(
    config: SyncConfig,
    *,
    source_id: str,
    name: str,
    commit: str,
    fetch: Fetch,
    excluded: tuple[Skipped, ...] = (),
    skipped: tuple[Skipped, ...] = (),
    kept: tuple[str, ...] = (),
) -> Snapshot:
    """`store` for a snapshot made elsewhere: its objects fetched into the source's local
    origin (named by `source_id`, as for a source listed here), its branch moved to `commit`.
    The report compares the files by content: the listing that made it is not here."""
    origin = origin_for(config, source_id)
    await asyncio.to_thread(origin.ensure)
    before = await asyncio.to_thread(origin.head)
    await fetch(origin.path, before)
    if before != commit:
        await asyncio.to_thread(fetch_check, origin, commit)
    previous = await asyncio.to_thread(_entries, origin, before)
    entries = await asyncio.to_thread(_entries, origin, commit)
    changed = {path: entry for path, entry in entries.items() if previous.get(path) != entry}
    return Snapshot(
        origin=origin,
        name=name,
        previous=Manifest(before, previous),
        entries=entries,
        commit=None if before == commit else commit,
        excluded=excluded,
        skipped=skipped,
        kept=kept,
        downloaded_files=len(changed),
        downloaded_bytes=sum(entry.size for entry in changed.values()),
        head=commit,
    )


def fetch_check(origin: LocalOrigin, commit: str) -> None:
    if origin.head() != commit:
        raise DownloadFailed(
            "The copy of the folder the hub sent could not be read. Nothing was changed; "
            "click the link again in a minute."
        )


def _entries(origin: LocalOrigin, commit: str | None) -> dict[str, ManifestEntry]:
    """The files of a commit as manifest entries, keyed by content (blob)."""
    if commit is None:
        return {}
    return {
        path: ManifestEntry(f"blob:{blob}", size, blob)
        for path, (blob, size) in origin.files(commit).items()
    }
