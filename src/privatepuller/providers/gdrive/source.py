"""Google Drive folders and files -> a listing with change keys, and streamed downloads.

Listing walks the folder breadth-first with `'<id>' in parents and trashed = false` (one paged
`files.list` per folder, run concurrently under the session's limit). Shortcuts are followed
(dangling ones and loops are skipped and reported). Local names are assigned afterwards, in a
fixed order (name, then creation time, then id), so duplicates, `/` in names and names that
differ only in case always get the same local names.

Blobs download with `alt=media`; Colab notebooks are blobs and land as `.ipynb`; Docs, Sheets,
Slides, Drawings and Apps Script are exported (see `ExportFormats` for the defaults). Change
keys: `md5Checksum` (and size) for blobs, `version` (and the export format) for Google files,
so a re-sync downloads only what changed. Size limits are applied by the sync engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ListingFailed, NoAccess, NotFound
from ...sync.names import LocalNamer, sanitize_component, stem
from ...sync.source import EntryCount, Listing, RemoteFile, Skipped, SkipReason
from .api import DriveAPI
from .exports import (
    COLAB,
    EXPORT_CHOICES,
    EXPORT_LIMIT,
    FOLDER,
    SHORTCUT,
    ExportFormat,
    ExportFormats,
    is_google_native,
    kind_name,
    with_extension,
)
from .links import ID_RE, DriveRepo, GoogleDriveFile, GoogleDriveFolder
from .skips import DriveSkip

MAX_FOLDERS = 10_000  # folder visits per listing (shortcuts can multiply them)
MAX_DEPTH = 40


@dataclass(frozen=True)
class DriveDownload:
    """A Drive file's download handle: what `GoogleDriveSource.download` needs for it."""

    file_id: str
    export: ExportFormat | None  # None: a blob (alt=media)
    chain: tuple[str, ...]  # ancestor folder ids, nearest first (resource keys)


@dataclass
class _Node:
    """One visit of a folder (a folder reached through two shortcuts is visited twice)."""

    visit_id: str  # ids from the root: unique per visit
    folder_id: str
    name: str
    chain: tuple[str, ...]  # this folder and its ancestors, nearest first
    drive_id: str | None
    depth: int = 0
    folders: list[tuple[tuple[str, str, str, str], _Node]] = field(default_factory=list)
    # (order, local name before de-duplication, the file (a shortcut's target), entry id)
    files: list[tuple[tuple[str, str, str, str], str, dict[str, Any], str]] = field(
        default_factory=list
    )
    skipped: list[tuple[str, SkipReason, str]] = field(default_factory=list)  # name, why, detail


Items = list[dict[str, Any]]
Nodes = list[_Node]


def _order(local_name: str, item: dict[str, Any]) -> tuple[str, str, str, str]:
    """Local names are claimed in this order: among names that collide (exactly or only by
    case), the oldest item keeps the name, so a newly added duplicate never renames it."""
    created = str(item.get("createdTime", ""))
    return (local_name.casefold(), created, str(item.get("id", "")), local_name)


