"""The fake Canvas and fake Drive, each in its own process with its own event loop.

The clients under test (our asyncio `pull()`, the synchronous baselines) run in the benchmark's
process; the fake runs in a child process, so its CPU time does not compete with the client
for the GIL and its memory never counts as the client's. The benchmark drives the fake through
a pipe: `server.call("method", ...)` runs a method of the `CanvasWorld` / `DriveWorld` below on
the fake's loop (between requests, never concurrently with a handler) and returns its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import re
import secrets
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

KiB = 1024


@dataclass(frozen=True)
class FileSpec:
    path: str  # "Course materials/Week 01/file_001.csv"
    size: int


class FakeServer:
    """A fake provider in a child process; use as a context manager."""

    def __init__(self, kind: str, **options: Any) -> None:
        if kind not in WORLDS:
            raise ValueError(kind)
        self.kind = kind
        self.options = options
        self.info: dict[str, Any] = {}
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None

    def __enter__(self) -> FakeServer:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve, args=(child, self.kind, self.options), daemon=True
        )
        self._process.start()
        child.close()
        self._conn = parent
        self.info = self._receive()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=5)
            self._process = None

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        assert self._conn is not None, "use `with FakeServer(...)`"
        self._conn.send((method, args, kwargs))
        return self._receive()

    def _receive(self) -> Any:
        assert self._conn is not None
        status, value = self._conn.recv()
        if status == "error":
            raise RuntimeError(f"fake {self.kind} failed:\n{value}")
        return value


def _serve(conn: Connection, kind: str, options: dict[str, Any]) -> None:
    asyncio.run(_serve_async(conn, kind, options))


async def _serve_async(conn: Connection, kind: str, options: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    world = WORLDS[kind](**options)
    await world.start()
    conn.send(("ok", world.info()))
    try:
        while True:
            try:
                message = await loop.run_in_executor(None, conn.recv)
            except EOFError:
                break
            if message is None:
                break
            method, args, kwargs = message
            try:
                result = getattr(world, method)(*args, **kwargs)
                if asyncio.iscoroutine(result):
                    result = await result
                conn.send(("ok", result))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    finally:
        await world.stop()


def failed(status: int | None) -> bool:
    """A request that did not succeed: no status (reset, stalled) or a 4xx/5xx."""
    return status is None or status == 0 or status >= 400


class CanvasWorld:
    """Server side of a fake Canvas used by the benchmark."""

    def __init__(
        self,
        latency: float = 0.03,
        throttle: dict[str, Any] | None = None,
        throttle_status: int = 403,
    ) -> None:
        from privatepuller.testing.canvas.fake import FakeCanvas, ThrottlePolicy

        self.canvas = FakeCanvas(
            latency=latency,
            throttle=ThrottlePolicy(**(throttle or {})),
            throttle_status=throttle_status,
        )
        self.courses: dict[int, Any] = {}

    async def start(self) -> None:
        await self.canvas.start()

    async def stop(self) -> None:
        await self.canvas.stop()

    def info(self) -> dict[str, Any]:
        policy = self.canvas.buckets.policy
        return {
            "base_url": self.canvas.base_url,
            "filestore_url": self.canvas.filestore_url,
            "throttle": {
                "high_water_mark": policy.high_water_mark,
                "leak_rate": policy.leak_rate,
                "preflight_cost": policy.preflight_cost,
                "cost_per_request": policy.cost_per_request,
                "maximum": policy.maximum,
            },
        }

    def set_throttle(self, **throttle: Any) -> None:
        from privatepuller.testing.canvas.throttle import LeakyBuckets, ThrottlePolicy

        self.canvas.buckets = LeakyBuckets(ThrottlePolicy(**throttle))

    def build_course(self, name: str, files: list[FileSpec], students: int = 1) -> dict[str, Any]:
        """A course with `files` (synthetic bytes, streamed) and `students` enrolled students."""
        course = self.canvas.add_course(name)
        self.courses[course.id] = course
        for spec in files:
            course.files.add_file(spec.path, size=spec.size)
        tokens = []
        for i in range(students):
            user = self.canvas.add_user(f"Student {i}")
            course.enroll(user)
            tokens.append(user.token)
        return {"course_id": course.id, "tokens": tokens}

    def change_files(self, course_id: int, paths: list[str]) -> None:
        """The instructor uploads new versions (same size, new bytes, later updated_at)."""
        space = self.courses[course_id].files
        for path in paths:
            space.update_file(path, size=space.file(path).size)

    def reset(self) -> None:
        """Forget recorded requests and empty every rate-limit bucket."""
        from privatepuller.testing.canvas.throttle import LeakyBuckets

        self.canvas.requests.clear()
        self.canvas.throttled_count = 0
        self.canvas.buckets = LeakyBuckets(self.canvas.buckets.policy)

    def counters(self) -> dict[str, Any]:
        """What the fake saw since the last reset."""
        requests = self.canvas.requests
        served = 0
        downloads = 0
        for r in requests:
            if r.origin == "filestore" and r.status in (200, 206):
                match = re.match(r"/blob/([^?]+)", r.path_qs)
                file = self.canvas.registry.files_by_uuid.get(match.group(1)) if match else None
                downloads += 1
                served += file.size if file is not None else 0
        listing = [
            r
            for r in requests
            if r.origin == "canvas"
            and re.match(r"/api/v1/\w+/[^/]+/(files|folders)(\?|$)", r.path_qs)
            and not failed(r.status)
        ]
        return {
            "requests": len(requests),
            "api_requests": sum(1 for r in requests if r.origin == "canvas"),
            "listing_pages": len(listing),
            "downloads": downloads,
            "bytes": served,
            "failed": sum(1 for r in requests if failed(r.status)),
            "throttled": self.canvas.throttled_count,
        }


class DriveWorld:
    """Server side of a fake Drive used by the benchmark."""

    def __init__(self, latency: float = 0.03, quota: dict[str, Any] | None = None) -> None:
        from privatepuller.testing.drive.fake import FakeDrive, QuotaPolicy

        self.drive = FakeDrive(
            latency=latency, quota=QuotaPolicy(**quota) if quota is not None else None
        )
        self.key: dict[str, str] = {}
        self.paths: dict[str, dict[str, str]] = {}  # folder id -> {path: file id}

    async def start(self) -> None:
        await self.drive.start()
        self.key = self.drive.service_account_key()

    async def stop(self) -> None:
        await self.drive.stop()

    def info(self) -> dict[str, Any]:
        quota = self.drive.quota
        return {
            "api_url": self.drive.api_url,
            "service_account_key": self.key,
            "email": self.key["client_email"],
            "quota": None if quota is None else {"rate": quota.rate, "burst": quota.burst},
        }

    def set_quota(self, quota: dict[str, Any] | None) -> None:
        from privatepuller.testing.drive.fake import QuotaPolicy

        self.drive.quota = QuotaPolicy(**quota) if quota is not None else None

    def token(self) -> str:
        """An access token of the hub's service account (what the hub hands a user server)."""
        return self.drive.issue_token(self.key["client_email"])

    def build_folder(self, files: list[FileSpec], synthetic: bool = False) -> dict[str, Any]:
        """A folder tree shared with the service account; `files` paths start with its name."""
        email = self.key["client_email"]
        root_name = files[0].path.split("/")[0]
        root = self.drive.add_folder(root_name, share_with=email)
        folders = {root_name: root.id}
        ids: dict[str, str] = {}
        for spec in files:
            *parents, name = spec.path.split("/")
            for depth in range(2, len(parents) + 1):
                key = "/".join(parents[:depth])
                if key not in folders:
                    folders[key] = self.drive.add_folder(
                        parents[depth - 1], folders["/".join(parents[: depth - 1])]
                    ).id
            parent = folders["/".join(parents)]
            if synthetic:
                item = self.drive.add_file(name, parent, size=spec.size)
            else:
                item = self.drive.add_file(name, parent, secrets.token_bytes(spec.size))
            ids[spec.path] = item.id
        self.paths[root.id] = ids
        return {"folder_id": root.id}

    def change_files(self, folder_id: str, paths: list[str]) -> None:
        for path in paths:
            file_id = self.paths[folder_id][path]
            size = self.drive.item(file_id).size or 0
            self.drive.update_file(file_id, secrets.token_bytes(size))

    def reset(self) -> None:
        self.drive.requests.clear()
        self.drive.token_requests.clear()
        self.drive.throttled_count = 0
        self.drive.quota = self.drive.quota  # a full bucket again

    def counters(self) -> dict[str, Any]:
        requests = self.drive.requests
        served = 0
        downloads = 0
        for r in requests:
            if r.query.get("alt") == "media" and r.status in (200, 206):
                downloads += 1
                file_id = r.path.rsplit("/", 1)[-1]
                try:
                    item = self.drive.item(file_id)
                except KeyError:
                    continue
                served += _range_length(r.range, item.size or 0)
        listing = [r for r in requests if r.path.endswith("/files") and not failed(r.status)]
        return {
            "requests": len(requests),
            "api_requests": len(requests),
            "token_requests": len(self.drive.token_requests),
            "listing_pages": len(listing),
            "downloads": downloads,
            "bytes": served,
            "failed": sum(1 for r in requests if failed(r.status)),
            "throttled": self.drive.throttled_count,
        }


def _range_length(header: str | None, size: int) -> int:
    """Bytes a `Range: bytes=a-b` request of a `size`-byte file was served."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not match:
        return size
    first, last = match.group(1), match.group(2)
    if not first:  # suffix range
        return min(int(last or 0), size)
    end = min(int(last), size - 1) if last else size - 1
    return max(0, end - int(first) + 1)


WORLDS: dict[str, Callable[..., Any]] = {"canvas": CanvasWorld, "drive": DriveWorld}
