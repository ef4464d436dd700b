"""Where a link's folder goes: a visible folder inside the server's root, never another project.

A link comes from anyone, and a navigation to it starts a sync, so its `targetpath` is hostile
input. Folders whose names start with `.` configure the student's tools (`.local/share/jupyter/
kernels`, `.ipython/profile_default/startup`, `.config/git`, `.ssh`, `.jupyter`): content
written there runs as code. So, for every link (ours and git links alike):

- the target is a relative path inside the server's root, no component starting with `.`,
  no `..`, no backslash, NUL or control character;
- no existing component is a symbolic link (nothing is written through a link);
- an admin may narrow the places further (`allowed_parents`), never widen them;
- an existing folder is used only when it is a copy made by this same link
  (`check_existing_folder`); a student's own repository is refused, naming the folder.

Everything here runs before any request to Canvas, Drive or a git remote.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import PullError


class BadTargetPath(PullError):
    """`targetpath` would leave the server's root folder, or is not a folder name at all."""

    code = "targetpath"


class TargetInUse(PullError):
    """The target folder exists and is not a copy made by this link."""

    code = "target_in_use"


class TargetNotWritable(PullError):
    """The target folder, or the folder it would be made in, may not be written by us."""

    code = "target_not_writable"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
FIX_THE_LINK = (
    "Ask your instructor to fix the link (targetpath must be a folder name like “Week 1”)."
)


def repo_parent_dir(settings: dict[str, Any]) -> Path:
    """Where nbgitpuller puts its clones: the server's root, then $NBGITPULLER_PARENTPATH."""
    root = os.path.expanduser(settings["server_root_dir"])
    return Path(root, os.getenv("NBGITPULLER_PARENTPATH", ""))


def visible_name(name: str) -> str:
    """A default folder name made visible: `.ipython` becomes `ipython`."""
    return name.lstrip(".").strip() or "folder"


def target_problem(targetpath: str, allowed_parents: Sequence[str] = ()) -> str | None:
    """Why `targetpath` may not be used (words for the student), or None. Pure: no disk."""
    if _CONTROL.search(targetpath) or "\\" in targetpath:
        return "contains characters that are not allowed in a folder name"
    pure = PurePosixPath(targetpath)
    if pure.is_absolute() or targetpath.startswith("~"):
        return "is an absolute path"
    if ".." in pure.parts:
        return "contains '..'"
    if not pure.parts:
        return "is empty"
    if any(part.startswith(".") for part in pure.parts):
        return "names a hidden folder (a name starting with “.”), where tools keep settings"
    if allowed_parents and not any(
        _is_within(pure.parts, PurePosixPath(allowed).parts) for allowed in allowed_parents
    ):
        shown = ", ".join(f"“{allowed}”" for allowed in allowed_parents)
        return f"is not inside the folders this hub allows for links ({shown})"
    return None


def _is_within(parts: tuple[str, ...], allowed: tuple[str, ...]) -> bool:
    # An allowed parent of "." (or "") allows the whole root; the target must be below it.
    return len(parts) > len(allowed) and parts[: len(allowed)] == allowed


def safe_target(parent: Path, targetpath: str, allowed_parents: Sequence[str] = ()) -> Path:
    """`parent`/`targetpath`, refusing anything but a visible folder path inside it that no
    symbolic link leads through."""
    problem = target_problem(targetpath, allowed_parents)
    if problem is None:
        parts = PurePosixPath(targetpath).parts
        target = parent.joinpath(*parts)
        for depth in range(1, len(parts) + 1):
            if os.path.islink(parent.joinpath(*parts[:depth])):
                problem = "leads through a link to another place"
                break
        else:
            return target
    raise BadTargetPath(
        f"This link's target folder “{_shown(targetpath)}” {problem}, so nothing was synced. "
        + FIX_THE_LINK
    )


def _shown(text: str) -> str:
    return _CONTROL.sub("", text)[:200]


