"""Disk space: telling a full disk from other failures, and checking for room beforehand."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from ..errors import ConfigurationError, DiskFull, PullError

# With less than this free, a failing write is taken to be the disk's fault.
NEARLY_FULL = 1024 * 1024
_FULL_MESSAGES = ("no space left", "out of diskspace", "disk quota exceeded")

STORE_FAILED = (
    "Your disk is full, so the files could not be stored. Delete some files in your home "
    "folder and try again; nothing was changed."
)


def free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem of `path` (or of its nearest existing parent)."""
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def looks_full(path: Path, detail: str | BaseException = "") -> bool:
    """Did a write under `path` fail because the disk (or the quota) is full? `detail` is the
    error or the failed command's output."""
    if isinstance(detail, OSError) and detail.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(detail).lower()
    if any(message in text for message in _FULL_MESSAGES):
        return True
    free = free_bytes(path)
    return free is not None and free < NEARLY_FULL


def store_failed(path: Path, error: BaseException) -> DiskFull | None:
    """The `DiskFull` to raise instead of `error` (a failed write under `path`), if any."""
    return DiskFull(STORE_FAILED) if looks_full(path, error) else None


def home_unusable(home: Path, error: OSError) -> PullError:
    """What to raise when privatepuller's own folder (origins and locks) cannot be written."""
    if (full := store_failed(home, error)) is not None:
        return full
    reason = (error.strerror or type(error).__name__).lower()
    return ConfigurationError(
        f"Cannot write in “{home}” ({reason}), where privatepuller keeps a copy of each folder "
        "it pulls. Nothing was synced. Choose a folder you can write with PRIVATEPULLER_HOME "
        "(on the command line: --home)."
    )
