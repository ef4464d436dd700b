"""The local origin: files stored into git while the others download, a first clone that
shares the origin's objects, and the settings every origin gets."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from conftest import CanvasWorld, blob_id
from privatepuller.pull import open_source, parse_link, pull, resolve_link
from privatepuller.sync.engine import SyncReport, at_head
from privatepuller.sync.journal import Journal
from privatepuller.sync.local_origin import ORIGIN_CONFIG, GitError, LocalOrigin
from privatepuller.sync.manifest import Manifest, ManifestEntry
from privatepuller.sync.progress import NullProgress
from privatepuller.sync.store import store


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=folder, capture_output=True, text=True, check=True
    ).stdout.strip()


def has_object(origin: LocalOrigin, blob: str) -> bool:
    done = subprocess.run(["git", "--git-dir", str(origin.path), "cat-file", "-e", blob])
    return done.returncode == 0


def git_processes_in(origin: LocalOrigin) -> list[str]:
    """Command lines of running processes that name the origin (git hash-object, say)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(origin.path) in cmdline:
                found.append(cmdline)
    return found


async def pull_course(world: CanvasWorld) -> SyncReport:
    config = dataclasses.replace(world.config, backoff_scale=0.001)
    return await pull(
        world.url(), parent_dir=world.workdir, credentials=world.credentials, config=config
    )


@pytest.fixture
def origin(tmp_path: Path) -> LocalOrigin:
    origin = LocalOrigin(tmp_path / "origin.git")
    origin.ensure()
    return origin


async def test_files_are_stored_in_the_order_they_are_added(
    origin: LocalOrigin, tmp_path: Path
) -> None:
    contents = [b"first\n", os.urandom(100_000), b"", b"first\n"]
    paths = []
    for index, content in enumerate(contents):
        paths.append(tmp_path / f"file{index}")
        paths[-1].write_bytes(content)
    async with origin.blob_writer() as writer:
        for path in paths:
            await writer.add(path.name, path)
        blobs = await writer.finish()
    assert list(blobs) == [p.name for p in paths]
    assert list(blobs.values()) == [blob_id(c) for c in contents]
    for blob, content in zip(blobs.values(), contents, strict=True):
        stored = subprocess.run(
            ["git", "--git-dir", str(origin.path), "cat-file", "blob", blob],
            capture_output=True,
            check=True,
        ).stdout
        assert stored == content


async def test_a_file_git_cannot_read_fails_the_writer(origin: LocalOrigin, tmp_path: Path) -> None:
    (tmp_path / "there").write_bytes(b"x")
    with pytest.raises(GitError, match="hash-object"):
        async with origin.blob_writer() as writer:
            await writer.add("there", tmp_path / "there")
            await writer.add("not-there", tmp_path / "not-there")
            await writer.finish()
    assert git_processes_in(origin) == []


