"""What the cold pull would measure with the core changes the benchmark report proposes.

    python -m benchmarks.proposals [--runs 3] [--latency 30]

Each variant runs in a fresh process with the proposed change monkeypatched in (nothing in
`src/` is modified), against the same fakes and sizes as `python -m benchmarks --only cold`.
A patch whose change has landed in the core is skipped (see `landed()`).

Landed in 884800e: engine8, hops (the lead's version reads the header from any hop) and
proportional (the lead's version sets the limit at once, both ways).

- engine8: `SyncConfig.concurrency` 4 -> 8, the session's own maximum.
- hops: `ReadOnlySession._send` reads Canvas's `X-Rate-Limit-Remaining` from the 302 of a file
  download (it only looked at the file store's final response, which has no such header and
  counted as "healthy", raising the limit).
- proportional: `AdaptiveLimit.observe_remaining` sets the limit to remaining ÷ 50 (Canvas's
  up-front cost per request), instead of 1 below 200 and +1 above 400.
- overlap: the sync engine hands each downloaded file to one long-running
  `git hash-object -w --stdin-paths` as soon as it lands, instead of hashing all of them after
  the last download.
- window0: the local origin is configured with `pack.window 0`, so nbgitpuller's clone does not
  search for deltas between hundreds of unrelated files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from contextlib import suppress
from pathlib import Path

from .fakes import FakeServer
from .providers import CanvasProvider, DriveProvider, counters
from .workloads import (
    CANVAS_DOCUMENTED,
    CANVAS_QUARTER,
    DRIVE_PER_USER,
    REPO,
    KiB,
    our_pull,
    spread_files,
)

VARIANTS = {
    "as is": [],
    "engine8": ["engine8"],
    "engine8 + window0": ["engine8", "window0"],
    "engine8 + window0 + overlap": ["engine8", "window0", "overlap"],
    "engine8 + hops": ["engine8", "hops"],
    "engine8 + hops + proportional": ["engine8", "hops", "proportional"],
    "engine8 + hops + proportional + window0": ["engine8", "hops", "proportional", "window0"],
    "engine8 + hops + proportional + window0 + overlap": [
        "engine8",
        "hops",
        "proportional",
        "window0",
        "overlap",
    ],
    "hops": ["hops"],
    "hops + proportional": ["hops", "proportional"],
}
SCENARIOS = {
    # name: (provider, files, folders, throttle or quota, variants)
    "canvas, 500 files, documented bucket": (
        "canvas",
        500,
        20,
        CANVAS_DOCUMENTED,
        [
            "as is",
            "engine8",
            "engine8 + window0",
            "engine8 + hops",
            "engine8 + hops + proportional",
            "engine8 + hops + proportional + window0",
            "engine8 + hops + proportional + window0 + overlap",
        ],
    ),
    "canvas, 20 files, ¼ bucket": (
        "canvas",
        20,
        2,
        CANVAS_QUARTER,
        ["as is", "hops", "hops + proportional", "engine8 + hops + proportional"],
    ),
    "drive, 500 files, 200 req/s": (
        "drive",
        500,
        20,
        DRIVE_PER_USER,
        ["as is", "engine8", "engine8 + window0", "engine8 + window0 + overlap"],
    ),
}


def patch_hops() -> None:
    """ReadOnlySession: Canvas's bucket level rides on its 302s; the file store says nothing."""
    from contextlib import suppress as _suppress

    from yarl import URL

    from privatepuller.auth import session
    from privatepuller.auth.backoff import Verdict
    from privatepuller.auth.origin import Origin
    from privatepuller.errors import DownloadFailed

    async def _send(self, method, url, headers):  # type: ignore[no-untyped-def]
        # ReadOnlySession._send, plus the two lines marked "+".
        for _ in range(session.MAX_REDIRECTS + 1):
            hop_origin = Origin.of(url).require_secure()
            hop_headers = {**self._extra_headers, **headers} if hop_origin == self.origin else {}
            if hop_origin == self.origin:
                hop_headers["Authorization"] = f"Bearer {await self._tokens.token()}"
            elif "Range" in headers:
                hop_headers["Range"] = headers["Range"]
            self.stats.requests += 1
            response = await self._http.request(
                method, url, headers=hop_headers, allow_redirects=False
            )
            location = response.headers.get("Location")
            if response.status in session.REDIRECT_STATUSES and location:
                if hop_origin == self.origin:  # +
                    await self._observe(response, Verdict.OK)  # +
                response.release()
                url = url.join(URL(location))
                continue
            return response
        raise DownloadFailed("redirected too many times")

    async def _observe(self, response, verdict):  # type: ignore[no-untyped-def]
        remaining = response.headers.get("X-Rate-Limit-Remaining")
        if remaining is not None:
            with _suppress(ValueError):
                await self._limit.observe_remaining(float(remaining), self.policy.low_remaining)
        # + only our own origin's answers say anything about our rate limit
        elif verdict is Verdict.OK and Origin.of(response.url) == self.origin:
            await self._limit.healthy()

    session.ReadOnlySession._send = _send  # type: ignore[method-assign]
    session.ReadOnlySession._observe = _observe  # type: ignore[method-assign]


