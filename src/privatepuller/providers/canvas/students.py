"""What an instructor who checks a Canvas link (the link builder) sees that students do not:
unpublished files, files outside their availability dates, files of unpublished folders."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...sync.source import RemoteFile, Skipped
from .links import CanvasFile, CanvasFolder
from .skips import CanvasSkip
from .source import CanvasSource

# Control characters (terminal escapes, bidirectional overrides) never reach a page.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_LOCK_FIELDS = frozenset(("id", "locked", "lock_at", "unlock_at"))
_CHANGE_KEY_ID = re.compile(r"^canvas:(\d+):")


async def students_view(
    source: CanvasSource, files: tuple[RemoteFile[str], ...]
) -> tuple[tuple[RemoteFile[str], ...], list[Skipped]]:
    """`files` split into what students can have and what is locked for them.

    An instructor's Canvas token lists unpublished files (Canvas's `locked` flag), files outside
    their availability dates and the files of unpublished folders like any other file, and
    sends no `locked_for_user`; students get none of these. So the listing is read again (GET)
    with the fields that say so. Module-requirement locks are per student and not visible
    here.
    """
    api, repo = source.api, source.repo
    now = datetime.now(UTC)
    folders: dict[int, dict[str, Any]] = {}
    folder_list: list[dict[str, Any]]
    raw_files: list[dict[str, Any]]
    if isinstance(repo, CanvasFile):
        raw_files = [await api.get("files", str(repo.file_id), what=f"“{repo.name}”")]
    else:
        context = (repo.context, repo.context_id)
        folder_list, raw_files = await asyncio.gather(
            api.paginate(
                *context,
                "folders",
                what="the folder list",
                keep=_LOCK_FIELDS | {"name", "parent_folder_id"},
            ),
            api.paginate(
                *context, "files", what="the file list", keep=_LOCK_FIELDS | {"folder_id"}
            ),
        )
        folders = {f["id"]: f for f in folder_list if isinstance(f.get("id"), int)}
    by_id = {f["id"]: f for f in raw_files if isinstance(f, dict) and isinstance(f.get("id"), int)}
    top = repo.folder_id if isinstance(repo, CanvasFolder) else None

    def folder_lock(folder_id: Any) -> str | None:
        seen: set[int] = set()
        while isinstance(folder_id, int) and folder_id not in seen and folder_id in folders:
            seen.add(folder_id)
            folder = folders[folder_id]
            if why := lock_text(folder, now):
                name = _CONTROL.sub("", str(folder.get("name", "")))
                return f"in the folder “{name}”, which is {why}"
            if folder_id == top:
                break
            folder_id = folder.get("parent_folder_id")
        return None

    visible: list[RemoteFile[str]] = []
    locked: list[Skipped] = []
    for file in files:
        match = _CHANGE_KEY_ID.match(file.change_key)
        raw = by_id.get(int(match.group(1))) if match else None
        why = (lock_text(raw, now) or folder_lock(raw.get("folder_id"))) if raw else None
        if why:
            locked.append(Skipped(file.path, CanvasSkip.LOCKED, why))
        else:
            visible.append(file)
    return tuple(visible), locked


def lock_text(item: Mapping[str, Any], now: datetime) -> str | None:
    """Why Canvas keeps a file or folder from students (its own flags), or None."""
    if item.get("locked"):
        return "unpublished"
    unlock_at = _moment(item.get("unlock_at"))
    if unlock_at is not None and now < unlock_at:
        return f"locked until {_shown_moment(unlock_at)}"
    lock_at = _moment(item.get("lock_at"))
    if lock_at is not None and now >= lock_at:
        return f"locked since {_shown_moment(lock_at)}"
    return None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _shown_moment(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