async def test_leaving_the_writer_early_stops_git(origin: LocalOrigin, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(RuntimeError):
        async with origin.blob_writer() as writer:
            await writer.add("file", tmp_path / "file")
            async with asyncio.timeout(10):  # until the fork has exec'd git
                while not git_processes_in(origin):
                    await asyncio.sleep(0.01)
            raise RuntimeError("a download failed")
    assert git_processes_in(origin) == []


async def test_downloaded_files_are_stored_while_another_still_downloads(
    world: CanvasWorld,
) -> None:
    """Hashing overlaps the downloads: with one file's download stalled, the others are in the
    origin's object store already; the cancelled sync then leaves no git process behind."""
    stalled = world.course.files.file("README.md")
    world.canvas.inject_fault(rf"^/blob/{stalled.uuid}", "stall")
    others = {
        "Week 1/intro.ipynb": b'{"cells": []}\n',
        "Week 1/data/iris.csv": b"a,b\n1,2\n",
    }
    task = asyncio.ensure_future(pull_course(world))
    origin = None
    try:
        async with asyncio.timeout(15):
            while True:
                await asyncio.sleep(0.05)
                assert not task.done(), task.exception()
                origins = list((world.config.origins_dir).glob("*.git"))
                if origins:
                    origin = LocalOrigin(origins[0])
                    if all(has_object(origin, blob_id(c)) for c in others.values()):
                        break
        assert not has_object(origin, blob_id(world.course.files.file("README.md").content))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert origin is not None
    assert git_processes_in(origin) == []
    assert list(origin.staging_dir.iterdir()) == []
    assert not (world.workdir / "Data Science 101").exists()


async def test_first_clone_shares_the_origins_objects_and_history(
    world: CanvasWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local clone hard-links the origin's objects (no packing of every file anew), whatever
    depth a hub sets for nbgitpuller's git clones."""
    monkeypatch.setenv("NBGITPULLER_DEPTH", "1")
    world.course.files.add_file("Week 2/notes.md", b"week 2\n")
    await pull_course(world)
    world.course.files.add_file("Week 3/notes.md", b"week 3\n")
    await pull_course(world)
    origins = list(world.config.origins_dir.glob("*.git"))
    assert len(origins) == 1
    origin = LocalOrigin(origins[0])

    # A second student's first clone of the same origin (say, after "Backup and resync").
    (world.workdir / "Data Science 101").rename(world.workdir / "old copy")
    report = await pull_course(world)
    target = report.target
    assert git(target, "rev-parse", "--is-shallow-repository") == "false"
    assert git(target, "rev-list", "--count", "HEAD") == "2"
    blob = blob_id(b"week 3\n")
    mine = target / ".git" / "objects" / blob[:2] / blob[2:]
    theirs = origin.path / "objects" / blob[:2] / blob[2:]
    assert mine.stat().st_ino == theirs.stat().st_ino
    assert (target / "Week 3" / "notes.md").read_bytes() == b"week 3\n"


def test_every_origin_gets_its_settings_also_one_made_before_them(origin: LocalOrigin) -> None:
    for key, value in ORIGIN_CONFIG.items():
        assert origin.git("config", "--get", key).strip() == value
        origin.git("config", "--unset", key)
    origin.ensure()
    for key, value in ORIGIN_CONFIG.items():
        assert origin.git("config", "--get", key).strip() == value


async def test_more_ids_than_a_pipe_holds(origin: LocalOrigin, tmp_path: Path) -> None:
    """2,000 ids (82 KB) overflow git's 64 KiB stdout pipe unless it is read while adding."""
    paths = []
    for index in range(2000):
        paths.append(tmp_path / f"file{index}")
        paths[-1].write_bytes(b"%d\n" % index)
    async with asyncio.timeout(60), origin.blob_writer() as writer:
        for path in paths:
            await writer.add(path.name, path)
        blobs = await writer.finish()
    assert list(blobs.values()) == [blob_id(b"%d\n" % i) for i in range(2000)]


async def test_a_merge_takes_the_origin_as_another_store_left_it(world: CanvasWorld) -> None:
    """Between a store and its merge, another store of the same link (into another folder)
    may commit a newer snapshot: the merge then brings that one, and says so."""
    resolved = await resolve_link(parse_link(world.url()), world.credentials, world.config)
    async with open_source(resolved, world.config) as source:
        first = await store(source, world.config, NullProgress())
        world.course.files.update_file("README.md", b"newer\n")
        world.course.files.add_file("new.txt", b"new\n")
        second = await store(source, world.config, NullProgress())
    assert at_head(second) is second
    moved = at_head(first)
    assert moved.commit == second.commit == moved.head
    assert {p: e.blob for p, e in moved.entries.items()} == {
        p: e.blob for p, e in second.entries.items()
    }
    assert moved.entries["Week 1/intro.ipynb"] == first.entries["Week 1/intro.ipynb"]


async def test_the_journal_gives_only_files_git_has(origin: LocalOrigin, tmp_path: Path) -> None:
    """What an interrupted store recorded is reused only when git has that blob, with that
    size, and the manifest does not have the change key already; a line cut short is skipped."""
    origin.ensure()
    (tmp_path / "a").write_bytes(b"stored\n")
    async with origin.blob_writer() as writer:
        await writer.add("a", tmp_path / "a")
        [blob] = (await writer.finish()).values()
    missing = blob_id(b"never stored\n")
    with Journal(origin.journal_path) as journal:
        journal.add("key:a", 7, blob)
        journal.add("key:missing", 13, missing)
        journal.add("key:wrong-size", 8, blob)
        journal.add("key:in-manifest", 7, blob)
    with origin.journal_path.open("a") as cut:
        cut.write('{"change_key": "key:cut", "size": 7, "bl')
    manifest = Manifest(None, {"x.txt": ManifestEntry("key:in-manifest", 7, blob)})
    assert origin.stored_earlier(manifest) == {"key:a": ManifestEntry("key:a", 7, blob)}
