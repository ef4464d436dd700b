"""What the sync engine needs from a provider: a listing and a way to download one file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import TooBig
from .manifest import Listing, RemoteFile

DEFAULT_MAX_PAGES = 10_000
DEFAULT_MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class ListingLimits:
    """How long a provider's listing may get before the sync stops with `TooBig`.

    `max_pages`: pages of one paginated list (a Canvas course's file list or folder list, one
    Drive folder's children), so a `next` link or page token that never ends stops.
    `max_entries`: items in one such list, and for Drive in the whole folder tree.
    """

    max_pages: int = DEFAULT_MAX_PAGES
    max_entries: int = DEFAULT_MAX_ENTRIES

    def too_many(self, what: str, count: int, unit: str) -> TooBig:
        return TooBig(
            f"This folder is too big to copy: {what} has more than {count:,} {unit}. Nothing "
            "was changed. Tell your instructor, who can share a smaller folder (or split this "
            "one)."
        )


class EntryCount:
    """Entries counted across one listing (every folder of a Drive tree)."""

    def __init__(self, limits: ListingLimits, what: str) -> None:
        self.limits = limits
        self.what = what
        self.count = 0

    def add(self, entries: int) -> None:
        self.count += entries
        if self.count > self.limits.max_entries:
            raise self.limits.too_many(self.what, self.limits.max_entries, "files and folders")


class SkipFile(Exception):
    """Raised by `Source.download` when one file cannot be had in this form (e.g. a Google
    export over its size limit): the file is reported as skipped and the sync goes on."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Source(Protocol):
    # Stable identity of the remote folder; names the local origin (never contains a secret).
    key: str

    async def list(self) -> Listing: ...

    async def download(
        self,
        file: RemoteFile,
        dest: Path,
        *,
        max_bytes: int | None,
        on_bytes: Callable[[int], None],
    ) -> int:
        """Stream `file` to `dest` (through a temporary name); return the bytes written.

        Raises `SkipFile` for a file to report and leave out; any other error fails the sync.
        """
        ...
