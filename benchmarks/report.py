"""Result rows, the printed table, and the machine they came from."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    key: str  # workload id (--only)
    provider: str  # canvas | drive
    workload: str  # shown in the table
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: no target (information only)
    data: dict[str, Any] = field(default_factory=dict)  # raw figures (--json)

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "NO", None: "—"}[self.met]


HEADERS = ("workload", "ours", "baseline", "ratio", "target", "met")


def table(rows: list[Row]) -> str:
    """A Markdown table (readable in a terminal, pasteable into RESULTS.md)."""
    cells = [HEADERS] + [
        (r.workload, r.ours, r.baseline, r.ratio, r.target, r.verdict) for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]

    def line(values: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), separator, *(line(c) for c in cells[1:])])


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        for text in Path("/proc/meminfo").read_text().splitlines():
            if text.startswith("MemTotal:"):
                ram = f"{int(text.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        git = subprocess.run(
            ["git", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        git = "git not found"
    try:
        repo = Path(__file__).resolve().parent.parent
        commit = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "load": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "commit": commit or "unknown",
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "git": git,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def size(nbytes: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            value = nbytes / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{int(nbytes)} B"


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def times(ratio: float) -> str:
    return f"{ratio:.1f}×" if ratio < 100 else f"{ratio:.0f}×"
