"""What the hub's service does with Drive: resolve a link, sync it into an origin on the
service's disk, and find the folders above an item (for folders limited to groups).

The service account's key is read from `GOOGLE_APPLICATION_CREDENTIALS` and read again when the
file changes (a rotated key is picked up without a restart). Its tokens stay in this process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..credentials.sources import EnvCredentialSource
from ..errors import PullError
from ..providers.gdrive import GDRIVE
from ..providers.gdrive.api import DriveAPI
from ..providers.gdrive.hub import skipped_rows
from ..providers.gdrive.links import (
    DriveLink,
    GoogleDriveFileLink,
    GoogleDriveFolder,
    GoogleDriveFolderLink,
)
from ..pull import Resolved, open_source, resolve_link, session_options
from ..sync.config import SyncConfig
from ..sync.progress import Progress
from ..sync.store import Prestored, origin_lock, store
from .snapshots import Listener, ServedSnapshot, SnapshotRef

# How far up `folder_groups` looks for a limited folder above the item a link names.
MAX_ANCESTORS = 20


def link_of(ref: SnapshotRef) -> DriveLink:
    if ref.kind == "folder":
        return GoogleDriveFolderLink(ref.item_id, ref.resource_key)
    return GoogleDriveFileLink(ref.item_id, ref.resource_key, expected="any")


class Relay:
    """The engine's progress, as events for the students' servers waiting on this sync."""

    def __init__(self, emit: Listener) -> None:
        self.emit = emit

    def listed(self, files: int, total_bytes: int) -> None:
        self.emit({"listed": [files, total_bytes]})

    def advanced(self, nbytes: int) -> None:
        pass

    def file_done(self, path: str, size: int) -> None:
        self.emit({"file": [path, size]})

    def waiting(self, seconds: float, provider: str) -> None:
        self.emit({"waiting": [seconds, provider]})

    def git_output(self, line: str) -> None:
        pass

    def note(self, text: str) -> None:
        self.emit({"note": text})


class KeyFile:
    """The credential source of the service account's key, made anew when the file changes."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self._seen: tuple[int, int, int] | None = None
        self._source = EnvCredentialSource(self._environ)

    def source(self) -> EnvCredentialSource:
        path = self._environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
        try:
            stat = Path(path).stat()
            seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            seen = None
        if seen != self._seen:
            self._seen = seen
            self._source = EnvCredentialSource(self._environ)
        return self._source


class DriveSide:
    def __init__(
        self, config: SyncConfig, key_file: KeyFile, *, find_ancestors: bool = False
    ) -> None:
        self.config = config
        self.key_file = key_file
        self.find_ancestors = find_ancestors

    async def resolve(self, ref: SnapshotRef, progress: Progress | None = None) -> Resolved:
        return await resolve_link(link_of(ref), self.key_file.source(), self.config, progress)

    async def info(self, ref: SnapshotRef, emit: Listener) -> dict[str, Any]:
        """Name, kind and source id of the item (one Drive request or two), and its
        ancestors when folders may be limited to groups."""
        resolved = await self.resolve(ref)
        async with open_source(resolved, self.config) as source:
            source_id = source.source_id
        kind = "folder" if isinstance(resolved.repo, GoogleDriveFolder) else "file"
        return {
            "name": resolved.name,
            "kind": kind,
            "source_id": source_id,
            "ancestors": await self.ancestors(resolved, ref),
        }

    async def refresh(self, ref: SnapshotRef, emit: Listener) -> ServedSnapshot:
        """Sync the item into its origin on the service's disk (never a merge)."""
        relay = Relay(emit)
        resolved = await self.resolve(ref, relay)
        async with open_source(resolved, self.config, relay) as source:
            assert not isinstance(source, Prestored)  # the service has the key: listed here
            async with origin_lock(self.config, source.source_id, relay):
                snapshot = await store(source, self.config, relay)
        return ServedSnapshot(
            name=snapshot.name,
            commit=snapshot.head,
            origin=snapshot.origin.path,
            source_id=source.source_id,
            report={
                "excluded": skipped_rows(snapshot.excluded),
                "skipped": skipped_rows(snapshot.skipped),
                "kept": list(snapshot.kept),
                "paths": [
                    [path, entry.size]
                    for path, entry in sorted(snapshot.entries.items())
                    if path not in snapshot.kept
                ],
                "ancestors": await self.ancestors(resolved, ref),
            },
        )

    async def ancestors(self, resolved: Resolved, ref: SnapshotRef) -> list[str]:
        """The folders above the item, nearest first (only when folders may be limited)."""
        if not self.find_ancestors:
            return []
        found: list[str] = []
        options = session_options(GDRIVE, self.config, None)
        async with DriveAPI.open(resolved.credentials, options) as api:
            api.remember_resource_key(ref.item_id, ref.resource_key)
            current = ref.item_id
            while len(found) < MAX_ANCESTORS:
                try:
                    parents = await api.parents(current, chain=found[::-1])
                except PullError:
                    break  # a folder above that the account cannot see: nothing limits it
                if not parents or parents[0] in found:
                    break
                current = parents[0]
                found.append(current)
        return found
