"""What a store has put into git so far, one line per file as git stores it.

The manifest is written only when a whole snapshot is committed. A store that stops before
(Ctrl-C, a killed server, one download that failed, the deadline) has stored files into git
all the same; the journal, next to the manifest, records each of them as it lands (change key,
size, blob), so that the next store downloads only the others: it reads the journal for the
change keys its manifest lacks, keeps the entries whose blob git still has, and removes the
journal once its own manifest is saved (`sync/store.py`).

Each line is appended with one write (a process killed right after has it); the file is
flushed to disk at most once a second and when the store ends, so a journal costs no more
than a few syncs of the disk. A line cut short (a machine that lost power) is ignored. The
journal only saves downloads: when it cannot be written (a full disk), the store goes on
without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from .manifest import ManifestEntry

log = logging.getLogger("privatepuller")

SYNC_EVERY = 1.0  # seconds between syncs of the journal to disk
BLOB_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256


class Journal:
    """Appends to the journal at `path` (a context manager: synced and closed on the way out)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._synced = time.monotonic()

    def __enter__(self) -> Self:
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as error:
            log.debug("privatepuller: no journal (%s)", error)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)

    def add(self, change_key: str, size: int, blob: str) -> None:
        """Record that `change_key`'s content (`size` bytes) is the blob `blob` in git."""
        if self._fd is None:
            return
        line = json.dumps({"change_key": change_key, "size": size, "blob": blob}) + "\n"
        try:
            os.write(self._fd, line.encode())
            if time.monotonic() - self._synced >= SYNC_EVERY:
                os.fsync(self._fd)
                self._synced = time.monotonic()
        except OSError as error:
            log.debug("privatepuller: journal stopped (%s)", error)
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def read(path: Path) -> dict[str, ManifestEntry]:
        """The entries recorded at `path`, by change key (none when there is no journal)."""
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return {}
        entries: dict[str, ManifestEntry] = {}
        for line in text.splitlines():
            try:
                entry = ManifestEntry(**json.loads(line))
            except (ValueError, TypeError):
                continue
            if (
                isinstance(entry.change_key, str)
                and isinstance(entry.size, int)
                and isinstance(entry.blob, str)
                and BLOB_ID.fullmatch(entry.blob)
            ):
                entries[entry.change_key] = entry
        return entries
