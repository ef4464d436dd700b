"""One sync at a time per target folder (and per origin), across processes."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ..errors import SyncBusy
from .space import home_unusable


@asynccontextmanager
async def exclusive(lock_dir: Path, name: str, *, wait: float = 0.0) -> AsyncIterator[None]:
    """Hold an flock named after `name`; wait up to `wait` seconds, then raise `SyncBusy`.

    flock locks belong to an open file description, so two syncs in one process exclude each
    other as well as two processes do; the kernel releases them if the process dies.
    """
    filename = hashlib.sha256(name.encode()).hexdigest()[:32] + ".lock"
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_dir / filename, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise home_unusable(lock_dir.parent, error) from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SyncBusy(
                        "This folder is already being synced (perhaps you clicked the link "
                        "twice). Wait for that sync to finish, then try again."
                    ) from None
                await asyncio.sleep(0.2)
        yield
    finally:
        os.close(fd)
