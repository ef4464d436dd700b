"""Plan one sync: which listed files to copy and which of them to download. Pure: no disk, no
network, so the same plan comes from the same listing and manifest wherever it runs.

- `drop_unwritable`: paths too long to be created are left out (one would stop git's checkout
  of the whole folder);
- `apply_limits`: large datasets are excluded, never truncated (per file, then a running total);
- the diff: a file whose change key the last snapshot has reuses its blob (a renamed file too);
  the others are downloaded;
- `keep_earlier_copies` (after the downloads, which may refuse files): excluded is not deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..sizes import size_text
from .config import SyncConfig
from .manifest import Manifest, ManifestEntry
from .names import MAX_PATH_BYTES
from .source import Listing, RemoteFile, Skipped, SyncSkip


@dataclass(frozen=True)
class Plan[H]:
    to_download: tuple[RemoteFile[H], ...]  # new or changed content
    reused: dict[str, ManifestEntry]  # path -> the last snapshot's entry with its change key
    excluded: tuple[Skipped, ...]  # too large, past the total cap
    unwritable: tuple[Skipped, ...]  # paths too long to be created

    @property
    def downloads(self) -> tuple[RemoteFile[H], ...]:
        """What is downloaded: one file per change key (a file reached twice, e.g. through a
        Drive shortcut, is fetched once and stored under both paths)."""
        first: dict[str, RemoteFile[H]] = {}
        for file in self.to_download:
            first.setdefault(file.change_key, file)
        return tuple(first.values())

    @property
    def download_bytes(self) -> int:
        return sum(file.size or 0 for file in self.downloads)


def plan[H](
    listing: Listing[H],
    previous: Manifest,
    config: SyncConfig,
    stored: Mapping[str, ManifestEntry] | None = None,
) -> Plan[H]:
    """`stored`: files already in git by change key that the manifest lacks (what a store
    that was interrupted had stored): reused like the manifest's."""
    writable, unwritable = drop_unwritable(listing.files)
    files, excluded = apply_limits(writable, config)
    known = {**(stored or {}), **previous.by_change_key()}
    reused: dict[str, ManifestEntry] = {}
    to_download: list[RemoteFile[H]] = []
    for file in files:
        if (entry := known.get(file.change_key)) is not None:
            reused[file.path] = entry
        else:
            to_download.append(file)
    return Plan(tuple(to_download), reused, tuple(excluded), tuple(unwritable))


def apply_limits[H](
    files: tuple[RemoteFile[H], ...], config: SyncConfig
) -> tuple[list[RemoteFile[H]], list[Skipped]]:
    """Large datasets are excluded, never truncated: per file, then a running total by path."""
    kept: list[RemoteFile[H]] = []
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


def drop_unwritable[H](
    files: tuple[RemoteFile[H], ...],
) -> tuple[tuple[RemoteFile[H], ...], list[Skipped]]:
    """Files whose local path is too long to be created (deeply nested long names) are left
    out and reported: one of them would otherwise make git fail to check out the whole folder."""
    kept: list[RemoteFile[H]] = []
    skipped: list[Skipped] = []
    detail = f"its path is longer than {MAX_PATH_BYTES} bytes"
    for file in files:
        if len(file.path.encode()) <= MAX_PATH_BYTES:
            kept.append(file)
        else:
            skipped.append(Skipped(file.path, SyncSkip.PATH_TOO_LONG, detail))
    return tuple(kept), skipped


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
