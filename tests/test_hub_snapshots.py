"""Single flight and re-listing of the hub service's snapshots (`hub/snapshots.py`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from privatepuller.errors import NoAccess
from privatepuller.hub.snapshots import ServedSnapshot, SingleFlight, SnapshotRef


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, *, delay: float = 0.05, fail: list[bool] | None = None):
    calls: list[SnapshotRef] = []

    async def refresh(ref: SnapshotRef, emit) -> ServedSnapshot:  # type: ignore[no-untyped-def]
        calls.append(ref)
        emit({"output": f"listing {ref.item_id}"})
        await asyncio.sleep(delay)
        if fail and fail.pop(0):
            raise NoAccess("not shared")
        return ServedSnapshot("Folder", f"{len(calls):040x}", Path("/nonexistent"), "gdrive:x", {})

    return refresh, calls


REF = SnapshotRef("folder", "1aaaaaaaaaaaaaaaaaaa", "key")


async def test_concurrent_requests_share_one_refresh_and_all_hear_its_progress() -> None:
    clock = Clock()
    refresh, calls = make(clock)
    snapshots = SingleFlight(refresh, min_relist_seconds=30, clock=clock)
    heard: list[list[dict[str, str]]] = [[] for _ in range(20)]
    results = await asyncio.gather(*(snapshots.get(REF, heard[i].append) for i in range(20)))
    assert len(calls) == 1
    assert {r.commit for r in results} == {f"{1:040x}"}
    assert heard[0] == [{"output": "listing 1aaaaaaaaaaaaaaaaaaa"}]
    # Later joiners are told they joined a sync in progress.
    assert all(h for h in heard[1:])


async def test_a_recent_snapshot_is_reused_and_an_old_one_relisted() -> None:
    clock = Clock()
    refresh, calls = make(clock, delay=0)
    snapshots = SingleFlight(refresh, min_relist_seconds=30, clock=clock)
    first = await snapshots.get(REF)
    clock.now += 29
    assert await snapshots.get(REF) is first
    assert len(calls) == 1
    clock.now += 2
    await snapshots.get(REF)
    assert len(calls) == 2


async def test_zero_relists_on_every_request() -> None:
    clock = Clock()
    refresh, calls = make(clock, delay=0)
    snapshots = SingleFlight(refresh, min_relist_seconds=0, clock=clock)
    await snapshots.get(REF)
    await snapshots.get(REF)
    assert len(calls) == 2


async def test_a_failed_refresh_reaches_every_waiter_and_is_not_remembered() -> None:
    clock = Clock()
    refresh, calls = make(clock, fail=[True, False])
    snapshots = SingleFlight(refresh, min_relist_seconds=30, clock=clock)
    results = await asyncio.gather(*(snapshots.get(REF) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, NoAccess) for r in results)
    assert len(calls) == 1
    assert (await snapshots.get(REF)).commit == f"{2:040x}"


async def test_a_waiter_that_goes_away_does_not_cancel_the_others() -> None:
    clock = Clock()
    refresh, calls = make(clock, delay=0.2)
    snapshots = SingleFlight(refresh, min_relist_seconds=30, clock=clock)
    leaving = asyncio.ensure_future(snapshots.get(REF))
    staying = asyncio.ensure_future(snapshots.get(REF))
    await asyncio.sleep(0.05)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert (await staying).commit == f"{1:040x}"
    assert len(calls) == 1


async def test_a_link_with_another_resource_key_is_not_answered_from_the_cache() -> None:
    """An item the account reaches only through its link needs its resource key: a request
    without it (or with another) gets Drive's answer, not the one the key earned."""
    clock = Clock()
    refresh, calls = make(clock, delay=0)
    snapshots = SingleFlight(refresh, min_relist_seconds=30, clock=clock)
    await snapshots.get(REF)
    await snapshots.get(REF)
    assert len(calls) == 1
    await snapshots.get(SnapshotRef(REF.kind, REF.item_id, None))
    await snapshots.get(SnapshotRef(REF.kind, REF.item_id, "guessed"))
    assert [c.resource_key for c in calls] == ["key", None, "guessed"]


async def test_the_latest_answer_is_kept_for_a_while_whatever_min_relist_seconds() -> None:
    clock = Clock()
    refresh, calls = make(clock, delay=0)
    snapshots = SingleFlight(refresh, min_relist_seconds=0, clock=clock)
    assert snapshots.latest(REF, 300) is None
    first = await snapshots.get(REF)
    clock.now += 299
    assert snapshots.latest(REF, 300) is first
    clock.now += 1
    assert snapshots.latest(REF, 300) is None
    assert len(calls) == 1


def test_the_resource_key_is_not_in_a_refs_repr() -> None:
    assert "secret-key" not in repr(SnapshotRef("folder", "1aaaaaaaaaaaaaaaaaaa", "secret-key"))
