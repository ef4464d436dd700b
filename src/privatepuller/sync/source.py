"""What the sync engine needs from a provider: a listing and a way to download one file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .manifest import Listing, RemoteFile


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
