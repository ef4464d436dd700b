"""The workloads of issue #6, each against a fake provider, ours and the baseline in one run."""

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fakes import FakeServer, FileSpec
from .memory import TreeSampler
from .providers import CanvasProvider, DriveProvider, Tree, counters
from .report import Row, mib, seconds, size, times

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
REPO = Path(__file__).resolve().parent.parent

# Workload ids (for --only), in the order they run and print.
WORKLOADS = ("cold", "resync", "changed", "large", "students", "service")
PROVIDERS = ("canvas", "drive")

# Canvas's leaky bucket as Instructure documents it for its cloud (the fake's defaults).
CANVAS_DOCUMENTED = {"high_water_mark": 700.0, "leak_rate": 10.0, "preflight_cost": 50.0}
# The same bucket at a quarter of its capacity and drain: makes each student throttle itself.
CANVAS_QUARTER = {
    "high_water_mark": 175.0,
    "maximum": 200.0,
    "leak_rate": 2.5,
    "preflight_cost": 50.0,
}
# Drive for one student: the documented per-user default, 12,000 queries per 60 s.
DRIVE_PER_USER = {"rate": 200.0, "burst": 200}
# Drive for fifty students: the one shared quota (rclone's "10 transactions per second").
DRIVE_SHARED = {"rate": 10.0, "burst": 100}


@dataclass(frozen=True)
class Sizes:
    cold_files: int = 500
    cold_folders: int = 20
    cold_size: int = 50 * KiB
    changed: int = 5
    large: int = GiB
    students: int = 50
    student_files: int = 20
    student_folders: int = 2
    student_size: int = 50 * KiB
    spread: float = 60.0  # the students' clicks are spread evenly over this many seconds
    many: int = 500  # students clicking at once through the hub's service


FULL = Sizes()
QUICK = Sizes(
    cold_files=20,
    cold_folders=4,
    cold_size=4 * KiB,
    large=8 * MiB,
    students=4,
    student_files=4,
    spread=0.5,
    many=8,
)


@dataclass
class Options:
    latency: float
    sizes: Sizes
    workdir: Path
    only: frozenset[str]
    providers: tuple[str, ...]
    repeat: int = 1  # cold pulls of each (ours, baseline); the table shows the median
    log: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)  # printed under the table


def spread_files(root: str, count: int, folders: int, nbytes: int) -> list[FileSpec]:
    """`count` files of `nbytes`, dealt round-robin into `folders` subfolders of `root`."""
    width = len(str(count))
    return [
        FileSpec(f"{root}/Week {i % folders + 1:02}/file_{i:0{width}}.csv", nbytes)
        for i in range(count)
    ]


# -- running our pull ------------------------------------------------------------------------


async def our_pull(
    tree: Tree, target: Path, home: Path, student: int = 0, **config: Any
) -> tuple[Any, float]:
    from privatepuller.credentials.sources import EnvCredentialSource
    from privatepuller.pull import pull
    from privatepuller.sync.config import SyncConfig

    started = time.perf_counter()
    report = await pull(
        tree.url,
        target,
        credentials=EnvCredentialSource(tree.envs[student]),
        config=SyncConfig(home=home, **config),
    )
    return report, time.perf_counter() - started


def session_concurrency(provider: str) -> int:
    """Our session's maximum concurrency for the provider (what `pull()` configures)."""
    from privatepuller.http.session import SessionOptions

    return int(SessionOptions.__dataclass_fields__["concurrency"].default)


def download_concurrency() -> int:
    from privatepuller.sync.config import SyncConfig

    return SyncConfig().concurrency


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)


# -- cold pull, re-sync, 5 changed -------------------------------------------------------------


def resync_both(
    server: FakeServer, tree: Tree, target: Path, home: Path, dest: Path
) -> tuple[Any, float, dict[str, Any], float, dict[str, Any]]:
    """Our pull into `target` again, then the baseline script into `dest` again: our report,
    and each one's time and the fake's counters."""
    server.call("reset")
    report, ours_s = asyncio.run(our_pull(tree, target, home))
    ours = counters(server)
    server.call("reset")
    started = time.perf_counter()
    tree.baseline(dest)
    return report, ours_s, ours, time.perf_counter() - started, counters(server)


