"""Peak memory of one pull, measured in a process of its own.

    python -m benchmarks.rss '<json spec>'

runs our `pull()` or a baseline script once and prints one JSON line: wall seconds, files and
bytes, `vmhwm_kb` (this process's peak resident set, /proc/self/status VmHWM: the Python
process only) and `children_maxrss_kb` (the largest peak RSS of any child process it waited
for — git hash-object, git clone/merge run by nbgitpuller — from getrusage(RUSAGE_CHILDREN)).
The fake server runs in another process, so its memory is in neither figure.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any


def vmhwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    if spec["who"] == "ours":
        from privatepuller.credentials.sources import EnvCredentialSource
        from privatepuller.pull import pull
        from privatepuller.sync.config import SyncConfig

        config = SyncConfig(
            home=Path(spec["home"]),
            max_file_size=spec["max_size"],
            max_total_size=spec["max_size"],
        )
        report = asyncio.run(
            pull(
                spec["url"],
                Path(spec["target"]),
                credentials=EnvCredentialSource(spec["env"]),
                config=config,
            )
        )
        files, nbytes = report.downloaded_files, report.downloaded_bytes
        excluded = len(report.excluded)
    else:
        from .baselines import run as run_baseline

        result = run_baseline(spec["provider"], Path(spec["target"]), **spec["baseline"])
        files, nbytes, excluded = result.files, result.bytes, 0
    return {
        "seconds": time.perf_counter() - started,
        "files": files,
        "bytes": nbytes,
        "excluded": excluded,
        "vmhwm_kb": vmhwm_kb(),
        "children_maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }


def main() -> None:
    print(json.dumps(run(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
