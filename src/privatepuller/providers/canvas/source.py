"""Canvas folders and files -> a listing with change keys, and streamed downloads."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...http.session import HTTPStatusError, ResponseTooLarge
from ...sizes import size_text
from ...sync.names import LocalNamer, sanitize_component, stem
from ...sync.source import Listing, RemoteFile, SkipFile, Skipped, SyncSkip
from .api import CanvasAPI, http_error
from .links import CanvasFile, CanvasFolder, CanvasRepo
from .skips import CanvasSkip

# The fields of Canvas folder and file objects that listing uses.
_ACCESS = ("hidden", "hidden_for_user", "locked_for_user", "lock_explanation")
FOLDER_FIELDS = frozenset(("id", "name", "parent_folder_id", *_ACCESS))
FILE_FIELDS = frozenset(
    ("id", "folder_id", "display_name", "filename", "size", "updated_at", "modified_at", "url")
    + _ACCESS
)


def change_key(file: dict[str, Any]) -> str:
    return "canvas:{}:{}:{}:{}".format(
        file["id"], file.get("size"), file.get("updated_at"), file.get("modified_at")
    )


class CanvasSource:
    """One resolved Canvas folder or file, read through an open `CanvasAPI`."""

    def __init__(self, api: CanvasAPI, repo: CanvasRepo) -> None:
        self.api = api
        self.repo = repo
        if isinstance(repo, CanvasFolder):
            self.source_id = (
                f"canvas:{repo.base_url}/{repo.context}/{repo.context_id}/folders/{repo.folder_id}"
            )
        else:
            self.source_id = f"canvas:{repo.base_url}/files/{repo.file_id}"

    async def list(self) -> Listing[str]:
        if isinstance(self.repo, CanvasFile):
            return await self._list_file(self.repo)
        return await self._list_folder(self.repo)

    async def _list_file(self, repo: CanvasFile) -> Listing[str]:
        data = await self.api.get("files", str(repo.file_id), what=f"“{repo.name}”")
        name = sanitize_component(data.get("display_name") or repo.name)
        if data.get("locked_for_user") or not data.get("url"):
            skipped = Skipped(name, CanvasSkip.LOCKED, _plain(data.get("lock_explanation")))
            return Listing(stem(name), (), (skipped,))
        return Listing(stem(name), (_remote(name, data),))

    async def _list_folder(self, repo: CanvasFolder) -> Listing[str]:
        # Two context-wide listings (100 per page) instead of two requests per folder.
        context = (repo.context, repo.context_id)
        folders, files = await asyncio.gather(
            self.api.paginate(*context, "folders", what="the folder list", keep=FOLDER_FIELDS),
            self.api.paginate(*context, "files", what="the file list", keep=FILE_FIELDS),
        )
        by_parent: dict[int | None, list[dict[str, Any]]] = {}
        for folder in folders:
            by_parent.setdefault(folder.get("parent_folder_id"), []).append(folder)

        namer = LocalNamer()
        namer.root(str(repo.folder_id))
        skipped: list[Skipped] = []
        visible: set[int] = {repo.folder_id}
        # Breadth-first from the synced folder; a folder listed inside itself is visited once.
        queue = [repo.folder_id]
        while queue:
            parent_id = queue.pop(0)
            children = sorted(by_parent.get(parent_id, []), key=lambda f: (f["name"], f["id"]))
            for folder in children:
                folder_id = int(folder["id"])
                if folder_id in visible:
                    continue
                local = namer.folder(str(folder_id), str(parent_id), folder["name"])
                if folder.get("hidden_for_user") or folder.get("hidden"):
                    skipped.append(Skipped(local + "/", CanvasSkip.HIDDEN))
                    continue
                if folder.get("locked_for_user"):
                    skipped.append(
                        Skipped(local + "/", CanvasSkip.LOCKED, folder.get("lock_explanation", ""))
                    )
                    continue
                visible.add(folder_id)
                queue.append(folder_id)

        remote: list[RemoteFile[str]] = []
        mine = [f for f in files if f.get("folder_id") in visible]
        for file in sorted(mine, key=lambda f: (f.get("display_name") or "", f["id"])):
            path = namer.file(str(file["id"]), str(file["folder_id"]), _display_name(file))
            if file.get("hidden_for_user") or file.get("hidden"):
                skipped.append(Skipped(path, CanvasSkip.HIDDEN))
            elif file.get("locked_for_user") or not file.get("url"):
                skipped.append(
                    Skipped(path, CanvasSkip.LOCKED, _plain(file.get("lock_explanation")))
                )
            else:
                remote.append(_remote(path, file))
        return Listing(repo.name, tuple(remote), tuple(skipped))

    async def download(
        self,
        file: RemoteFile[str],
        dest: Path,
        *,
        max_bytes: int | None,
        on_bytes: Callable[[int], None],
    ) -> int:
        try:
            return await self.api.session.download(
                file.handle, dest, max_bytes=max_bytes, on_bytes=on_bytes
            )
        except HTTPStatusError as error:
            raise http_error(error, f"“{file.path}”", download=True) from None
        except ResponseTooLarge as error:
            # Larger than the listing said: excluded like any file over the limit.
            raise SkipFile(SyncSkip.TOO_LARGE, f"more than {size_text(error.limit)}") from None


def _plain(explanation: str | None) -> str:
    """Canvas lock explanations are HTML ("part of the module <b>Week 3</b>")."""
    return html.unescape(re.sub(r"<[^>]+>", "", explanation or "")).strip()


def _display_name(file: dict[str, Any]) -> str:
    return str(file.get("display_name") or file.get("filename") or file["id"])


def _remote(path: str, file: dict[str, Any]) -> RemoteFile[str]:
    """A Canvas file's download handle is its `url` (`/files/:id/download`)."""
    size = file.get("size")
    return RemoteFile(path, int(size) if size is not None else None, change_key(file), file["url"])