def repeat_workloads(
    provider: str, server: FakeServer, tree: Tree, opts: Options, root: str
) -> list[Row]:
    sizes = opts.sizes
    work = opts.workdir / provider / "repeat"
    rows: list[Row] = []
    n = len(tree.files)

    # Cold pull, `repeat` times each, ours and the baseline taking turns (so that a change in
    # the machine's load hits both); the first pull of each is the one the re-syncs update.
    # Both must happen for the re-syncs, even when only those are reported.
    ours_runs: list[tuple[float, dict[str, Any]]] = []
    base_runs: list[tuple[float, dict[str, Any]]] = []
    for run in range(opts.repeat):
        opts.log(f"{provider}: cold pull {run + 1}/{opts.repeat}, ours ({n} files)")
        server.call("reset")
        target = work / f"ours{run}" / root
        report, ours_s = asyncio.run(our_pull(tree, target, work / f"ours{run}" / ".privatepuller"))
        assert report.downloaded_files == n == count_files(target), (report, count_files(target))
        ours_runs.append((ours_s, counters(server)))
        opts.log(f"{provider}: cold pull {run + 1}/{opts.repeat}, baseline")
        server.call("reset")
        started = time.perf_counter()
        result = tree.baseline(work / f"baseline{run}" / root)
        base_runs.append((time.perf_counter() - started, counters(server)))
        assert result.files == n, result
    home, target = work / "ours0" / ".privatepuller", work / "ours0" / root
    dest = work / "baseline0" / root
    if "cold" in opts.only:
        ours_s = statistics.median(t for t, _ in ours_runs)
        base_s = statistics.median(t for t, _ in base_runs)
        ours, base = ours_runs[0][1], base_runs[0][1]
        ours_failed = max(c["failed"] for _, c in ours_runs)
        base_failed = max(c["failed"] for _, c in base_runs)
        ratio = base_s / ours_s
        rows.append(
            Row(
                "cold",
                provider,
                f"cold pull, {n} files × {size(sizes.cold_size)} in {sizes.cold_folders} "
                f"folders ({provider})",
                f"{spread_of(ours_runs)} · {ours['requests']} req · {ours_failed} failed",
                f"{spread_of(base_runs)} · {base['requests']} req · {base_failed} failed",
                f"{times(ratio)} faster",
                "≥ 5× faster, 0 failed requests",
                ratio >= 5 and ours_failed == 0,
                {
                    "ours_s": ours_s,
                    "baseline_s": base_s,
                    "ours_runs_s": [t for t, _ in ours_runs],
                    "baseline_runs_s": [t for t, _ in base_runs],
                    "ours": ours,
                    "baseline": base,
                    "ours_failed": ours_failed,
                    "baseline_failed": base_failed,
                },
            )
        )
        rows.append(lower_bound_row(provider, server, ours, ours_s, opts))

    # Re-sync, nothing changed.
    opts.log(f"{provider}: re-sync, nothing changed")
    report, ours_s, ours, base_s, base = resync_both(server, tree, target, home, dest)
    if "resync" in opts.only:
        allowed = ours["listing_pages"] + 2
        met = (
            report.downloaded_files == 0 and ours["downloads"] == 0 and ours["requests"] <= allowed
        )
        rows.append(
            Row(
                "resync",
                provider,
                f"re-sync, nothing changed ({provider})",
                f"{ours['requests']} req ({ours['listing_pages']} listing pages) · "
                f"{ours['downloads']} files · {size(ours['bytes'])} · {seconds(ours_s)}",
                f"{base['requests']} req · {base['downloads']} files · "
                f"{size(base['bytes'])} · {seconds(base_s)}",
                f"{times(base['requests'] / max(ours['requests'], 1))} fewer requests",
                f"0 files; ≤ listing pages + 2 = {allowed} req",
                met,
                {
                    "ours_s": ours_s,
                    "baseline_s": base_s,
                    "ours": ours,
                    "baseline": base,
                    "ours_downloaded_files": report.downloaded_files,
                    "ours_downloaded_bytes": report.downloaded_bytes,
                },
            )
        )

    # Re-sync, 5 files changed (one in each of 5 folders).
    step = max(1, n // sizes.changed)
    changed = [f.path for f in tree.files[::step][: sizes.changed]]
    tree.change(changed)
    opts.log(f"{provider}: re-sync, {len(changed)} files changed")
    report, ours_s, ours, base_s, base = resync_both(server, tree, target, home, dest)
    if "changed" in opts.only:
        expected = sorted(p.split("/", 1)[1] for p in changed)
        met = (
            report.downloaded_files == len(changed)
            and ours["downloads"] == len(changed)
            and sorted(report.updated) == expected
        )
        rows.append(
            Row(
                "changed",
                provider,
                f"re-sync, {len(changed)} files changed ({provider})",
                f"{report.downloaded_files} files · {ours['requests']} req · "
                f"{size(ours['bytes'])} · {seconds(ours_s)}",
                f"{base['downloads']} files · {base['requests']} req · "
                f"{size(base['bytes'])} · {seconds(base_s)}",
                f"{times(base['downloads'] / max(report.downloaded_files, 1))} fewer files",
                f"exactly {len(changed)} files",
                met,
                {
                    "ours_s": ours_s,
                    "baseline_s": base_s,
                    "ours": ours,
                    "baseline": base,
                    "ours_downloaded_files": report.downloaded_files,
                    "ours_updated": list(report.updated),
                },
            )
        )
    return rows


def spread_of(runs: list[tuple[float, dict[str, Any]]]) -> str:
    """The median time, and the range when there was more than one run."""
    values = sorted(t for t, _ in runs)
    shown = seconds(statistics.median(values))
    if len(values) > 1:
        digits = 1 if values[-1] >= 10 else 2
        shown += f" ({values[0]:.{digits}f}–{values[-1]:.{digits}f})"
    return shown


def lower_bound_row(
    provider: str, server: FakeServer, ours: dict[str, Any], ours_s: float, opts: Options
) -> Row:
    """requests × latency ÷ allowed concurrency, and the provider's rate limit."""
    session = session_concurrency(provider)
    requests = ours["requests"]
    if provider == "canvas":
        bucket = server.info["throttle"]
        allowance = int(bucket["high_water_mark"] // bucket["preflight_cost"])
        concurrency = min(session, allowance)
        # Completed requests stay in the bucket (cost each) and drain at the leak rate; the
        # last request needs room for its own up-front cost.
        excess = ours["api_requests"] * bucket["cost_per_request"] - (
            bucket["high_water_mark"] - bucket["preflight_cost"]
        )
        rate_bound = max(0.0, excess / bucket["leak_rate"])
        assumed = (
            f"c = min(session {session}, bucket {bucket['high_water_mark']:.0f} ÷ "
            f"{bucket['preflight_cost']:.0f} up-front = {allowance}) = {concurrency}"
        )
    else:
        quota = server.info["quota"]
        concurrency = session
        rate_bound = max(0.0, (requests - quota["burst"]) / quota["rate"]) if quota else 0.0
        assumed = f"c = session {session}" + (
            f"; quota {quota['rate']:.0f}/s, burst {quota['burst']}" if quota else ""
        )
    latency_bound = requests * opts.latency / concurrency
    bound = max(latency_bound, rate_bound)
    opts.notes.append(
        f"cold pull lower bound ({provider}): {requests} requests × {opts.latency * 1000:.0f} ms "
        f"÷ c = {seconds(latency_bound)}, with {assumed}; the rate limit alone allows "
        f"{seconds(rate_bound)}; bound = the larger. The sync engine downloads "
        f"{download_concurrency()} files at once (SyncConfig.concurrency)."
    )
    return Row(
        "cold-bound",
        provider,
        f"cold pull lower bound ({provider})",
        f"{seconds(ours_s)} = {times(ours_s / bound)} the bound",
        "—",
        f"{times(ours_s / bound)}",
        f"bound {seconds(bound)}: req × latency ÷ c",
        None,
        {
            "bound_s": bound,
            "latency_bound_s": latency_bound,
            "rate_bound_s": rate_bound,
            "concurrency": concurrency,
            "session_concurrency": session,
            "download_concurrency": download_concurrency(),
            "ours_s": ours_s,
        },
    )


# -- one large file ---------------------------------------------------------------------------


def measure_in_subprocess(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one pull in a process of its own; its exact peak plus a sampled tree total."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.rss", json.dumps(spec)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with TreeSampler(process.pid) as sampler:
        stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{spec['who']} pull failed:\n{stderr[-3000:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["tree_peak_kb"] = max(sampler.result.peak_total_kb, result["vmhwm_kb"])
    result["tree_anon_kb"] = sampler.result.peak_anon_kb
    result["programs_kb"] = sampler.result.peak_by_program_kb
    result["programs_anon_kb"] = sampler.result.peak_anon_by_program_kb
    result["samples"] = sampler.result.samples
    return result


def large_file(provider: str, server: FakeServer, tree: Tree, opts: Options) -> Row:
    nbytes = tree.files[0].size
    work = opts.workdir / provider / "large"
    opts.log(f"{provider}: one {size(nbytes)} file, ours (separate process)")
    server.call("reset")
    ours = measure_in_subprocess(
        {
            "who": "ours",
            "url": tree.url,
            "env": tree.envs[0],
            "home": str(work / "ours" / ".privatepuller"),
            "target": str(work / "ours" / "Dataset"),
            "max_size": 2 * nbytes,
        }
    )
    served = counters(server)
    assert ours["files"] == 1 and ours["bytes"] == nbytes, ours
    opts.log(f"{provider}: one {size(nbytes)} file, baseline (separate process)")
    server.call("reset")
    base = measure_in_subprocess(
        {
            "who": "baseline",
            "provider": provider,
            "target": str(work / "baseline" / "Dataset"),
            "baseline": tree.baseline_args(0),
        }
    )
    assert base["files"] == 1 and base["bytes"] == nbytes, base
    python_kb, tree_kb, anon_kb = ours["vmhwm_kb"], ours["tree_peak_kb"], ours["tree_anon_kb"]
    private_kb = max(python_kb, anon_kb)
    return Row(
        "large",
        provider,
        f"one {size(nbytes)} file: peak RSS ({provider})",
        f"{mib(python_kb)} Python · with git: {mib(tree_kb)} RSS, {mib(anon_kb)} of it "
        f"not file-backed · {seconds(ours['seconds'])}",
        f"{mib(base['vmhwm_kb'])} · {seconds(base['seconds'])}",
        f"{times(base['vmhwm_kb'] / max(private_kb, 1))} less",
        "< 150 MB = 143 MiB (Python; Python + git's own memory)",
        private_kb * 1024 < 150e6,
        {"ours": ours, "baseline": base, "served": served, "file_bytes": nbytes},
    )


# -- fifty students ---------------------------------------------------------------------------


@dataclass
class StudentRun:
    ok: list[bool]
    seconds: list[float]
    errors: list[str]
    counters: dict[str, Any]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def students_ours(tree: Tree, server: FakeServer, work: Path, spread: float) -> StudentRun:
    n = len(tree.envs)

    async def everyone() -> list[tuple[bool, float, str]]:
        # Each student has a server of their own: do not make them queue for one thread pool.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=n + 4))

        async def one(i: int) -> tuple[bool, float, str]:
            await asyncio.sleep(i * spread / n)
            folder = work / f"student{i:02}"
            started = time.perf_counter()
            try:
                report, _ = await our_pull(
                    tree, folder / "Week", folder / ".privatepuller", student=i
                )
            except Exception as error:  # a failed student is a result, not a crash
                return False, time.perf_counter() - started, f"{type(error).__name__}: {error}"
            ok = report.downloaded_files == len(tree.files)
            return ok, time.perf_counter() - started, "" if ok else f"partial: {report}"

        return await asyncio.gather(*(one(i) for i in range(n)))

    server.call("reset")
    results = asyncio.run(everyone())
    return StudentRun(
        [r[0] for r in results],
        [r[1] for r in results],
        [r[2] for r in results],
        counters(server),
    )


def students_baseline(tree: Tree, server: FakeServer, work: Path, spread: float) -> StudentRun:
    n = len(tree.envs)
    results: list[tuple[bool, float, str]] = [(False, 0.0, "")] * n
    start = time.perf_counter()

    def one(i: int) -> None:
        time.sleep(max(0.0, start + i * spread / n - time.perf_counter()))
        began = time.perf_counter()
        try:
            result = tree.baseline(work / f"student{i:02}" / "Week", i)
        except Exception as error:
            message = str(error).splitlines()[0] if str(error) else ""
            results[i] = (False, time.perf_counter() - began, f"{type(error).__name__}: {message}")
            return
        ok = result.files == len(tree.files)
        results[i] = (ok, time.perf_counter() - began, "" if ok else f"partial: {result}")

    server.call("reset")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return StudentRun(
        [r[0] for r in results],
        [r[1] for r in results],
        [r[2] for r in results],
        counters(server),
    )


def shorten(error: str) -> str:
    """One line per kind of error: URLs and ids vary between students, the cause does not."""
    if match := re.search(r'HttpError (\d+) when requesting .*? returned "([^"]*)"', error):
        return f"HttpError {match.group(1)} {match.group(2)}"
    error = re.sub(r"https?://\S+", "<url>", error)
    return re.sub(r"\s+", " ", error)[:140]


def describe(run: StudentRun) -> str:
    n = len(run.ok)
    return (
        f"{sum(run.ok)}/{n} ok · p50 {seconds(percentile(run.seconds, 0.5))} · "
        f"p95 {seconds(percentile(run.seconds, 0.95))} · "
        f"{run.counters['requests'] / n:.1f} req/student · {run.counters['throttled']} throttled"
    )


def students(
    provider: str, server: FakeServer, tree: Tree, opts: Options, label: str, name: str
) -> Row:
    n, spread = len(tree.envs), opts.sizes.spread
    work = opts.workdir / provider / name
    opts.log(f"{provider}: {n} students ({label}), ours, clicks spread over {spread:g} s")
    ours = students_ours(tree, server, work / "ours", spread)
    opts.log(f"{provider}: {n} students ({label}), baseline")
    base = students_baseline(tree, server, work / "baseline", spread)
    for who, run in (("ours", ours), ("baseline", base)):
        errors = sorted({shorten(e) for e in run.errors if e})
        if errors:
            opts.notes.append(
                f"{n} students ({provider}, {label}), {who}: "
                f"{len(run.ok) - sum(run.ok)} failed; " + "; ".join(errors[:3])
            )
    all_ok = all(ours.ok)
    ratio = "—"
    if all_ok and all(base.ok):
        ratio = f"p95 {times(percentile(base.seconds, 0.95) / percentile(ours.seconds, 0.95))}"
    elif all_ok:
        ratio = f"{sum(ours.ok)} vs {sum(base.ok)} succeeded"
    return Row(
        "students",
        provider,
        f"{n} students {f'in {spread:g} s' if spread else 'at once'}, {len(tree.files)} files "
        f"({provider}, {label})",
        describe(ours),
        describe(base),
        ratio,
        f"{n}/{n} succeed",
        all_ok,
        {
            "ours": {
                "ok": ours.ok,
                "seconds": ours.seconds,
                "errors": ours.errors,
                "counters": ours.counters,
            },
            "baseline": {
                "ok": base.ok,
                "seconds": base.seconds,
                "errors": base.errors,
                "counters": base.counters,
            },
        },
    )


# -- per provider ---------------------------------------------------------------------------


def run_canvas(opts: Options) -> list[Row]:
    sizes, rows = opts.sizes, []
    with FakeServer("canvas", latency=opts.latency, throttle=CANVAS_DOCUMENTED) as server:
        provider = CanvasProvider(server)
        if opts.only & {"cold", "resync", "changed"}:
            root = "Course materials"
            files = spread_files(root, sizes.cold_files, sizes.cold_folders, sizes.cold_size)
            tree = provider.tree(files, course="Benchmark 101")
            rows += repeat_workloads("canvas", server, tree, opts, root)
        if "large" in opts.only:
            tree = provider.tree([FileSpec("Dataset/big.bin", sizes.large)], course="Big data")
            rows.append(large_file("canvas", server, tree, opts))
        if "students" in opts.only:
            files = spread_files(
                "Week 1", sizes.student_files, sizes.student_folders, sizes.student_size
            )
            tree = provider.tree(files, students=sizes.students, course="Class of 50")
            rows.append(
                students(
                    "canvas",
                    server,
                    tree,
                    opts,
                    "per-token buckets, documented defaults",
                    "students-documented",
                )
            )
            server.call("set_throttle", **CANVAS_QUARTER)
            tree = provider.tree(files, students=sizes.students, course="Class of 50, again")
            rows.append(
                students(
                    "canvas",
                    server,
                    tree,
                    opts,
                    "per-token buckets at ¼ capacity and drain",
                    "students-quarter",
                )
            )
    return rows


def drive_available() -> bool:
    try:
        from privatepuller.pull import parse_link

        return parse_link(f"https://drive.google.com/drive/folders/{'1' * 33}") is not None
    except Exception:
        return False


def run_drive(opts: Options) -> list[Row]:
    if not drive_available():
        opts.notes.append("drive: skipped, this privatepuller cannot pull Drive links yet")
        return []
    sizes, rows = opts.sizes, []
    with FakeServer("drive", latency=opts.latency, quota=DRIVE_PER_USER) as server:
        provider = DriveProvider(server, opts.workdir / "drive")
        if opts.only & {"cold", "resync", "changed"}:
            root = "Course materials"
            files = spread_files(root, sizes.cold_files, sizes.cold_folders, sizes.cold_size)
            rows += repeat_workloads("drive", server, provider.tree(files), opts, root)
        if "large" in opts.only:
            tree = provider.tree([FileSpec("Dataset/big.bin", sizes.large)], synthetic=True)
            rows.append(large_file("drive", server, tree, opts))
        if "students" in opts.only:
            server.call("set_quota", DRIVE_SHARED)
            server.info["quota"] = DRIVE_SHARED
            files = spread_files(
                "Week 1", sizes.student_files, sizes.student_folders, sizes.student_size
            )
            tree = provider.tree(files, students=sizes.students)
            rate, burst = DRIVE_SHARED["rate"], DRIVE_SHARED["burst"]
            label = f"one shared quota {rate:.0f} req/s, burst {burst}"
            rows.append(students("drive", server, tree, opts, label, "students"))
        if "service" in opts.only:
            from .service import service_rows

            server.call("set_quota", DRIVE_SHARED)
            server.info["quota"] = DRIVE_SHARED
            files = spread_files(
                "Week 1", sizes.student_files, sizes.student_folders, sizes.student_size
            )
            opts.log(f"drive: {sizes.students} and {sizes.many} students through the service")
            rows += service_rows(
                server,
                provider.tree(files),
                provider.key_file,
                opts.workdir / "drive" / "service",
                sizes.students,
                sizes.spread,
                sizes.many,
            )
    return rows


def run_all(opts: Options) -> list[Row]:
    rows: list[Row] = []
    if "canvas" in opts.providers:
        rows += run_canvas(opts)
    if "drive" in opts.providers:
        rows += run_drive(opts)
    return rows
