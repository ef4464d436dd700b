"""Local names for remote files: safe, unique and deterministic.

Names come from other people. Each path component is sanitised on its own (no `/`, `\\`, NUL,
control characters, `.`/`..`, `.git`, at most 255 bytes), so a joined path can never leave the
target folder. Within one folder, names that collide (exactly, after sanitising, or only by
case, which a case-insensitive disk would merge) are made unique by suffixing a short form of
the remote id, so the same remote listing always gives the same local names.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

MAX_COMPONENT_BYTES = 255
# Longer relative paths are not synced (the engine reports them): git cannot check out a path
# near PATH_MAX (4096 bytes, which the student's home folder shares), and one such file would
# stop the whole folder.
MAX_PATH_BYTES = 1024
# Characters that are unsafe or unportable in a file name (Windows' reserved set included,
# since students download their folders): control characters (C0, DEL and C1), line and
# paragraph separators, and the bidirectional overrides that make "txt.exe" look like "exe.txt".
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069/\\:*?"<>|]')
_RESERVED_WINDOWS = re.compile(r"^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$", re.IGNORECASE)
# Characters HFS+ ignores in names, so that ".g\u200cit" is ".git" there (git's is_hfs_dotgit).
_HFS_IGNORED = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")


def _is_git_alias(name: str) -> bool:
    """A name git treats as its own ".git" on some filesystem: git refuses to check it out
    (silently leaving the file out), so it is renamed like ".git" itself."""
    return _HFS_IGNORED.sub("", name).lower() in (".git", "git~1")


def sanitize_component(name: str) -> str:
    """One path component that is safe to create inside the target folder."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE.sub("_", name).strip()
    # Trailing dots and spaces vanish on some filesystems; `.`/`..` would climb.
    name = name.rstrip(". ")
    if not name or set(name) <= {"."}:
        name = "_" + name
    if _is_git_alias(name) or _RESERVED_WINDOWS.match(name):
        name = "_" + name
    return _truncate(name)


def _truncate(name: str, limit: int = MAX_COMPONENT_BYTES) -> str:
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, ext = name, ""
    suffix = f"~{digest}" + (f".{ext}" if ext else "")
    budget = limit - len(suffix.encode())
    return stem.encode()[:budget].decode(errors="ignore") + suffix


def stem(name: str) -> str:
    """A file's name without its extension (`notes.md` -> `notes`; `.bashrc` stays): the
    default folder name of a link to one file."""
    return name.rsplit(".", 1)[0] if "." in name.strip(".") else name


def with_suffix_before_extension(name: str, suffix: str) -> str:
    stem, dot, ext = name.rpartition(".")
    if dot and stem and len(ext) <= 16:
        return _truncate(f"{stem}{suffix}.{ext}")
    return _truncate(f"{name}{suffix}")


@dataclass
class LocalNamer:
    """Assigns unique local paths; call folders before files, each in a deterministic order."""

    _taken: dict[str, set[str]] = field(default_factory=dict)  # parent -> casefolded names
    _folders: dict[str, str] = field(default_factory=dict)  # remote folder id -> local path

    def folder(self, remote_id: str, parent_id: str | None, raw_name: str) -> str:
        """Local path of a remote folder; `parent_id=None` is the synced root ('')."""
        if remote_id in self._folders:
            return self._folders[remote_id]
        parent = "" if parent_id is None else self._folders[parent_id]
        path = self._claim(parent, raw_name, remote_id)
        self._folders[remote_id] = path
        return path

    def root(self, remote_id: str) -> None:
        self._folders[remote_id] = ""

    def file(self, remote_id: str, folder_id: str, raw_name: str) -> str:
        return self._claim(self._folders[folder_id], raw_name, remote_id)

    def has_folder(self, remote_id: str) -> bool:
        return remote_id in self._folders

    def _claim(self, parent: str, raw_name: str, remote_id: str) -> str:
        taken = self._taken.setdefault(parent, set())
        name = sanitize_component(raw_name)
        if name.casefold() in taken:
            short = (
                re.sub(r"[^A-Za-z0-9_-]", "", remote_id)[-8:]
                or hashlib.sha1(remote_id.encode()).hexdigest()[:8]
            )
            name = with_suffix_before_extension(name, f" ({short})")
            counter = 2
            while name.casefold() in taken:
                name = with_suffix_before_extension(
                    sanitize_component(raw_name), f" ({short}-{counter})"
                )
                counter += 1
        taken.add(name.casefold())
        return f"{parent}/{name}" if parent else name