def patch_proportional() -> None:
    """AdaptiveLimit: as many requests in flight as the bucket has room for (50 each)."""
    from privatepuller.auth import backoff

    async def observe_remaining(self, remaining, low):  # type: ignore[no-untyped-def]
        async with self._changed:
            allowed = max(1, min(self.maximum, int(remaining // 50)))
            if allowed < self.limit:
                self.limit = allowed
            elif allowed > self.limit:
                self.limit += 1
                self._changed.notify_all()

    backoff.AdaptiveLimit.observe_remaining = observe_remaining  # type: ignore[method-assign]


def patch_overlap() -> None:
    """The engine hashes each file into git as soon as it has landed."""
    import os
    import shutil
    import uuid

    from privatepuller.sync import engine
    from privatepuller.sync.manifest import Skipped
    from privatepuller.sync.origin import GIT_ENV

    async def _download_all(source, origin, files, config, progress):  # type: ignore[no-untyped-def]
        # engine._download_all (each change key once), but every file is handed to one
        # long-running `git hash-object -w --stdin-paths` as soon as it has landed.
        first_of_key: dict = {}
        for file in files:
            first_of_key.setdefault(file.change_key, file)
        staging = origin.staging_dir / uuid.uuid4().hex
        staging.mkdir(parents=True)
        env = {**os.environ, **GIT_ENV, "HOME": str(origin.path)}
        git = await asyncio.create_subprocess_exec(
            "git", "--git-dir", str(origin.path), "hash-object", "-w", "--stdin-paths",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        semaphore = asyncio.Semaphore(config.concurrency)
        sizes: dict = {}
        landed: list = []
        unavailable: list = []

        async def one(index, file):  # type: ignore[no-untyped-def]
            dest = staging / str(index)
            async with semaphore:
                try:
                    size = await source.download(
                        file, dest, max_bytes=config.max_file_size, on_bytes=progress.advanced
                    )
                except engine.SkipFile as skip:
                    unavailable.extend(
                        Skipped(f.path, skip.reason, skip.detail)
                        for f in files
                        if f.change_key == file.change_key
                    )
                    return
            sizes[file.change_key] = size
            landed.append(file.change_key)
            git.stdin.write(f"{dest}\n".encode())
            progress.file_done(file.path, size)

        try:
            await asyncio.gather(*(one(i, f) for i, f in enumerate(first_of_key.values())))
            out, _ = await git.communicate()
            return dict(zip(landed, out.decode().split(), strict=True)), sizes, unavailable
        finally:
            if git.returncode is None:
                git.kill()
                await git.wait()
            shutil.rmtree(staging, ignore_errors=True)

    engine._download_all = _download_all


def patch_origin_config(settings: list[tuple[str, str]]) -> None:
    """Git settings of every local origin."""
    from privatepuller.sync import origin

    ensure = origin.LocalOrigin.ensure

    def ensure_configured(self):  # type: ignore[no-untyped-def]
        ensure(self)
        for key, value in settings:
            self.git("config", key, value)

    origin.LocalOrigin.ensure = ensure_configured  # type: ignore[method-assign]


def landed() -> set[str]:
    """Proposals the core already has (their patches are then skipped)."""
    from privatepuller.auth.backoff import BackoffPolicy
    from privatepuller.sync.engine import SyncConfig

    done = set()
    if SyncConfig.__dataclass_fields__["concurrency"].default >= 8:
        done.add("engine8")
    if "upfront_cost" in BackoffPolicy.__dataclass_fields__:  # 884800e: hops + proportional
        done |= {"hops", "proportional"}
    return done


def patch(names: list[str]) -> None:
    names = [n for n in names if n not in landed()]
    if "hops" in names:
        patch_hops()
    if "proportional" in names:
        patch_proportional()
    if "overlap" in names:
        patch_overlap()
    settings = []
    if "window0" in names:
        settings.append(("pack.window", "0"))
    if "compress0" in names:
        settings.append(("core.compression", "0"))
    if settings:
        patch_origin_config(settings)


def one(scenario: str, variant: str, runs: int, latency: float) -> dict:
    provider_name, count, folders, limits, _ = SCENARIOS[scenario]
    names = [] if variant == "as is" else variant.split(" + ")  # patch names
    patch(names)
    config = {"concurrency": 8} if "engine8" in names else {}
    files = spread_files("Course materials", count, folders, 50 * KiB)
    times, throttled = [], []
    with tempfile.TemporaryDirectory() as tmp:
        if provider_name == "canvas":
            server_cm = FakeServer("canvas", latency=latency, throttle=limits)
        else:
            server_cm = FakeServer("drive", latency=latency, quota=limits)
        with server_cm as server:
            for run in range(runs):
                if provider_name == "canvas":
                    tree = CanvasProvider(server).tree(files, course=f"run {run}")
                else:
                    tree = DriveProvider(server, Path(tmp)).tree(files)
                work = Path(tmp) / f"run{run}"
                server.call("reset")
                _, seconds = asyncio.run(our_pull(tree, work / "t", work / "h", **config))
                times.append(seconds)
                throttled.append(counters(server)["throttled"])
    return {"times": times, "throttled": throttled}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.proposals")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=30.0, metavar="MS")
    parser.add_argument("--one", nargs=2, metavar=("SCENARIO", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.runs, args.latency / 1000)))
        return
    print(
        f"cold pull, latency {args.latency:g} ms, {args.runs} runs each: median (all) · throttled"
    )
    if landed():
        print(f"already in the core (patch skipped): {', '.join(sorted(landed()))}")
    print()
    print("| scenario | variant | time | throttled responses |")
    print("|---|---|---|---|")
    already = landed()
    for scenario, (*_, variants) in SCENARIOS.items():
        seen: set[frozenset[str]] = set()
        for variant in variants:
            effective = frozenset(VARIANTS[variant]) - already
            if effective in seen:
                continue  # the same code as a variant above, now that some have landed
            seen.add(effective)
            variant = " + ".join(sorted(effective)) or "as is"
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.proposals", "--runs", str(args.runs),
                 "--latency", str(args.latency), "--one", scenario, variant],
                cwd=REPO, capture_output=True, text=True, check=False,
            )  # fmt: skip
            result = None
            with suppress(ValueError, IndexError):
                result = json.loads(done.stdout.strip().splitlines()[-1])
            if result is None:
                print(f"| {scenario} | {variant} | failed: {done.stderr.strip()[-200:]} | |")
                continue
            times = result["times"]
            shown = " ".join(f"{t:.2f}" for t in times)
            print(
                f"| {scenario} | {variant} | {statistics.median(times):.2f} s ({shown}) | "
                f"{' '.join(map(str, result['throttled']))} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
