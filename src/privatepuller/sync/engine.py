"""One sync: list, diff against the last manifest, download what changed, commit, merge."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DownloadFailed, TimedOut
from ..http.session import DEFAULT_MIN_THROUGHPUT, DEFAULT_THROUGHPUT_WINDOW
from ..sizes import MiB, size_text
from .lock import exclusive
from .manifest import Manifest, ManifestEntry
from .merge import fetched_commit, merge_into
from .names import MAX_PATH_BYTES
from .origin import BlobWriter, LocalOrigin
from .progress import NullProgress, Progress
from .source import (
    DEFAULT_MAX_ENTRIES,
    DEFAULT_MAX_PAGES,
    Listing,
    RemoteFile,
    SkipFile,
    Skipped,
    Source,
    SyncSkip,
)
from .space import store_failed


def default_home() -> Path:
    return Path(os.environ.get("PRIVATEPULLER_HOME") or Path.home() / ".privatepuller")


@dataclass(frozen=True)
class SyncConfig:
    home: Path = field(default_factory=default_home)  # origins/ and locks/ live here
    max_file_size: int = 100 * MiB  # larger files are excluded and reported
    max_total_size: int = 1024 * MiB  # files past this running total are excluded too
    concurrency: int = 8  # downloads at once (the session's adaptive limit may lower it)
    lock_wait: float = 0.0  # seconds a second sync of the same folder waits before giving up
    backoff_scale: float = 1.0  # < 1 runs the providers' backoff schedules faster (tests)
    read_timeout: float = 60.0  # seconds without a byte before a connection counts as stalled
    # Bounds (docs/security.md): listing and downloading stop after `deadline` seconds (0: no
    # deadline; the merge is never cut short); a body slower than `min_throughput` bytes/s
    # over `throughput_window` seconds counts as stalled; a listing stops at these sizes.
    deadline: float = 3600.0
    min_throughput: float = DEFAULT_MIN_THROUGHPUT
    throughput_window: float = DEFAULT_THROUGHPUT_WINDOW
    max_list_pages: int = DEFAULT_MAX_PAGES
    max_list_entries: int = DEFAULT_MAX_ENTRIES

    @property
    def origins_dir(self) -> Path:
        return self.home / "origins"

    @property
    def locks_dir(self) -> Path:
        return self.home / "locks"


@dataclass(frozen=True)
class SyncReport:
    name: str
    target: Path
    added: tuple[str, ...]
    updated: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int
    excluded: tuple[Skipped, ...]  # too large / past the total cap
    skipped: tuple[Skipped, ...]  # locked, hidden, not exportable ... (from the fetcher)
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


def apply_limits(
    files: tuple[RemoteFile, ...], config: SyncConfig
) -> tuple[list[RemoteFile], list[Skipped]]:
    """Large datasets are excluded, never truncated: per file, then a running total by path."""
    kept: list[RemoteFile] = []
    excluded: list[Skipped] = []
    total = 0
    for file in sorted(files, key=lambda f: f.path):
        size = file.size or 0
        if size > config.max_file_size:
            excluded.append(Skipped(file.path, SyncSkip.TOO_LARGE, size_text(size)))
        elif total + size > config.max_total_size:
            excluded.append(Skipped(file.path, SyncSkip.TOTAL_CAP, size_text(size)))
        else:
            total += size
            kept.append(file)
    return kept, excluded


def drop_unwritable(
    files: tuple[RemoteFile, ...],
) -> tuple[tuple[RemoteFile, ...], list[Skipped]]:
    """Files whose local path is too long to be created (deeply nested long names) are left
    out and reported: one of them would otherwise make git fail to check out the whole folder."""
    kept: list[RemoteFile] = []
    skipped: list[Skipped] = []
    detail = f"its path is longer than {MAX_PATH_BYTES} bytes"
    for file in files:
        if len(file.path.encode()) <= MAX_PATH_BYTES:
            kept.append(file)
        else:
            skipped.append(Skipped(file.path, SyncSkip.PATH_TOO_LONG, detail))
    return tuple(kept), skipped


def origin_for(config: SyncConfig, source_id: str) -> LocalOrigin:
    digest = hashlib.sha256(source_id.encode()).hexdigest()[:24]
    return LocalOrigin(config.origins_dir / f"{digest}.git")


async def sync(
    source: Source,
    target: Path,
    *,
    name: str,
    config: SyncConfig | None = None,
    progress: Progress | None = None,
    backup: bool = False,
    puller_parent: Any = None,
) -> SyncReport:
    config = config or SyncConfig()
    progress = progress or NullProgress()
    target = Path(os.path.abspath(target))
    async with (
        exclusive(config.locks_dir, f"target:{target}", wait=config.lock_wait),
        exclusive(config.locks_dir, f"origin:{source.source_id}", wait=config.lock_wait),
    ):
        deadline = Deadline(config.deadline)  # bounds listing and downloading, not the merge
        listing = await deadline.run(source.list())
        writable, unwritable = drop_unwritable(listing.files)
        files, excluded = apply_limits(writable, config)
        origin = origin_for(config, source.source_id)
        await asyncio.to_thread(origin.ensure)
        previous = await asyncio.to_thread(origin.manifest)

        known = previous.by_change_key()
        blobs: dict[str, str] = {}  # path -> blob of the new snapshot
        entries: dict[str, ManifestEntry] = {}
        to_download: list[RemoteFile] = []
        for file in files:
            if (entry := known.get(file.change_key)) is not None:
                blobs[file.path] = entry.blob
                entries[file.path] = entry
            else:
                to_download.append(file)

        progress.listed(len(to_download), sum(f.size or 0 for f in to_download))
        downloaded, sizes, unavailable = await deadline.run(
            _download_all(source, origin, to_download, config, progress)
        )
        for file in to_download:
            if file.change_key in downloaded:
                blob = downloaded[file.change_key]
                blobs[file.path] = blob
                entries[file.path] = ManifestEntry(file.change_key, sizes[file.change_key], blob)

        # Excluded is not deleted: what this sync leaves out keeps its earlier copy.
        earlier = await _earlier_entries(origin, previous)
        left_out = (*excluded, *listing.skipped, *unwritable, *unavailable)
        kept = keep_earlier_copies(earlier, entries, left_out)
        blobs.update((path, entries[path].blob) for path in kept)

        message = f"privatepuller snapshot of {listing.name}\n\nsource: {source.source_id}\n"
        commit = await asyncio.to_thread(origin.commit_tree, blobs, message)
        if commit is not None or previous.commit is None:
            head = commit or await asyncio.to_thread(origin.head)
            try:
                await asyncio.to_thread(Manifest(head, entries).save, origin.manifest_path)
            except OSError as error:
                raise store_failed(origin.path, error) or error from None

        fetched = None if backup else await asyncio.to_thread(fetched_commit, target)
        new_bytes = await asyncio.to_thread(origin.bytes_new_since, fetched)

        await asyncio.to_thread(
            merge_into,
            origin.location,
            target,
            backup=backup,
            on_line=progress.git_output,
            parent=puller_parent,
            paths=sorted(blobs),
            new_bytes=new_bytes,
        )

    old, kept_paths = previous.entries, set(kept)
    copied = {p: e for p, e in entries.items() if p not in kept_paths}
    return SyncReport(
        name=listing.name,
        target=target,
        added=tuple(sorted(p for p in copied if p not in old)),
        updated=tuple(sorted(p for p in copied if p in old and old[p].blob != copied[p].blob)),
        removed=tuple(sorted(p for p in old if p not in entries)),
        unchanged=sum(1 for p in copied if p in old and old[p].blob == copied[p].blob),
        excluded=tuple(excluded),
        skipped=(*listing.skipped, *unwritable, *unavailable),
        downloaded_files=len(downloaded),
        downloaded_bytes=sum(sizes.values()),
        commit=commit,
        kept=tuple(kept),
    )


def keep_earlier_copies(
    earlier: Mapping[str, ManifestEntry],
    entries: dict[str, ManifestEntry],
    left_out: Iterable[Skipped],
) -> list[str]:
    """Excluded is not deleted: a file of the earlier snapshot that this sync leaves out (too
    large, past the total cap, locked, hidden, refused by the provider, path too long) gets
    its earlier entry back in `entries`, so the new snapshot has the same blob there and the
    merge leaves the student's copy as it was. A folder left out (a path ending in "/", such
    as a locked Canvas folder) keeps every earlier file under it. A file the listing no longer
    has (deleted upstream) is not kept: the merge removes it, as nbgitpuller would.

    The entry keeps its earlier change key, so once the file is copied again (a larger limit,
    unlocked), a version that changed meanwhile is downloaded and an unchanged one reuses its
    blob. Returns the kept paths, sorted.
    """
    files = {s.path for s in left_out if not s.path.endswith("/")}
    folders = tuple(s.path for s in left_out if s.path.endswith("/"))
    if not earlier or not (files or folders):
        return []
    taken = set(entries)
    taken_dirs = {path[:i] for path in taken for i, c in enumerate(path) if c == "/"}
    kept: list[str] = []
    for path in sorted(earlier):
        if path in taken or not (path in files or path.startswith(folders)):
            continue
        parents = {path[:i] for i, c in enumerate(path) if c == "/"}
        if path in taken_dirs or parents & taken:
            continue  # a file where the new snapshot has a folder, or the other way round
        entries[path] = earlier[path]
        kept.append(path)
    return kept


async def _earlier_entries(origin: LocalOrigin, previous: Manifest) -> dict[str, ManifestEntry]:
    """The files of the origin's current snapshot: from its manifest or, when the manifest is
    missing or stale (a sync killed between its commit and its manifest), from the commit
    itself, under change keys no listing produces (so each is downloaded again when copied)."""
    if previous.commit is not None:
        return previous.entries
    head = await asyncio.to_thread(origin.head)
    if head is None:
        return {}
    files = await asyncio.to_thread(origin.files, head)
    return {
        path: ManifestEntry(f"privatepuller:earlier:{blob}", size, blob)
        for path, (blob, size) in files.items()
    }


class Deadline:
    """One sync's time limit, applied to the steps that wait on the network."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.when = asyncio.get_running_loop().time() + seconds if seconds > 0 else None

    async def run[T](self, step: Awaitable[T]) -> T:
        """`step`'s result, or `TimedOut` once the deadline has passed (the step is cancelled:
        downloads stop, their temporary files are removed, nothing is committed)."""
        timer = asyncio.timeout_at(self.when)
        try:
            async with timer:
                return await step
        except TimeoutError:
            if not timer.expired():
                raise
        limit = f"{self.seconds / 60:.0f} minutes" if self.seconds >= 120 else f"{self.seconds:g} s"
        raise TimedOut(
            f"Copying this folder took longer than this hub allows ({limit}), so it was "
            "stopped. Nothing was changed; try again later, and tell your instructor if it "
            "keeps happening (the folder may be too big, or the server too slow)."
        )


