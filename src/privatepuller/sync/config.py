"""The settings of one sync (the CLI's options, the server's `c.PrivatePuller.*`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..http.session import DEFAULT_CONCURRENCY, DEFAULT_MIN_THROUGHPUT, DEFAULT_THROUGHPUT_WINDOW
from ..sizes import MiB
from .source import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_PAGES


def default_home() -> Path:
    return Path(os.environ.get("PRIVATEPULLER_HOME") or Path.home() / ".privatepuller")


@dataclass(frozen=True)
class SyncConfig:
    home: Path = field(default_factory=default_home)  # origins/ and locks/ live here
    max_file_size: int = 100 * MiB  # larger files are excluded and reported
    max_total_size: int = 1024 * MiB  # files past this running total are excluded too
    # Requests at once per session, downloads at once (a throttled session goes lower).
    concurrency: int = DEFAULT_CONCURRENCY
    lock_wait: float = 0.0  # seconds a second sync of the same folder waits before giving up
    # Seconds a store waits for another store of the same source (into another folder, or
    # another student's on the hub) before giving up.
    origin_wait: float = 300.0
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
