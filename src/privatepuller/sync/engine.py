"""One sync, as its steps: store (list, plan, download what changed, commit) and merge."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import SyncConfig
from .lock import exclusive
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
    async with (
        exclusive(config.locks_dir, f"target:{target}", wait=config.lock_wait),
        origin_lock(config, source.source_id),
    ):
        if isinstance(source, Prestored):
            snapshot = await source.store(config, progress)
        else:
            snapshot = await store(source, config, progress)
        await merge(snapshot, target, backup=backup, progress=progress, parent=puller_parent)
    return report(snapshot, target)


async def merge(
    snapshot: Snapshot, target: Path, *, backup: bool, progress: Progress, parent: Any
) -> None:
    """nbgitpuller's `GitPuller` from the snapshot's origin into `target` (never cut short by
    the deadline: a merge stopped half-way is what must not happen)."""
    origin = snapshot.origin
    fetched = None if backup else await asyncio.to_thread(fetched_commit, target)
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

    def keeps_copy(self, path: str) -> bool:
        """Whether the student keeps an earlier copy of `path` (a file, or a folder ending in
        "/": of some file in it)."""
        if path.endswith("/"):
            return any(name.startswith(path) for name in self.kept)
        return path in self.kept


# What a report says of a file left out that the student keeps from an earlier sync.
KEPT_WORDS = "your copy from an earlier sync stays as it was"


def report(snapshot: Snapshot, target: Path) -> SyncReport:
    old, kept = snapshot.previous.entries, set(snapshot.kept)
    copied = {p: e for p, e in snapshot.entries.items() if p not in kept}
    return SyncReport(
        name=snapshot.name,
        target=target,
        added=tuple(sorted(p for p in copied if p not in old)),
        updated=tuple(sorted(p for p in copied if p in old and old[p].blob != copied[p].blob)),
        removed=tuple(sorted(p for p in old if p not in snapshot.entries)),
        unchanged=sum(1 for p in copied if p in old and old[p].blob == copied[p].blob),
        excluded=snapshot.excluded,
        skipped=snapshot.skipped,
        downloaded_files=snapshot.downloaded_files,
        downloaded_bytes=snapshot.downloaded_bytes,
        commit=snapshot.commit,
        kept=snapshot.kept,
    )
