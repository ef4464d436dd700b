"""Where a link's folder goes: nbgitpuller's parent folder, and a `targetpath` that stays in it."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import PullError


class BadTargetPath(PullError):
    """`targetpath` would leave the server's root folder, or is not a folder name at all."""

    code = "targetpath"


def repo_parent_dir(settings: dict[str, Any]) -> Path:
    """Where nbgitpuller puts its clones: the server's root, then $NBGITPULLER_PARENTPATH."""
    root = os.path.expanduser(settings["server_root_dir"])
    return Path(root, os.getenv("NBGITPULLER_PARENTPATH", ""))


def safe_target(parent: Path, targetpath: str) -> Path:
    """`parent`/`targetpath`, refusing anything that is not a relative folder path inside it."""
    problem = None
    pure = PurePosixPath(targetpath)
    if "\x00" in targetpath or "\\" in targetpath:
        problem = "contains characters that are not allowed in a folder name"
    elif pure.is_absolute() or targetpath.startswith("~"):
        problem = "is an absolute path"
    elif ".." in pure.parts:
        problem = "contains '..'"
    elif not pure.parts:
        problem = "is empty"
    elif any(part.lower() == ".git" for part in pure.parts):
        problem = "names a .git folder"
    if problem is None:
        target = parent.joinpath(*pure.parts)
        real_parent = os.path.realpath(parent)
        real_target = os.path.realpath(target)
        if not real_target.startswith(real_parent.rstrip(os.sep) + os.sep):
            problem = "leads outside your home folder (through a link)"
        else:
            return target
    raise BadTargetPath(
        f"This link's target folder “{targetpath}” {problem}, so nothing was synced. Ask your "
        "instructor to fix the link (targetpath must be a folder name like “Week 1”)."
    )
