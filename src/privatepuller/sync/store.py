"""Store one snapshot of a source in its local origin: list, plan, download only what changed
(each file into git as it lands), commit, save the manifest. No merge: `store` is the part of a
sync that does not touch the student's folder, so it can run wherever the origin lives.

The origin only ever gets a new commit when a whole snapshot is in git, so a failed or
interrupted store leaves it as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import DownloadFailed, TimedOut
from ..sizes import size_text
from .config import SyncConfig
from .journal import Journal
from .local_origin import BlobWriter, LocalOrigin
from .lock import exclusive
from .manifest import Manifest, ManifestEntry
from .plan import apply_limits, drop_unwritable, keep_earlier_copies, plan
from .progress import Progress
from .source import Listing, RemoteFile, SkipFile, Skipped, Source
from .space import store_failed


@dataclass(frozen=True)
class Snapshot:
    """What `store` did: the origin's new state, and what was left out of it."""

    origin: LocalOrigin
    name: str  # the listing's name
    previous: Manifest  # the origin's manifest before
    entries: dict[str, ManifestEntry]  # path -> entry: every file of the snapshot
    commit: str | None  # the new commit, None when nothing changed
    excluded: tuple[Skipped, ...]  # too large, past the total cap
    skipped: tuple[Skipped, ...]  # the provider's skips, unwritable paths, refused downloads
    kept: tuple[str, ...]  # left out this time, in the snapshot from an earlier one
    downloaded_files: int
    downloaded_bytes: int
    head: str  # the commit the origin's branch is at: the new one, or the unchanged one


@runtime_checkable
class Prestored(Protocol):
    """A source whose snapshot is made elsewhere (the hub's privatepuller service, for every
    student at once): it brings the snapshot into its local origin itself, in place of
    `store`, and the merge then goes on as for any source."""

    @property
    def source_id(self) -> str: ...

    async def list(self) -> Listing[Any]:
        """What the snapshot holds and leaves out, as a listing (the link builder shows it);
        its files cannot be downloaded one by one."""
        ...

    async def store(self, config: SyncConfig, progress: Progress) -> Snapshot: ...


def origin_for(config: SyncConfig, source_id: str) -> LocalOrigin:
    digest = hashlib.sha256(source_id.encode()).hexdigest()[:24]
    return LocalOrigin(config.origins_dir / f"{digest}.git")


def origin_lock(
    config: SyncConfig,
    source_id: str,
    progress: Progress | None = None,
    *,
    shared: bool = False,
) -> contextlib.AbstractAsyncContextManager[None]:
    """The lock `store` needs held: one store of a source at a time, across processes; a
    second one waits for the first (up to `config.origin_wait`, saying so). `shared`: held
    by a merge from the origin, so that no store moves the origin's branch meanwhile (merges
    into different folders run at once)."""
    minutes = config.origin_wait / 60
    limit = f"{minutes:.0f} minutes" if minutes >= 2 else f"{config.origin_wait:g} s"

    def waiting() -> None:
        if progress is not None:
            progress.note(f"Waiting for another sync of the same folder to finish (up to {limit})")

    return exclusive(
        config.locks_dir,
        f"origin:{source_id}",
        wait=config.origin_wait,
        shared=shared,
        busy=(
            f"Another sync of the same folder has been running for more than {limit}, so "
            "this one stopped waiting for it. Nothing was changed; try again later."
        ),
        on_wait=waiting,
    )


async def store(source: Source[Any], config: SyncConfig, progress: Progress) -> Snapshot:
    """List `source`, download what changed into its local origin and commit the snapshot.

    Call with `origin_lock` held. Listing and downloading stop at `config.deadline`.
    """
    deadline = Deadline(config.deadline)
    listing = await deadline.run(source.list())
    origin = origin_for(config, source.source_id)
    await asyncio.to_thread(origin.ensure)
    previous = await asyncio.to_thread(origin.manifest)
    # What a store that was interrupted had stored already is not downloaded again.
    stored = await asyncio.to_thread(origin.stored_earlier, previous)
    planned = plan(listing, previous, config, stored)

    entries = dict(planned.reused)
    progress.listed(len(planned.downloads), planned.download_bytes)
    downloaded, sizes, unavailable = await deadline.run(
        _download_all(source, origin, planned.to_download, config, progress)
    )
    for file in planned.to_download:
        if (blob := downloaded.get(file.change_key)) is not None:
            entries[file.path] = ManifestEntry(file.change_key, sizes[file.change_key], blob)

    # Excluded is not deleted: what this sync leaves out keeps its earlier copy.
    skipped = (*listing.skipped, *planned.unwritable, *unavailable)
    earlier = await _earlier_entries(origin, previous)
    kept = keep_earlier_copies(earlier, entries, (*planned.excluded, *skipped))

    message = f"privatepuller snapshot of {listing.name}\n\nsource: {source.source_id}\n"
    blobs = {path: entry.blob for path, entry in entries.items()}
    commit = await asyncio.to_thread(origin.commit_tree, blobs, message)
    head = commit or await asyncio.to_thread(origin.head)
    assert head is not None, "commit_tree leaves the branch at a commit"
    if commit is not None or previous.commit is None:
        try:
            await asyncio.to_thread(Manifest(head, entries).save, origin.manifest_path)
        except OSError as error:
            raise store_failed(origin.path, error) or error from None
    # Every file the journal recorded is in the manifest now, or not wanted any more.
    origin.journal_path.unlink(missing_ok=True)
    return Snapshot(
        origin=origin,
        name=listing.name,
        previous=previous,
        entries=entries,
        commit=commit,
        excluded=planned.excluded,
        skipped=skipped,
        kept=tuple(kept),
        downloaded_files=len(downloaded),
        downloaded_bytes=sum(sizes.values()),
        head=head,
    )


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
    source: Source[Any],
    origin: LocalOrigin,
    files: Sequence[RemoteFile[Any]],
    config: SyncConfig,
    progress: Progress,
) -> tuple[dict[str, str], dict[str, int], list[Skipped]]:
    """Download each change key once (a file reached twice, e.g. through a Drive shortcut,
    is fetched once) into the origin's staging area, each file stored into git as it lands
    and recorded in the origin's journal once git has it (then it counts as done).

    Returns blobs and sizes by change key, and the files the source could not provide.
    """
    first_of_key: dict[str, RemoteFile[Any]] = {}
    for file in files:
        first_of_key.setdefault(file.change_key, file)
    if not first_of_key:
        return {}, {}, []
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

    def stored(change_key: str, blob: str) -> None:
        journal.add(change_key, sizes[change_key], blob)
        progress.file_done(first_of_key[change_key].path, sizes[change_key])

    try:
        with Journal(origin.journal_path) as journal:
            async with origin.blob_writer(stored) as writer:
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


async def download_tree(source: Source[Any], output_dir: Path, config: SyncConfig) -> Listing[Any]:
    """Plain download of a source into a folder (repoproviders' `fetch`): no git, no merge."""
    listing = await source.list()
    files, _ = apply_limits(drop_unwritable(listing.files)[0], config)
    semaphore = asyncio.Semaphore(config.concurrency)

    async def one(file: RemoteFile[Any]) -> None:
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
