"""Issue 13's `service` workload: students pull one Drive folder through the hub's service.

The service is the real one (`python -m privatepuller.hub.service`, in its own process, with
the fake Drive's service-account key and its own disk), authenticating each request with
JupyterHub's `HubAuth` against a stand-in for the hub's API (tokens -> users). Students are
`pull()`s in this process, as in the `students` workload, each with its own home and target,
holding no Google credential: they resolve, sync and fetch through the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from .fakes import FakeServer
from .providers import Tree, counters
from .report import Row, seconds

ACCESS_SCOPE = "access:services!service=privatepuller"
PREFIX = "/services/privatepuller/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StubHub:
    """The hub's API as the service's HubAuth asks it: who a token is, and their groups."""

    def __init__(self) -> None:
        self.port = free_port()
        self.service_token = secrets.token_hex(16)
        self.users: dict[str, str] = {}  # token -> name
        self.checks = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def add_student(self, name: str) -> str:
        token = secrets.token_hex(16)
        self.users[token] = name
        return token

    async def _user(self, request: web.Request) -> web.Response:
        self.checks += 1
        token = request.headers.get("Authorization", "").partition(" ")[2]
        if token not in self.users:
            return web.json_response({"status": 403, "message": "no such token"}, status=403)
        name = self.users[token]
        model = {"kind": "user", "name": name, "groups": [], "scopes": [ACCESS_SCOPE]}
        return web.json_response(model)

    async def _user_model(self, request: web.Request) -> web.Response:
        return web.json_response({"name": request.match_info["name"], "groups": []})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/hub/api/user", self._user)
        app.router.add_get("/hub/api/users/{name}", self._user_model)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> StubHub:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub/api"


@contextlib.contextmanager
def running_service(
    hub: StubHub, key_file: Path, api_url: str, home: Path, min_relist_seconds: float
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The real service in its own process; yields its URL (with prefix) and the process."""
    port = free_port()
    settings = {"home": str(home), "min_relist_seconds": min_relist_seconds}
    env = {
        **os.environ,
        "JUPYTERHUB_SERVICE_NAME": "privatepuller",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
        "JUPYTERHUB_API_URL": hub.api_url,
        "JUPYTERHUB_API_TOKEN": hub.service_token,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        "GOOGLE_DRIVE_API_URL": api_url,
        "PRIVATEPULLER_SERVICE_SETTINGS": json.dumps(settings),
    }
    log = (home.parent / "service.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "privatepuller.hub.service"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if process.poll() is not None:
                raise RuntimeError(
                    f"the service exited: {(home.parent / 'service.log').read_text()}"
                )
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}{PREFIX}", process
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()
        log.close()


def peak_rss_mb(process: subprocess.Popen[bytes]) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class ServiceRun:
    ok: list[bool]
    seconds: list[float]
    errors: list[str]
    drive_requests: int
    service_peak_rss_mb: float
    hub_checks: int


