"""What the cold pull would measure with the core changes the benchmark report proposes.

    python -m benchmarks.proposals [--runs 3] [--latency 30]

Each variant runs in a fresh process with the proposed change monkeypatched in (nothing in
`src/` is modified), against the same fakes and sizes as `python -m benchmarks --only cold`.
Delete a patch here once the change has landed in the core.

- engine8: `SyncConfig.concurrency` 4 -> 8, the session's own maximum.
- hops: `ReadOnlySession._send` reads Canvas's `X-Rate-Limit-Remaining` from the 302 of a file
  download (it only looked at the file store's final response, which has no such header and
  counted as "healthy", raising the limit).
- proportional: `AdaptiveLimit.observe_remaining` sets the limit to remaining ÷ 50 (Canvas's
  up-front cost per request), instead of 1 below 200 and +1 above 400.
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
    "engine8 + hops": ["engine8", "hops"],
    "engine8 + hops + proportional": ["engine8", "hops", "proportional"],
    "engine8 + hops + proportional + window0": ["engine8", "hops", "proportional", "window0"],
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
        ["as is", "engine8", "engine8 + window0"],
    ),
}


def patch(names: list[str]) -> None:
    from contextlib import suppress as _suppress

    from yarl import URL

    from privatepuller.auth import backoff, session
    from privatepuller.auth.backoff import Verdict
    from privatepuller.auth.origin import Origin
    from privatepuller.errors import DownloadFailed
    from privatepuller.sync import origin

    if "hops" in names:

        async def _send(self, method, url, headers):  # type: ignore[no-untyped-def]
            # ReadOnlySession._send, plus the two lines marked "+".
            for _ in range(session.MAX_REDIRECTS + 1):
                hop_origin = Origin.of(url).require_secure()
                hop_headers = (
                    {**self._extra_headers, **headers} if hop_origin == self.origin else {}
                )
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

    if "proportional" in names:

        async def observe_remaining(self, remaining, low):  # type: ignore[no-untyped-def]
            async with self._changed:
                allowed = max(1, min(self.maximum, int(remaining // 50)))
                if allowed < self.limit:
                    self.limit = allowed
                elif allowed > self.limit:
                    self.limit += 1
                    self._changed.notify_all()

        backoff.AdaptiveLimit.observe_remaining = observe_remaining  # type: ignore[method-assign]

    if "window0" in names:
        ensure = origin.LocalOrigin.ensure

        def ensure_without_deltas(self):  # type: ignore[no-untyped-def]
            ensure(self)
            self.git("config", "pack.window", "0")

        origin.LocalOrigin.ensure = ensure_without_deltas  # type: ignore[method-assign]


def one(scenario: str, variant: str, runs: int, latency: float) -> dict:
    provider_name, count, folders, limits, _ = SCENARIOS[scenario]
    names = VARIANTS[variant]
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
    print()
    print("| scenario | variant | time | throttled responses |")
    print("|---|---|---|---|")
    for scenario, (*_, variants) in SCENARIOS.items():
        for variant in variants:
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
