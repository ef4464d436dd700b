"""What the sync engine needs from a provider, and what a provider gives it.

A provider's `Source` turns a remote folder into a `Listing`: the files to mirror (each with a
change key, and the provider's own handle for downloading it) and what it left out, each with
a `SkipReason` (its code, and the words a student sees). Then it downloads one file at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, Self

from ..errors import TooBig

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


class SkipReason(StrEnum):
    """Why a file was left out: its code (what reports and tests compare; a member equals its
    code) and the words a student sees. Each provider has its own (`providers/*/skips.py`), the
    engine has `SyncSkip`:

        class CanvasSkip(SkipReason):
            LOCKED = "locked", "locked in Canvas"
    """

    words: str

    def __new__(cls, code: str, words: str) -> Self:
        member = str.__new__(cls, code)
        member._value_ = code
        member.words = words
        return member


class SyncSkip(SkipReason):
    """The engine's own reasons (and a source's, for a file larger than it said)."""

    TOO_LARGE = "too_large", "larger than this hub's limit for one file"
    TOTAL_CAP = "total_cap", "past this hub's limit for one folder"
    PATH_TOO_LONG = "path_too_long", "its path is too long to be created here"


# Left out by a size limit: reports show the file's size with these.
SIZE_LIMITS = frozenset({SyncSkip.TOO_LARGE, SyncSkip.TOTAL_CAP})


@dataclass(frozen=True)
class RemoteFile[H]:
    path: str  # local relative POSIX path, already sanitised and unique
    size: int | None  # None when the provider does not know (exports)
    change_key: str  # changes whenever the content may have changed
    handle: H = field(compare=False, repr=False)  # what its source needs to download it


@dataclass(frozen=True)
class Skipped:
    path: str  # a folder's ends with "/"
    reason: SkipReason
    detail: str = ""


@dataclass(frozen=True)
class Listing[H]:
    name: str  # the folder's (or file's) own name: the default target folder
    files: tuple[RemoteFile[H], ...]
    skipped: tuple[Skipped, ...] = ()


class SkipFile(Exception):
    """Raised by `Source.download` when one file cannot be had in this form (e.g. a Google
    export over its size limit): the file is reported as skipped and the sync goes on."""

    def __init__(self, reason: SkipReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Source[H](Protocol):
    """One resolved remote folder (or file), open for listing and downloading; it carries
    its repo and its session. H is the provider's download handle."""

    # Stable identity of the remote folder; names the local origin (never contains a secret).
    @property
    def source_id(self) -> str: ...

    async def list(self) -> Listing[H]: ...

    async def download(
        self,
        file: RemoteFile[H],
        dest: Path,
        *,
        max_bytes: int | None,
        on_bytes: Callable[[int], None],
    ) -> int:
        """Stream `file` to `dest` (through a temporary name); return the bytes written.

        Raises `SkipFile` for a file to report and leave out; any other error fails the sync.
        """
        ...
