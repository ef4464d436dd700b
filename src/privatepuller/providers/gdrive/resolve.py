"""Drive links -> repos: the API check that the hub's service account can see a folder or
file, with an answer that says what to do when not (usually: which address to share it with)."""

from __future__ import annotations

from ...errors import NoAccess, NotFound
from ..base import DoesNotExist, Exists, NotVisible
from .api import DriveAPI
from .exports import EXPORTABLE, FOLDER, SHORTCUT, is_google_native, kind_name
from .links import (
    ID_RE,
    DriveLink,
    GoogleDriveFile,
    GoogleDriveFolder,
    GoogleDriveFolderLink,
)


async def resolve(
    api: DriveAPI, link: DriveLink
) -> (
    Exists[GoogleDriveFolder]
    | Exists[GoogleDriveFile]
    | DoesNotExist[GoogleDriveFolder]
    | DoesNotExist[GoogleDriveFile]
):
    is_folder_link = isinstance(link, GoogleDriveFolderLink)
    item_id = link.folder_id if isinstance(link, GoogleDriveFolderLink) else link.file_id
    kind: type = GoogleDriveFolder if is_folder_link else GoogleDriveFile
    noun = "folder" if is_folder_link else "file"
    api.remember_resource_key(item_id, link.resource_key)
    try:
        item = await api.get_file(item_id, what=f"the Drive {noun} in this link")
    except NotFound:  # Drive answers 404 for items it will not show this account
        return NotVisible(kind, await _not_shared(api, noun, link.resource_key is None))
    except NoAccess as error:
        return NotVisible(kind, error.message)

    if item.get("mimeType") == SHORTCUT:  # someone copied a shortcut's link
        details = item.get("shortcutDetails") or {}
        target_id = str(details.get("targetId", ""))
        api.remember_resource_key(target_id, details.get("targetResourceKey"))
        try:
            if not ID_RE.match(target_id):
                raise NotFound("bad shortcut")
            item = await api.get_file(target_id, what=f"the target of “{item.get('name')}”")
        except (NotFound, NoAccess):
            return DoesNotExist(
                kind,
                f"“{item.get('name')}” is a shortcut to something that was deleted or is "
                "not shared with the hub. Ask your instructor for a new link.",
            )
    name = str(item.get("name") or item["id"])
    mime = str(item.get("mimeType", ""))
    if item.get("trashed"):
        return DoesNotExist(
            GoogleDriveFolder if mime == FOLDER else GoogleDriveFile,
            f"“{name}” is in its owner's Google Drive trash, so it cannot be pulled. Ask "
            "your instructor to restore it from the trash, or for a new link.",
        )
    drive_id = item.get("driveId") or None
    resource_key = api.resource_key(str(item["id"]))
    if mime == FOLDER:
        if drive_id is not None and drive_id == item["id"]:  # a shared drive's root
            name = await api.shared_drive_name(drive_id) or name
        return Exists(GoogleDriveFolder(str(item["id"]), name, resource_key, drive_id))
    if is_google_native(mime) and mime not in EXPORTABLE:
        return DoesNotExist(
            GoogleDriveFile,
            f"“{name}” is a {kind_name(mime)}, which Google Drive cannot export as a file, "
            "so it cannot be pulled.",
        )
    if (item.get("capabilities") or {}).get("canDownload") is False:
        return NotVisible(
            GoogleDriveFile,
            f"The owner of “{name}” has turned off downloading for viewers, so it cannot be "
            "pulled. Ask your instructor to allow downloading, or to share it as Editor.",
        )
    return Exists(GoogleDriveFile(str(item["id"]), name, mime, resource_key, drive_id))


async def _not_shared(api: DriveAPI, noun: str, no_resource_key: bool) -> str:
    message = (
        f"The Google Drive {noun} in this link does not exist, or it is not shared with this "
        f"hub. Instructors: share the {noun} (Viewer is enough) with "
        f"{await api.share_with_text()}."
    )
    if no_resource_key:
        message += (
            f" If the {noun} is shared only by link, copy the link again with Share → "
            "Copy link so that it includes its resource key."
        )
    return message
