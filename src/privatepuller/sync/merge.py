"""nbgitpuller's own GitPuller merges a local origin into the student's folder."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbgitpuller.pull import GitPuller

from ..errors import MergeFailed, PullError
from .origin import BRANCH


def merge_into(
    origin_url: str,
    target: Path,
    *,
    backup: bool = False,
    on_line: Callable[[str], None] = lambda line: None,
    parent: Any = None,
) -> None:
    """Clone or merge exactly as nbgitpuller does (student edits win; deleted files return)."""
    try:
        puller = GitPuller(origin_url, str(target), branch=BRANCH, backup=backup, parent=parent)
        for line in puller.pull():
            on_line(line.rstrip("\n"))
    except subprocess.CalledProcessError as error:
        if "merge" in error.cmd:
            raise MergeFailed(
                "Your copy of the folder and the new version could not be merged automatically. "
                "Use “Backup and resync” to keep your work in a backup folder and get a fresh copy."
            ) from error
        raise PullError(
            f"Updating your folder {target.name} failed (git {error.cmd[1]}). Nothing was lost; "
            "if the folder is not a copy made by this link, rename it and click the link again."
        ) from error
