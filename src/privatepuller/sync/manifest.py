"""What a listing is, and the one manifest format.

A fetcher turns a remote folder into a `Listing`: the files to mirror (with a change key each)
and what it skipped (locked, hidden, not exportable...). The sync engine stores a `Manifest`
next to each local origin: for every path, the change key it was downloaded under and the git
blob it became, so the next sync downloads only what changed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RemoteFile:
    path: str  # local relative POSIX path, already sanitised and unique
    size: int | None  # None when the provider does not know (exports)
    change_key: str  # changes whenever the content may have changed
    source: Any = field(compare=False, repr=False)  # what the fetcher needs to download it


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str  # "locked", "hidden", "too_large", "total_cap", "not_exportable", ...
    detail: str = ""


@dataclass(frozen=True)
class Listing:
    name: str  # the folder's (or file's) own name: the default target folder
    files: tuple[RemoteFile, ...]
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True)
class ManifestEntry:
    change_key: str
    size: int
    blob: str  # git blob id


@dataclass(frozen=True)
class Manifest:
    commit: str | None
    entries: dict[str, ManifestEntry]

    @classmethod
    def empty(cls) -> Manifest:
        return cls(None, {})

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
            entries = {p: ManifestEntry(**e) for p, e in data["entries"].items()}
            return cls(data["commit"], entries)
        except (OSError, ValueError, KeyError, TypeError):
            return cls.empty()

    def save(self, path: Path) -> None:
        data = {"commit": self.commit, "entries": {p: asdict(e) for p, e in self.entries.items()}}
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def by_change_key(self) -> dict[str, ManifestEntry]:
        """Entries by change key, so a renamed file reuses its blob instead of downloading."""
        return {entry.change_key: entry for entry in self.entries.values()}