class GoogleDriveSource:
    """One resolved Drive folder or file, read through an open `DriveAPI`."""

    def __init__(
        self,
        api: DriveAPI,
        repo: DriveRepo,
        exports: ExportFormats | None = None,
    ) -> None:
        self.api = api
        self.repo = repo
        self.exports = exports or ExportFormats()
        origin = str(api.session.origin)
        if isinstance(repo, GoogleDriveFolder):
            self.source_id = f"gdrive:{origin}/folders/{repo.folder_id}"
            api.remember_resource_key(repo.folder_id, repo.resource_key)
        else:
            self.source_id = f"gdrive:{origin}/files/{repo.file_id}"
            api.remember_resource_key(repo.file_id, repo.resource_key)

    async def list(self) -> Listing[DriveDownload]:
        if isinstance(self.repo, GoogleDriveFile):
            return await self._list_file(self.repo)
        return await self._list_folder(self.repo)

    # --- one file -------------------------------------------------------------------------

    async def _list_file(self, repo: GoogleDriveFile) -> Listing[DriveDownload]:
        item = await self.api.get_file(repo.file_id, what=f"“{repo.name}”")
        if item.get("trashed"):
            raise NotFound(
                f"“{repo.name}” is in its owner's Google Drive trash, so it cannot be pulled."
            )
        raw = self._local_name(str(item.get("name") or repo.name), item)
        path = sanitize_component(raw)
        planned = self._plan(path, item, ())
        if isinstance(planned, Skipped):
            return Listing(stem(path), (), (planned,))
        return Listing(stem(path), (planned,))

    # --- a folder tree --------------------------------------------------------------------

    async def _list_folder(self, repo: GoogleDriveFolder) -> Listing[DriveDownload]:
        root = _Node(repo.folder_id, repo.folder_id, repo.name, (repo.folder_id,), repo.drive_id)
        nodes = await self._walk(root)

        namer = LocalNamer()
        namer.root(root.visit_id)
        paths = {root.visit_id: ""}
        remote: list[RemoteFile[DriveDownload]] = []
        skipped: list[Skipped] = []
        for node in nodes:  # breadth-first: a folder is named before its children
            parent = paths[node.visit_id]
            for _, child in sorted(node.folders, key=lambda pair: pair[0]):
                paths[child.visit_id] = namer.folder(child.visit_id, node.visit_id, child.name)
            for _, raw, item, entry_id in sorted(node.files, key=lambda entry: entry[0]):
                path = namer.file(f"{node.visit_id}/{entry_id}", node.visit_id, raw)
                planned = self._plan(path, item, node.chain)
                if isinstance(planned, Skipped):
                    skipped.append(planned)
                else:
                    remote.append(planned)
            for name, reason, detail in node.skipped:
                shown = sanitize_component(name)
                skipped.append(Skipped(f"{parent}/{shown}" if parent else shown, reason, detail))
        return Listing(repo.name, tuple(remote), tuple(skipped))

    async def _walk(self, root: _Node) -> Nodes:
        """All folder visits, breadth-first; children lists are fetched once per folder."""
        listings: dict[str, Items] = {}
        targets: dict[str, dict[str, Any] | None] = {}
        nodes: Nodes = []
        level = [root]
        # Entries of the whole tree count against one limit.
        entries = EntryCount(self.api.limits, f"the Google Drive folder “{root.name}”")
        while level:
            nodes.extend(level)
            if len(nodes) > MAX_FOLDERS:
                raise ListingFailed(
                    f"“{root.name}” has more than {MAX_FOLDERS} folders (counting shortcuts); "
                    "pull a smaller folder."
                )
            todo = {n.folder_id: n for n in level if n.folder_id not in listings}
            results = await asyncio.gather(*(self._children(n, entries) for n in todo.values()))
            listings.update(zip(todo, results, strict=True))

            wanted: dict[str, tuple[str, ...]] = {}
            for node in level:
                for item in listings[node.folder_id]:
                    if item.get("mimeType") == SHORTCUT:
                        details = item.get("shortcutDetails") or {}
                        target_id = str(details.get("targetId") or "")
                        self.api.remember_resource_key(target_id, details.get("targetResourceKey"))
                        if ID_RE.match(target_id) and target_id not in targets:
                            wanted.setdefault(target_id, node.chain)
            found = await asyncio.gather(*(self._target(t, c) for t, c in wanted.items()))
            targets.update(zip(wanted, found, strict=True))

            next_level: Nodes = []
            for node in level:
                for item in listings[node.folder_id]:
                    child = self._place(node, item, targets)
                    if child is not None:
                        next_level.append(child)
            # Visit children in a fixed order, so naming never depends on response timing.
            level = [n for _, n in sorted(((n.name, n.visit_id), n) for n in next_level)]
        return nodes

    async def _children(self, node: _Node, entries: EntryCount | None = None) -> Items:
        items = await self.api.list_children(
            node.folder_id,
            what=f"the folder “{node.name}”",
            chain=node.chain[1:],
            drive_id=node.drive_id,
            entries=entries,
        )
        for item in items:
            self.api.remember_resource_key(str(item.get("id", "")), item.get("resourceKey"))
        return items

    async def _target(self, target_id: str, chain: tuple[str, ...]) -> dict[str, Any] | None:
        """A shortcut's target, or None when it is gone (404) or not visible to the hub."""
        try:
            item = await self.api.get_file(target_id, what="a shortcut's target", chain=chain)
        except (NotFound, NoAccess):
            return None
        return None if item.get("trashed") else item

    def _place(
        self, node: _Node, item: dict[str, Any], targets: Mapping[str, dict[str, Any] | None]
    ) -> _Node | None:
        """Sort one listed item into `node`; returns a child folder visit to walk, if any."""
        name = str(item.get("name") or item.get("id") or "unnamed")
        item_id = str(item.get("id", ""))
        if not ID_RE.match(item_id):
            node.skipped.append((name, DriveSkip.INVALID, "Google Drive returned an unusable id"))
            return None
        mime = item.get("mimeType")
        if mime == SHORTCUT:
            details = item.get("shortcutDetails") or {}
            target = targets.get(str(details.get("targetId") or ""))
            if target is None:
                node.skipped.append(
                    (name, DriveSkip.DANGLING_SHORTCUT, "its target was deleted or is not shared")
                )
                return None
            if target.get("mimeType") == SHORTCUT:
                node.skipped.append(
                    (name, DriveSkip.DANGLING_SHORTCUT, "it points to another shortcut")
                )
                return None
            if target.get("mimeType") != FOLDER:
                local = self._local_name(name, target)
                node.files.append((_order(local, item), local, target, item_id))
                return None
            return self._child(node, name, item, target)
        if mime == FOLDER:
            return self._child(node, name, item, item)
        local = self._local_name(name, item)
        node.files.append((_order(local, item), local, item, item_id))
        return None

    def _child(
        self, node: _Node, name: str, entry: dict[str, Any], folder: dict[str, Any]
    ) -> _Node | None:
        folder_id = str(folder["id"])
        if folder_id in node.chain:
            node.skipped.append(
                (
                    name,
                    DriveSkip.SHORTCUT_LOOP,
                    "it points to a folder that contains it; not followed",
                )
            )
            return None
        if node.depth + 1 > MAX_DEPTH:
            node.skipped.append((name, DriveSkip.TOO_DEEP, f"more than {MAX_DEPTH} folders deep"))
            return None
        child = _Node(
            visit_id=f"{node.visit_id}/{entry['id']}",
            folder_id=folder_id,
            name=name,
            chain=(folder_id, *node.chain),
            drive_id=folder.get("driveId") or None,
            depth=node.depth + 1,
        )
        node.folders.append((_order(name, entry), child))
        return child

    # --- per file -------------------------------------------------------------------------

    def _local_name(self, name: str, item: dict[str, Any]) -> str:
        mime = str(item.get("mimeType", ""))
        if mime.startswith(COLAB):
            return with_extension(name, "ipynb")
        if is_google_native(mime):
            export = self.exports.get(mime)
            return with_extension(name, export.extension) if export else name
        return name

    def _plan(
        self, path: str, item: dict[str, Any], chain: tuple[str, ...]
    ) -> RemoteFile[DriveDownload] | Skipped:
        mime = str(item.get("mimeType", ""))
        file_id = str(item["id"])
        version = str(item.get("version", ""))
        if (item.get("capabilities") or {}).get("canDownload") is False:
            return Skipped(
                path,
                DriveSkip.DOWNLOAD_DISABLED,
                "ask your instructor to allow downloading, or to share it as Editor",
            )
        if is_google_native(mime):
            export = self.exports.get(mime)
            if export is None and mime in EXPORT_CHOICES:
                return Skipped(
                    path,
                    DriveSkip.NOT_EXPORTED,
                    f"exporting a {kind_name(mime)} is turned off here",
                )
            if export is None:
                return Skipped(
                    path, DriveSkip.NOT_EXPORTABLE, f"a {kind_name(mime)} has no file form"
                )
            if _int(item.get("size")) > EXPORT_LIMIT:
                return Skipped(
                    path,
                    DriveSkip.EXPORT_TOO_LARGE,
                    f"Google exports at most 10 MB and this {kind_name(mime)} is larger; ask "
                    "for it as a file",
                )
            change_key = f"gdrive:export:{file_id}:{version}:{export.mime_type}"
            return RemoteFile(path, None, change_key, DriveDownload(file_id, export, chain))
        size = _int(item.get("size")) if item.get("size") is not None else None
        md5 = item.get("md5Checksum")
        if md5:
            change_key = f"gdrive:md5:{md5}:{size}"
        else:
            change_key = f"gdrive:rev:{file_id}:{version}:{item.get('modifiedTime')}"
        return RemoteFile(path, size, change_key, DriveDownload(file_id, None, chain))

    async def download(
        self,
        file: RemoteFile[DriveDownload],
        dest: Path,
        *,
        max_bytes: int | None,
        on_bytes: Callable[[int], None],
    ) -> int:
        handle = file.handle
        what = f"“{file.path}”"
        if handle.export is not None:
            return await self.api.export(
                handle.file_id,
                handle.export.mime_type,
                dest,
                what=what,
                chain=handle.chain,
                max_bytes=max_bytes,
                on_bytes=on_bytes,
            )
        return await self.api.download_blob(
            handle.file_id,
            dest,
            what=what,
            chain=handle.chain,
            max_bytes=max_bytes,
            on_bytes=on_bytes,
        )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
