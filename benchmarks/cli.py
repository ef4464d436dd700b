"""`python -m benchmarks`: every workload against the fake Canvas and fake Drive, with baselines."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from .deps import ensure_baselines
from .report import machine, table
from .workloads import FULL, PROVIDERS, QUICK, WORKLOADS, Options, run_all


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Run privatepuller's workloads and the instructors' baseline scripts (canvasapi, "
            "google-api-python-client) against the fake Canvas and fake Drive, and print a table."
        ),
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=30.0,
        metavar="MS",
        help="per-request latency of the fakes, in milliseconds (default 30)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, a few seconds (the test suite's smoke run)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=WORKLOADS,
        metavar="WORKLOAD",
        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--provider", action="append", choices=PROVIDERS, help="only this provider (repeatable)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="cold pulls of each, ours and the baseline in turn; the median is shown "
        "(default 3, 1 with --quick)",
    )
    parser.add_argument("--students", type=int, help="number of students (default 50)")
    parser.add_argument(
        "--spread",
        type=float,
        metavar="SECONDS",
        help="the students' clicks are spread evenly over this time (default 60; 0 = all at once)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target is not met"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write raw results here")
    parser.add_argument("--workdir", type=Path, help="keep the pulled folders here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # google-api-python-client logs every 403 it raises; the table counts them instead.
    logging.getLogger("googleapiclient.http").setLevel(logging.ERROR)
    started = time.perf_counter()
    versions = ensure_baselines(log=lambda line: print(line, file=sys.stderr))
    sizes = QUICK if args.quick else FULL
    if args.students is not None:
        sizes = replace(sizes, students=args.students)
    if args.spread is not None:
        sizes = replace(sizes, spread=args.spread)
    load_before = machine()["load"]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="privatepuller-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    opts = Options(
        latency=args.latency / 1000,
        sizes=sizes,
        workdir=workdir,
        only=frozenset(args.only or WORKLOADS),
        providers=tuple(args.provider or PROVIDERS),
        repeat=args.repeat or (1 if args.quick else 3),
        log=lambda line: print(f"· {line}", file=sys.stderr, flush=True),
    )
    try:
        rows = run_all(opts)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    host = machine()
    elapsed = time.perf_counter() - started
    print(
        f"privatepuller benchmarks: latency {args.latency:g} ms per request"
        f"{' (quick sizes)' if args.quick else ''}; {elapsed:.0f} s in all"
    )
    print(
        f"machine: {host['cpu']}, {host['cores']} cores, {host['ram']} RAM, {host['os']}, "
        f"Python {host['python']}, {host['git']}, {host['date']}"
    )
    print(f"load average (1, 5, 15 min): {load_before} before, {host['load']} after")
    print(f"privatepuller: commit {host['commit']} (at the end of the run)")
    print("baselines: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print()
    print(table(rows))
    if opts.notes:
        print()
        for note in opts.notes:
            print(f"- {note}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "latency_ms": args.latency,
                    "quick": args.quick,
                    "sizes": asdict(sizes),
                    "repeat": opts.repeat,
                    "machine": host,
                    "load_before": load_before,
                    "baselines": versions,
                    "rows": [asdict(r) for r in rows],
                    "notes": opts.notes,
                },
                indent=1,
                default=str,
            )
        )
    if args.strict and any(r.met is False for r in rows):
        sys.exit(1)
