"""A record of every credential the fakes hand out, for tooling that looks for leaks.

The fakes call `record` whenever they mint a secret (access and refresh tokens, OAuth codes,
client secrets, service-account keys, file-store signatures) and `running` when they start or
stop. The test suite's leak scan (tests/leak_scan.py) calls `since` to learn which secrets a
test could have leaked. Nothing here changes how the fakes behave.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["Issued", "record", "running", "since", "snapshot"]


@dataclass(frozen=True)
class Issued:
    seq: int
    kind: str  # "Canvas access token", "service-account private key", ... (never the value)
    value: str
    owner: int | None  # id() of the fake that minted it; None: shared by the whole process


_lock = threading.Lock()
_issued: list[Issued] = []
_by_owner: dict[int | None, list[Issued]] = {}
_running: set[int] = set()
_shared: set[str] = set()


def record(owner: object | None, kind: str, value: str) -> None:
    if not value:
        return
    key = None if owner is None else id(owner)
    with _lock:
        if key is None:
            if value in _shared:
                return
            _shared.add(value)
        item = Issued(len(_issued), kind, value, key)
        _issued.append(item)
        _by_owner.setdefault(key, []).append(item)


def running(owner: object, alive: bool) -> None:
    """A fake started (alive) or stopped: secrets it minted earlier stay in use while it runs."""
    with _lock:
        (_running.add if alive else _running.discard)(id(owner))


def snapshot() -> tuple[int, frozenset[int]]:
    """(next sequence number, fakes running now): the state a test starts from."""
    with _lock:
        return len(_issued), frozenset(_running)


def since(seq: int, owners: frozenset[int]) -> list[Issued]:
    """Secrets minted from `seq` on, plus earlier ones of `owners` and of the whole process."""
    with _lock:
        earlier = [
            item for key in (None, *owners) for item in _by_owner.get(key, ()) if item.seq < seq
        ]
        return earlier + _issued[seq:]
