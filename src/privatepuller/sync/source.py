"""What the sync engine needs from a provider: a listing and a way to download one file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .manifest import Listing, RemoteFile


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
        """Stream `file` to `dest` (through a temporary name); return the bytes written."""
        ...
