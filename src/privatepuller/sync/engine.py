"""One sync, as its steps: store (list, plan, download what changed, commit) and merge."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .config import SyncConfig
from .local_origin import GitError, LocalOrigin, files_of
from .lock import exclusive
from .manifest import ManifestEntry
from .merge import fetched_commit, merge_into
from .progress import NullProgress, Progress
from .source import Skipped, Source
from .store import Prestored, Snapshot, origin_lock, store


async def sync(
    source: Source[Any] | Prestored,
    target: Path,
    *,
    name: str,
    config: SyncConfig | None = None,
    progress: Progress | None = None,
    backup: bool = False,
    puller_parent: Any = None,
) -> SyncReport:
    """Store a snapshot of `source` in its local origin, then merge it into `target` with
    nbgitpuller's rules. One sync of a target (and of an origin) at a time."""
    config = config or SyncConfig()
    progress = progress or NullProgress()
    target = Path(os.path.abspath(target))
    # The folder's lock for the whole sync: a second sync of it is refused at once (a double
    # click), or after `lock_wait`. The origin's lock only while storing: a sync of the same
    # link into another folder waits for the store, not for this merge; the merge holds it
    # shared, so that no store moves the origin's branch while git fetches from it.
    async with exclusive(config.locks_dir, f"target:{target}", wait=config.lock_wait):
        async with origin_lock(config, source.source_id, progress):
            if isinstance(source, Prestored):
                snapshot = await source.store(config, progress)
            else:
                snapshot = await store(source, config, progress)
        async with origin_lock(config, source.source_id, progress, shared=True):
            # What the folder had: the snapshot it last fetched (none for a backup and
            # resync, which starts a fresh copy); what it gets: the origin's branch now,
            # which another store may have moved past this one's snapshot meanwhile.
            fetched = None if backup else await asyncio.to_thread(fetched_commit, target)
            before = await asyncio.to_thread(files_of_fetched, snapshot.origin, target, fetched)
            snapshot = await asyncio.to_thread(at_head, snapshot)
            await merge(
                snapshot, target, fetched, backup=backup, progress=progress, parent=puller_parent
            )
    return report(snapshot, target, before)


async def merge(
    snapshot: Snapshot,
    target: Path,
    fetched: str | None,
    *,
    backup: bool,
    progress: Progress,
    parent: Any,
) -> None:
    """nbgitpuller's `GitPuller` from the snapshot's origin into `target`, which last fetched
    `fetched` (never cut short by the deadline: a merge stopped half-way is what must not
    happen)."""
    origin = snapshot.origin
    new_bytes = await asyncio.to_thread(origin.bytes_new_since, fetched)
    await asyncio.to_thread(
        merge_into,
        origin.location,
        target,
        backup=backup,
        on_line=progress.git_output,
        parent=parent,
        paths=sorted(snapshot.entries),
        new_bytes=new_bytes,
    )


def at_head(snapshot: Snapshot) -> Snapshot:
    """`snapshot`, or the origin's newer one when another store committed since (its files
    read from git; what this store left out and downloaded is still this one's to report)."""
    head = snapshot.origin.head()
    if head is None or head == snapshot.head:
        return snapshot
    files = snapshot.origin.files(head)
    previous = {path: entry for path, entry in snapshot.entries.items()}
    entries = {
        path: (
            previous[path]
            if path in previous and previous[path].blob == blob
            else ManifestEntry(f"privatepuller:newer:{blob}", size, blob)
        )
        for path, (blob, size) in files.items()
    }
    kept = tuple(p for p in snapshot.kept if p in entries and entries[p] == previous.get(p))
    return replace(snapshot, entries=entries, commit=head, kept=kept, head=head)


def files_of_fetched(origin: LocalOrigin, target: Path, fetched: str | None) -> dict[str, str]:
    """{path: blob} of the snapshot the folder last fetched: from the origin, or from the
    folder's own repository when the origin no longer has it (made anew)."""
    if fetched is None:
        return {}
    for git_dir in (origin.path, target / ".git"):
        with contextlib.suppress(GitError):
            return {path: blob for path, (blob, _) in files_of(git_dir, fetched).items()}
    return {}


@dataclass(frozen=True)
class SyncReport:
    name: str
    target: Path
    added: tuple[str, ...]
    updated: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int
    excluded: tuple[Skipped, ...]  # too large / past the total cap
    skipped: tuple[Skipped, ...]  # locked, hidden, not exportable ... (from the provider)
    downloaded_files: int
    downloaded_bytes: int
    commit: str | None  # new origin commit, None when nothing changed
    # Files excluded or skipped this time that an earlier sync had copied: the student's copy
    # stays as it was (they are in the snapshot with their earlier content, and are counted
    # neither as unchanged nor as removed; `excluded` and `skipped` still list them).
    kept: tuple[str, ...] = ()
    # Files excluded or skipped this time that the folder gets all the same, in the version an
    # earlier sync (of another folder of the same link) copied: counted as added or updated.
    earlier: tuple[str, ...] = ()

    def keeps_copy(self, path: str) -> bool:
        """Whether the student keeps an earlier copy of `path` (a file, or a folder ending in
        "/": of some file in it)."""
        return _among(path, self.kept)

    def note(self, path: str) -> str | None:
        """What the folder has of `path`, a file or folder left out this time, if anything."""
        if _among(path, self.kept):
            return KEPT_WORDS
        if _among(path, self.earlier):
            return EARLIER_WORDS
        return None


def _among(path: str, paths: tuple[str, ...]) -> bool:
    if path.endswith("/"):
        return any(name.startswith(path) for name in paths)
    return path in paths


# What a report says of a file left out that the student keeps from an earlier sync.
KEPT_WORDS = "your copy from an earlier sync stays as it was"
# ... and of one the folder gets anyway, as an earlier sync copied it.
EARLIER_WORDS = "you get the version an earlier sync copied"


def report(snapshot: Snapshot, target: Path, before: Mapping[str, str]) -> SyncReport:
    """What the sync did to the folder, which had the files `before` ({path: blob}, the
    snapshot it last fetched): not what it did to the local origin, which other folders of
    the same link share."""
    after = {path: entry.blob for path, entry in snapshot.entries.items()}
    # Left out this time, in the snapshot from an earlier one: the folder's copy stays (or,
    # when the folder did not have that copy, it gets it).
    kept = tuple(sorted(p for p in snapshot.kept if before.get(p) == after[p]))
    counted = {path: blob for path, blob in after.items() if path not in kept}
    return SyncReport(
        name=snapshot.name,
        target=target,
        added=tuple(sorted(p for p in counted if p not in before)),
        updated=tuple(sorted(p for p in counted if p in before and before[p] != counted[p])),
        removed=tuple(sorted(p for p in before if p not in after)),
        unchanged=sum(1 for p in counted if before.get(p) == counted[p]),
        excluded=snapshot.excluded,
        skipped=snapshot.skipped,
        downloaded_files=snapshot.downloaded_files,
        downloaded_bytes=snapshot.downloaded_bytes,
        commit=snapshot.commit,
        kept=kept,
        earlier=tuple(sorted(p for p in snapshot.kept if p not in kept)),
    )
