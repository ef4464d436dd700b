"""The one manifest format.

The sync engine stores a `Manifest` next to each local origin: for every path, the change key
it was downloaded under and the git blob it became, so the next sync downloads only what
changed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


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
