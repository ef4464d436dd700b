"""Google Drive links (what a URL names, not yet checked) and repos (what the hub's service
account can see), and the link forms people copy from the browser (folders, shared-drive roots,
files, Docs/Sheets/Slides, Colab), recognised without network.

A link becomes a repo in `resolve.py`, with the hub's service account.

A `resourcekey=` in the link (files shared by link after Google's 2021 security update) is kept
and sent as `X-Goog-Drive-Resource-Keys`. Published copies (`/d/e/...`) are refused: their id is
not a Drive file id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from yarl import URL

from ...errors import UnsupportedURL

# What a link says the item is; "any" for `open?id=` / `uc?id=` links (file or folder).
Expected = Literal[
    "folder",
    "file",
    "document",
    "spreadsheet",
    "presentation",
    "drawing",
    "form",
    "colab",
    "any",
]

# Drive ids are URL-safe base64-ish; the shortest real ones (shared drives) have 19 characters.
ID_RE = re.compile(r"^[A-Za-z0-9_-]{10,200}$")
RESOURCE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


@dataclass(frozen=True)
class GoogleDriveFolderLink:
    """A folder (or shared-drive root) named by a link; not yet checked."""

    folder_id: str
    resource_key: str | None = None

    immutable = False


@dataclass(frozen=True)
class GoogleDriveFileLink:
    """A file named by a link (or an `open?id=` link that may be a folder); not yet checked."""

    file_id: str
    resource_key: str | None = None
    expected: Expected = "file"

    immutable = False


@dataclass(frozen=True)
class GoogleDriveFolder:
    """A folder the hub's service account can see."""

    folder_id: str
    name: str  # default local folder name
    resource_key: str | None = None
    drive_id: str | None = None  # set for folders in a shared drive (and its root)

    immutable = False


@dataclass(frozen=True)
class GoogleDriveFile:
    """A single file the service account can see (a blob, a Colab notebook or a Google doc)."""

    file_id: str
    name: str
    mime_type: str
    resource_key: str | None = None
    drive_id: str | None = None

    immutable = False


DRIVE_HOSTS = frozenset({"drive.google.com", "docs.google.com", "drive.usercontent.google.com"})
COLAB_HOST = "colab.research.google.com"
DOC_KINDS: dict[str, Expected] = {
    "document": "document",
    "spreadsheets": "spreadsheet",
    "presentation": "presentation",
    "drawings": "drawing",
    "forms": "form",
}

PUBLISHED = (
    "This is the address of a published copy of a Google file (File → Share → Publish to web, "
    "or a form's public link). A published copy does not name the file in Drive, so it cannot "
    "be pulled. Use the file's own link instead (the Share button → Copy link), and share the "
    "file with the hub's service account."
)
NOT_AN_ITEM = (
    "This Google link is not the address of a Drive folder or file. Open the folder (or file) "
    "in Google Drive and copy the address from the browser, or use Share → Copy link."
)


def _strip_account(parts: list[str]) -> list[str]:
    """Drop the `u/<n>` account-index segments Google inserts for multi-account browsers."""
    out: list[str] = []
    i = 0
    while i < len(parts):
        if parts[i] == "u" and i + 1 < len(parts) and parts[i + 1].isdigit():
            i += 2
            continue
        out.append(parts[i])
        i += 1
    return out


def _checked_id(raw: str | None) -> str:
    if raw is None or not ID_RE.match(raw):
        raise UnsupportedURL(
            "This Google Drive link does not contain a valid folder or file id; copy the link "
            "again (Share → Copy link)."
        )
    return raw


def _resource_key(url: URL) -> str | None:
    raw = url.query.get("resourcekey") or url.query.get("resourceKey")
    if raw is None or raw == "":
        return None
    if not RESOURCE_KEY_RE.match(raw):
        raise UnsupportedURL(
            "The resourcekey in this Google Drive link is malformed; copy the link again "
            "(Share → Copy link)."
        )
    return raw


def parse_drive_url(url: URL) -> GoogleDriveFolderLink | GoogleDriveFileLink | None:
    """Recognise Google Drive links; None for anything that is not Google's.

    Raises `UnsupportedURL` for Google links that name no pullable item (published copies,
    Drive's home page, malformed ids), with a message saying what to copy instead.
    """
    if url.scheme not in ("http", "https") or not url.host:
        return None
    host = url.host.rstrip(".").lower()
    parts = _strip_account([p for p in url.path.split("/") if p])

    if host == COLAB_HOST:
        # colab.research.google.com/drive/<id>; /github/..., /gist/... are not Drive files.
        if len(parts) >= 2 and parts[0] == "drive":
            return GoogleDriveFileLink(_checked_id(parts[1]), _resource_key(url), "colab")
        return None
    if host not in DRIVE_HOSTS:
        return None

    resource_key = _resource_key(url)
    query_id = url.query.get("id") or url.query.get("key")
    head = parts[0] if parts else ""

    if host == "drive.google.com" and head == "drive":
        rest = parts[1:]
        if rest[:1] == ["mobile"]:
            rest = rest[1:]
        if len(rest) >= 2 and rest[0] == "folders":
            return GoogleDriveFolderLink(_checked_id(rest[1]), resource_key)
        raise UnsupportedURL(NOT_AN_ITEM)
    if head in ("folderview", "embeddedfolderview") and host == "drive.google.com":
        return GoogleDriveFolderLink(_checked_id(query_id), resource_key)
    if head == "file" and len(parts) >= 3 and parts[1] == "d":
        if parts[2] == "e":
            raise UnsupportedURL(PUBLISHED)
        return GoogleDriveFileLink(_checked_id(parts[2]), resource_key, "file")
    if head in ("open", "uc", "download") and query_id is not None:
        return GoogleDriveFileLink(_checked_id(query_id), resource_key, "any")
    if host == "docs.google.com" and head in DOC_KINDS and len(parts) >= 3 and parts[1] == "d":
        if parts[2] == "e":
            raise UnsupportedURL(PUBLISHED)
        return GoogleDriveFileLink(_checked_id(parts[2]), resource_key, DOC_KINDS[head])
    if host == "docs.google.com" and parts[:2] == ["spreadsheet", "ccc"] and query_id:
        return GoogleDriveFileLink(_checked_id(query_id), resource_key, "spreadsheet")
    if host == "docs.google.com" and parts[:2] == ["spreadsheet", "pub"]:
        raise UnsupportedURL(PUBLISHED)
    raise UnsupportedURL(NOT_AN_ITEM)


DriveLink = GoogleDriveFolderLink | GoogleDriveFileLink
DriveRepo = GoogleDriveFolder | GoogleDriveFile
