"""One sync at a time per target folder, and one store at a time per origin, across processes."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from ..errors import SyncBusy
from .space import home_unusable

BUSY = (
    "This folder is already being synced (perhaps you clicked the link twice). Wait for that "
    "sync to finish, then try again."
)


@asynccontextmanager
async def exclusive(
    lock_dir: Path,
    name: str,
    *,
    wait: float = 0.0,
    shared: bool = False,
    busy: str = BUSY,
    on_wait: Callable[[], None] | None = None,
) -> AsyncIterator[None]:
    """Hold an flock named after `name` (`shared`: one that other shared holders may hold at
    once); wait up to `wait` seconds, then raise `SyncBusy(busy)`. `on_wait` is called once,
    when the lock is taken by someone else and waiting begins.

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
        waiting = False
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SyncBusy(busy) from None
                if not waiting and on_wait is not None:
                    on_wait()
                waiting = True
                await asyncio.sleep(0.2)
        yield
    finally:
        os.close(fd)