def git_remote(folder: Path) -> str | None:
    """`remote.origin.url` of the git repository `folder`, read from its config file
    (never by running git in it: a hostile config could name commands for git to run)."""
    config = configparser.RawConfigParser(strict=False)
    try:
        config.read(folder / ".git" / "config", encoding="utf-8")
        return config.get('remote "origin"', "url")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None


def claim_target(
    parent: Path, target: Path, is_this_links: Callable[[str], bool], *, link_name: str
) -> None:
    """Refuse a target that exists and is not a copy made by this link; remove an empty one.

    `is_this_links(remote)` says whether a clone's `remote.origin.url` is this link's origin.
    An absent folder is fine, and so is a clone of this link. An empty folder is removed, so
    that the clone takes its place (git would otherwise look for a repository above it). A
    file, a folder with other content, a git repository of something else, or a folder inside
    another git repository is refused, with a message naming the folder; so is a target that
    would be made inside a file, or in a folder we may not write (`TargetNotWritable`).
    """
    name = _display(parent, target)
    for folder in _between(parent, target):
        if (folder / ".git").exists():
            raise TargetInUse(
                f"This link would put “{link_name}” inside “{_display(parent, folder)}”, which is "
                "a git project of yours, so nothing was synced. Ask your instructor for a link "
                "with another targetpath, or move that project."
            )
    if not os.path.lexists(target):
        _check_writable(parent, _nearest_existing(target.parent), target)
        return
    if not target.is_dir():
        raise _a_file(name)
    _check_writable(parent, target, target)
    git = target / ".git"
    if not os.path.lexists(git):
        if any(target.iterdir()):
            raise TargetInUse(
                f"The folder “{name}” already exists and was not made by this link, so nothing "
                f"was synced into it. Rename or move “{name}”, then click the link again."
            )
        target.rmdir()
        return
    remote = git_remote(target) if git.is_dir() and not git.is_symlink() else None
    if remote is None or not is_this_links(remote):
        raise TargetInUse(
            f"The folder “{name}” is a git project that this link did not make (a copy of "
            f"something else, or your own work), so it was left untouched. Rename or move "
            f"“{name}”, or ask your instructor for a link with another targetpath."
        )


def _a_file(name: str) -> TargetInUse:
    return TargetInUse(
        f"“{name}” already exists and is a file, so nothing was synced. Rename or move "
        "it, then click the link again."
    )


def _nearest_existing(folder: Path) -> Path:
    """`folder`, or the nearest folder above it that exists (or is a file, or a link)."""
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(folder.anchor or "/")


def _check_writable(parent: Path, folder: Path, target: Path) -> None:
    """`folder` (the target, or where it will be made) must be a folder we may write in: git
    would otherwise fail halfway through, with words about git rather than permissions."""
    if not folder.is_dir():
        raise _a_file(_display(parent, folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        where = _display(parent, folder)
        made = "" if folder == target else f", so “{_display(parent, target)}” cannot be made there"
        raise TargetNotWritable(
            f"You cannot write in “{where}”{made}: it is read-only for you. Nothing was "
            "synced. Choose a folder you can write in, or ask its owner for write permission."
        )


def _between(parent: Path, target: Path) -> list[Path]:
    """The folders strictly between `parent` and `target` that exist."""
    try:
        parts = target.relative_to(parent).parts
    except ValueError:
        return []
    folders = (parent.joinpath(*parts[:depth]) for depth in range(1, len(parts)))
    return [folder for folder in folders if folder.is_dir()]


def _display(parent: Path, folder: Path) -> str:
    """`folder` as the person named it: relative to `parent` (the server's root) when below it,
    else as given (the command line's target, absolute or relative to the current folder)."""
    try:
        relative = folder.relative_to(parent)
    except ValueError:
        relative = Path(".")
    return _shown(str(relative if relative != Path(".") else folder))
