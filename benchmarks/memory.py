"""Resident memory of a process tree, sampled from /proc while it runs (Linux).

The measured process reports its own exact peak (VmHWM) itself. Git runs in child processes
of it (hash-object, then nbgitpuller's clone or merge); `getrusage(RUSAGE_CHILDREN)` cannot
tell their memory apart from ours, because a child forked from Python inherits Python's peak
until it execs. So a sampler here adds up, every few milliseconds, the resident set of the
measured process and of those descendants that have exec'd into another program (git), and
keeps the largest sum and each program's largest own peak (VmHWM, exact once exec'd; only the
last few milliseconds of a process's life can escape the sampling).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _kb(value: str | None) -> int:
    return int(value.split()[0]) if value else 0


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces and parentheses
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


@dataclass
class TreeMemory:
    peak_total_kb: int = 0  # largest sum of resident sets (VmRSS) at one moment
    peak_anon_kb: int = 0  # the same for anonymous memory only (RssAnon: not file pages)
    peak_by_program_kb: dict[str, int] = field(default_factory=dict)  # own VmHWM per program
    peak_anon_by_program_kb: dict[str, int] = field(default_factory=dict)  # sampled RssAnon
    samples: int = 0


class TreeSampler:
    """Samples `pid` and its exec'd descendants every `interval` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.result = TreeMemory()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval)

    def sample(self) -> None:
        root = _status(self.pid)
        if not root:
            return
        total = _kb(root.get("VmRSS"))
        anon = _kb(root.get("RssAnon"))
        name = root.get("Name", "")
        children = _children_map()
        stack = list(children.get(self.pid, []))
        while stack:
            pid = stack.pop()
            stack.extend(children.get(pid, []))
            status = _status(pid)
            # A fork of the measured Python that has not exec'd yet shares its pages.
            if not status or (name.startswith("python") and status.get("Name") == name):
                continue
            total += _kb(status.get("VmRSS"))
            anon += _kb(status.get("RssAnon"))
            program = status.get("Name", "?")
            peaks = self.result.peak_by_program_kb
            peaks[program] = max(peaks.get(program, 0), _kb(status.get("VmHWM")))
            anons = self.result.peak_anon_by_program_kb
            anons[program] = max(anons.get(program, 0), _kb(status.get("RssAnon")))
        self.result.peak_total_kb = max(self.result.peak_total_kb, total)
        self.result.peak_anon_kb = max(self.result.peak_anon_kb, anon)
        self.result.samples += 1