async def _download_all(
    source: Source,
    origin: LocalOrigin,
    files: list[RemoteFile],
    config: SyncConfig,
    progress: Progress,
) -> tuple[dict[str, str], dict[str, int], list[Skipped]]:
    """Download each change key once (a file reached twice, e.g. through a Drive shortcut,
    is fetched once) into the origin's staging area, each file stored into git as it lands.

    Returns blobs and sizes by change key, and the files the source could not provide.
    """
    first_of_key: dict[str, RemoteFile] = {}
    for file in files:
        first_of_key.setdefault(file.change_key, file)
    staging = origin.staging_dir / uuid.uuid4().hex
    staging.mkdir(parents=True)
    semaphore = asyncio.Semaphore(config.concurrency)
    sizes: dict[str, int] = {}
    unavailable: list[Skipped] = []

    async def one(index: int, file: RemoteFile, writer: BlobWriter) -> None:
        dest = staging / str(index)
        async with semaphore:
            try:
                size = await source.download(
                    file, dest, max_bytes=config.max_file_size, on_bytes=progress.advanced
                )
            except SkipFile as skip:
                unavailable.extend(
                    Skipped(f.path, skip.reason, skip.detail)
                    for f in files
                    if f.change_key == file.change_key
                )
                return
        if file.size is not None and size != file.size:
            # Never commit a file cut short (a body without a length, a lying Content-Length).
            raise DownloadFailed(
                f"“{file.path}” arrived with {size_text(size)}, but the folder's listing says "
                f"{size_text(file.size)}: it was cut short or changed while downloading. "
                "Nothing was changed; try again in a minute."
            )
        sizes[file.change_key] = size
        await writer.add(file.change_key, dest)
        progress.file_done(file.path, size)

    try:
        async with origin.blob_writer() as writer:
            tasks = [
                asyncio.ensure_future(one(i, f, writer))
                for i, f in enumerate(first_of_key.values())
            ]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            blobs = await writer.finish()
        return blobs, sizes, unavailable
    finally:
        shutil.rmtree(staging, ignore_errors=True)


async def download_tree(source: Source, output_dir: Path, config: SyncConfig) -> Listing:
    """Plain download of a source into a folder (repoproviders' `fetch`): no git, no merge."""
    listing = await source.list()
    files, _ = apply_limits(drop_unwritable(listing.files)[0], config)
    semaphore = asyncio.Semaphore(config.concurrency)

    async def one(file: RemoteFile) -> None:
        dest = output_dir.joinpath(*file.path.split("/"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        async with semaphore:
            # A file the source cannot provide is left out, as `sync` leaves it out.
            with contextlib.suppress(SkipFile):
                await source.download(file, dest, max_bytes=config.max_file_size, on_bytes=_ignore)

    await asyncio.gather(*(one(f) for f in files))
    return listing


def _ignore(nbytes: int) -> None:
    pass
