"""Canvas links -> repos: the API check that a folder or file exists and the student may see
it, with an answer that says what is wrong when not."""

from __future__ import annotations

import asyncio

from ...errors import NoAccess, NotFound
from ..base import DoesNotExist, Exists, NotVisible
from .api import CanvasAPI
from .links import (
    CONTEXT_NOUN,
    CanvasFile,
    CanvasFileLink,
    CanvasFolder,
    CanvasFolderLink,
    CanvasLink,
    CanvasRepo,
    Context,
)


async def resolve(
    api: CanvasAPI, link: CanvasLink
) -> Exists[CanvasRepo] | DoesNotExist[CanvasRepo]:
    if isinstance(link, CanvasFileLink):
        return await resolve_file(api, link)
    return await resolve_folder(api, link)


async def resolve_folder(
    api: CanvasAPI, link: CanvasFolderLink
) -> Exists[CanvasFolder] | DoesNotExist[CanvasFolder]:
    where = _context_text(link.context, link.context_id)
    shown_path = "/".join(link.path)
    try:
        if link.path:
            chain = await api.get(
                link.context,
                link.context_id,
                "folders",
                "by_path",
                *link.path,
                what=f"the folder “{shown_path}” in {where}",
            )
            folder = chain[-1]
            name = folder["name"]
        else:
            folder, name = await asyncio.gather(
                api.get(link.context, link.context_id, "folders", "root", what=where),
                context_name(api, link.context, link.context_id),
            )
    except NotFound:
        if link.path:
            message = (
                f"There is no folder “{shown_path}” in {where}, or it is not visible to you "
                "(it may have been renamed, moved or hidden). Ask your instructor for a new "
                "link."
            )
        else:
            message = f"The files of {where} do not exist or are not visible to you."
        return DoesNotExist(CanvasFolder, message)
    except NoAccess:
        return NotVisible(
            CanvasFolder,
            f"You do not have access to the files of {where}"
            + (f" (folder “{shown_path}”)" if shown_path else "")
            + ". Check that you are enrolled, or ask your instructor.",
        )
    if folder.get("hidden_for_user") or folder.get("locked_for_user"):
        return NotVisible(
            CanvasFolder,
            f"The folder “{shown_path or name}” in {where} is locked or hidden for you.",
        )
    return Exists(
        CanvasFolder(
            link.base_url,
            link.context,
            link.context_id,
            int(folder["id"]),
            name,
            folder.get("full_name") or name,
        )
    )


async def resolve_file(
    api: CanvasAPI, link: CanvasFileLink
) -> Exists[CanvasFile] | DoesNotExist[CanvasFile]:
    try:
        data = await api.get("files", link.file_id, what=f"file {link.file_id}")
    except NotFound:
        return DoesNotExist(
            CanvasFile,
            f"Canvas file {link.file_id} does not exist (it may have been deleted). "
            "Ask your instructor for a new link.",
        )
    except NoAccess:
        return NotVisible(
            CanvasFile,
            f"You do not have access to Canvas file {link.file_id}. Check that you are "
            "enrolled, or ask your instructor.",
        )
    if data.get("locked_for_user") or not data.get("url"):
        explanation = data.get("lock_explanation") or "It is locked."
        return NotVisible(
            CanvasFile, f"“{data.get('display_name')}” cannot be downloaded: {explanation}"
        )
    return Exists(CanvasFile(link.base_url, int(data["id"]), data["display_name"]))


async def context_name(api: CanvasAPI, context: Context, context_id: str) -> str:
    if context == "users":
        return "my files"
    data = await api.get(context, context_id, what=_context_text(context, context_id))
    return str(data.get("name") or f"{CONTEXT_NOUN[context]} {context_id}")


def _context_text(context: Context, context_id: str) -> str:
    if context == "users":
        return "your personal files" if context_id == "self" else f"user {context_id}'s files"
    return f"{CONTEXT_NOUN[context]} {context_id}"