def click_through_service(
    tree: Tree,
    server: FakeServer,
    work: Path,
    students: int,
    spread: float,
    key_file: Path,
    min_relist_seconds: float = 30.0,
) -> ServiceRun:
    """`students` clicks spread over `spread` seconds, all through one service."""
    from privatepuller.credentials.sources import EnvCredentialSource
    from privatepuller.pull import pull
    from privatepuller.sync.config import SyncConfig

    api_url: str = server.info["api_url"]
    with StubHub() as hub:
        tokens = [hub.add_student(f"student{i:03}") for i in range(students)]
        home = work / "service-home"
        home.mkdir(parents=True, exist_ok=True)
        with running_service(hub, key_file, api_url, home, min_relist_seconds) as (url, proc):
            server.call("reset")

            async def everyone() -> list[tuple[bool, float, str]]:
                loop = asyncio.get_running_loop()
                loop.set_default_executor(ThreadPoolExecutor(max_workers=min(students + 4, 64)))

                async def one(i: int) -> tuple[bool, float, str]:
                    await asyncio.sleep(i * spread / students)
                    folder = work / f"student{i:03}"
                    started = time.perf_counter()
                    try:
                        report = await pull(
                            tree.url,
                            folder / "Week",
                            credentials=EnvCredentialSource({}),  # no Google credential
                            config=SyncConfig(home=folder / ".privatepuller"),
                        )
                    except Exception as error:  # a failed student is a result
                        took = time.perf_counter() - started
                        return False, took, f"{type(error).__name__}: {error}"
                    ok = len(report.added) == len(tree.files)
                    return ok, time.perf_counter() - started, "" if ok else f"partial: {report}"

                return await asyncio.gather(*(one(i) for i in range(students)))

            # The students share this process's environment, so here they share one server
            # token (on a hub each server has its own; the service checks each token with
            # the hub once, then from its cache).
            os.environ["PRIVATEPULLER_SERVICE_URL"] = url
            os.environ["JUPYTERHUB_API_TOKEN"] = tokens[0]
            try:
                results = asyncio.run(everyone())
            finally:
                os.environ.pop("PRIVATEPULLER_SERVICE_URL", None)
                os.environ.pop("JUPYTERHUB_API_TOKEN", None)
            rss = peak_rss_mb(proc)
        return ServiceRun(
            [r[0] for r in results],
            [r[1] for r in results],
            [r[2] for r in results],
            int(counters(server)["requests"]),
            rss,
            hub.checks,
        )


def one_sync_requests(tree: Tree, server: FakeServer, work: Path) -> int:
    """Drive requests of one direct sync of the folder (the service's unit of work)."""
    from .workloads import our_pull

    server.call("reset")
    asyncio.run(our_pull(tree, work / "one" / "Week", work / "one" / ".privatepuller"))
    return int(counters(server)["requests"])


def service_rows(
    server: FakeServer, tree: Tree, key_file: Path, work: Path, students: int, spread: float,
    many: int,
) -> list[Row]:  # fmt: skip
    from .workloads import percentile

    one = one_sync_requests(tree, server, work)
    run = click_through_service(tree, server, work / "spread", students, spread, key_file)
    p50, p95 = percentile(run.seconds, 0.5), percentile(run.seconds, 0.95)
    ok = sum(run.ok)
    met = ok == students and p95 <= 10.0 and run.drive_requests <= 2 * one
    rows = [
        Row(
            "service",
            "drive",
            f"{students} students in {spread:g} s through the hub's service, "
            f"{len(tree.files)} files",
            f"{ok}/{students} ok · p50 {seconds(p50)} · p95 {seconds(p95)} · "
            f"{run.drive_requests} Drive requests (one sync: {one}) · "
            f"service peak {run.service_peak_rss_mb:.0f} MiB",
            "direct: see the students row",
            "—",
            f"{students}/{students} succeed, p95 ≤ 10 s, Drive requests ≤ 2 × one sync's",
            met,
            {
                "students": students,
                "ok": ok,
                "p50_s": p50,
                "p95_s": p95,
                "drive_requests": run.drive_requests,
                "one_sync_requests": one,
                "service_peak_rss_mb": run.service_peak_rss_mb,
                "errors": sorted({e for e in run.errors if e})[:5],
            },
        )
    ]
    burst = click_through_service(tree, server, work / "burst", many, 0.0, key_file)
    p95_burst = percentile(burst.seconds, 0.95)
    rows.append(
        Row(
            "service",
            "drive",
            f"{many} students at once through the hub's service, {len(tree.files)} files",
            f"{sum(burst.ok)}/{many} ok · p95 {seconds(p95_burst)} · "
            f"service peak {burst.service_peak_rss_mb:.0f} MiB",
            "—",
            "—",
            "reported (this machine)",
            sum(burst.ok) == many,
            {
                "students": many,
                "ok": sum(burst.ok),
                "p50_s": percentile(burst.seconds, 0.5),
                "p95_s": p95_burst,
                "drive_requests": burst.drive_requests,
                "one_sync_requests": one,
                "service_peak_rss_mb": burst.service_peak_rss_mb,
                "errors": sorted({e for e in burst.errors if e})[:5],
            },
        )
    )
    return rows
