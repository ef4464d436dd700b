"""The fake Drive's data model: items, sharing, visibility, and File resources as JSON.

Access model: an item is visible to an e-mail when it or an ancestor is shared with that
e-mail (a shared drive is shared with its members). Items created with
``needs_resource_key`` (and everything below them) are also "shared by link": they are
visible to anyone who sends ``X-Goog-Drive-Resource-Keys: <id>/<key>`` for the item or for
a link-shared ancestor. Shared-drive items are visible only with ``supportsAllDrives``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import secrets
import string
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .content import (
    DOC_MIME_TYPES,
    EXPORT_LIMIT,
    FOLDER,
    SHORTCUT,
    doc_kind,
    export_links,
    is_google_native,
    synthetic_digest,
)
from .query import Query

OWNER_EMAIL = "instructor@example.edu"
CHECKSUMS = {"md5Checksum": "md5", "sha1Checksum": "sha1", "sha256Checksum": "sha256"}
_ID_ALPHABET = string.ascii_letters + string.digits + "-_"


def random_id(length: int = 32, prefix: str = "1") -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def rfc3339(t: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``, as Drive writes times."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class FakeItem:
    """A snapshot of a file, folder, shortcut or shared drive. The fake replaces (never
    mutates) its records; ``FakeDrive.item(id)`` returns the current one."""

    id: str
    name: str
    mime_type: str
    parents: tuple[str, ...]
    created_time: datetime
    modified_time: datetime
    version: int = 1
    drive_id: str | None = None
    content: bytes | None = field(default=None, repr=False)
    size: int | None = None
    text: str = field(default="", repr=False)
    explicitly_trashed: bool = False
    shared_with: frozenset[str] = frozenset()
    resource_key: str | None = None
    needs_resource_key: bool = False
    abusive: bool = False
    download_quota_exceeded: bool = False
    can_download: bool = True
    export_too_large: bool = False
    shortcut_target_id: str | None = None
    shortcut_target_mime_type: str | None = None
    shortcut_target_resource_key: str | None = None

    @property
    def is_folder(self) -> bool:
        return self.mime_type == FOLDER

    @property
    def is_shortcut(self) -> bool:
        return self.mime_type == SHORTCUT

    @property
    def is_blob(self) -> bool:
        return not is_google_native(self.mime_type)

    @property
    def is_shared_drive(self) -> bool:
        return self.drive_id is not None and self.id == self.drive_id


@dataclass(frozen=True)
class Caller:
    """Who is asking: the token's e-mail and scope, and the resource keys sent."""

    email: str
    scope: str = ""
    keys: Mapping[str, str] = field(default_factory=dict)


class DriveModel:
    """Items and the rules for who sees what; :class:`FakeDrive` serves it over HTTP."""

    def __init__(self) -> None:
        self._items: dict[str, FakeItem] = {}
        self._children: dict[str, list[str]] = defaultdict(list)
        self._my_drive_root = random_id(11, "0A") + "Uk9PVA"  # the owner's (invisible) root
        self._digests: dict[tuple[str, int, str], str] = {}
        self._clock = datetime.now(UTC).replace(microsecond=0)

    # --- data model ---------------------------------------------------------------------

    def item(self, item_id: str) -> FakeItem:
        """The current record of an item (KeyError if deleted)."""
        return self._items[item_id]

    def children(self, folder_id: str) -> list[FakeItem]:
        return [self._items[c] for c in self._children.get(folder_id, ())]

    def add_shared_drive(self, name: str, *, share_with: str | None = None) -> FakeItem:
        drive_id = random_id(11, "0A") + "Uk9PVA"  # 19 chars, like real shared-drive ids
        now = self._tick()
        item = FakeItem(
            id=drive_id,
            name=name,
            mime_type=FOLDER,
            parents=(),
            created_time=now,
            modified_time=now,
            drive_id=drive_id,
            shared_with=frozenset([share_with] if share_with else []),
        )
        self._items[drive_id] = item
        return item

    def add_folder(
        self,
        name: str,
        parent: str | None = None,
        *,
        share_with: str | None = None,
        drive_id: str | None = None,
        resource_key: str | None = None,
        needs_resource_key: bool = False,
    ) -> FakeItem:
        """A folder; ``parent=None`` puts it in the owner's My Drive (or at the root of
        shared drive ``drive_id``). ``needs_resource_key`` makes it link-shared with a key."""
        if parent is None and drive_id is not None:
            parent = drive_id
        return self._add(
            name,
            FOLDER,
            parent,
            share_with=share_with,
            resource_key=resource_key,
            needs_resource_key=needs_resource_key,
        )

    def add_file(
        self,
        name: str,
        parent: str,
        content: bytes | None = None,
        *,
        size: int | None = None,
        mime_type: str = "application/octet-stream",
        trashed: bool = False,
        abusive: bool = False,
        download_quota_exceeded: bool = False,
        can_download: bool = True,
        share_with: str | None = None,
    ) -> FakeItem:
        """A blob. ``size`` without ``content`` = synthetic content, generated on the fly."""
        if is_google_native(mime_type):
            raise ValueError("use add_google_doc/add_folder/add_shortcut for Google types")
        if content is None and size is None:
            content = b""
        if content is not None and size is not None and size != len(content):
            raise ValueError("size must match len(content)")
        return self._add(
            name,
            mime_type,
            parent,
            content=content,
            size=len(content) if content is not None else size,
            explicitly_trashed=trashed,
            abusive=abusive,
            download_quota_exceeded=download_quota_exceeded,
            can_download=can_download,
            share_with=share_with,
        )

    def add_google_doc(
        self,
        name: str,
        parent: str,
        kind: Literal["document", "spreadsheet", "presentation", "drawing", "form"],
        text: str = "",
        *,
        export_too_large: bool = False,
        reported_size: int | None = None,
        abusive: bool = False,
        download_quota_exceeded: bool = False,
        can_download: bool = True,
    ) -> FakeItem:
        """A Google-native file. ``text`` is its Markdown/plain text (Docs, Slides) or CSV
        (Sheets); other export formats are opaque stubs. ``export_too_large`` makes every
        export fail with 403 exportSizeLimitExceeded. ``reported_size`` overrides its `size`
        (Drive's size of a Doc says little about its exports: images make a PDF big).
        ``abusive``, ``download_quota_exceeded`` and ``can_download`` refuse its exports as
        `add_file`'s refuse a blob's download."""
        size = EXPORT_LIMIT + 1024**2 if export_too_large else len(text.encode("utf-8"))
        size = size if reported_size is None else reported_size
        return self._add(
            name,
            DOC_MIME_TYPES[kind],
            parent,
            text=text,
            size=size,
            export_too_large=export_too_large,
            abusive=abusive,
            download_quota_exceeded=download_quota_exceeded,
            can_download=can_download,
        )

    def add_shortcut(self, name: str, parent: str, target_id: str) -> FakeItem:
        """A shortcut; the target may be missing (a dangling shortcut)."""
        target = self._items.get(target_id)
        return self._add(
            name,
            SHORTCUT,
            parent,
            shortcut_target_id=target_id,
            shortcut_target_mime_type=target.mime_type if target else "application/octet-stream",
            shortcut_target_resource_key=target.resource_key if target else None,
        )

    def update_file(self, file_id: str, content: bytes) -> None:
        """New content (a Google-native file takes it as UTF-8 text): version+1, new
        modifiedTime, new checksums."""
        item = self._items[file_id]
        if item.is_folder or item.is_shortcut:
            raise ValueError("folders and shortcuts have no content")
        if item.is_blob:
            changes: dict[str, Any] = {"content": content, "size": len(content)}
        else:
            text = content.decode("utf-8")
            size = item.size if item.export_too_large else len(content)
            changes = {"text": text, "size": size}
        self._replace(item, touch=True, **changes)

    def restrict(
        self,
        file_id: str,
        *,
        abusive: bool | None = None,
        download_quota_exceeded: bool | None = None,
        can_download: bool | None = None,
    ) -> None:
        """Change a file's download refusals later (Google flags it as malware, its download
        quota runs out, its owner turns downloading off): version+1, content unchanged."""
        wanted = {
            "abusive": abusive,
            "download_quota_exceeded": download_quota_exceeded,
            "can_download": can_download,
        }
        changes = {name: value for name, value in wanted.items() if value is not None}
        self._replace(self._items[file_id], touch=False, **changes)

    def rename(self, file_id: str, name: str) -> None:
        self._replace(self._items[file_id], touch=True, name=name)

    def trash(self, file_id: str) -> None:
        """Trash an item; its descendants become (implicitly) trashed too."""
        self._replace(self._items[file_id], touch=False, explicitly_trashed=True)

    def untrash(self, file_id: str) -> None:
        self._replace(self._items[file_id], touch=False, explicitly_trashed=False)

    def delete(self, file_id: str) -> None:
        """Delete permanently, with descendants; shortcuts to it start dangling."""
        item = self._items.pop(file_id)
        for parent in item.parents:
            if file_id in self._children.get(parent, ()):
                self._children[parent].remove(file_id)
        for child in list(self._children.pop(file_id, ())):
            if child in self._items:
                self.delete(child)

    def share(self, item_id: str, email: str) -> None:
        """Give ``email`` a direct reader permission (inherited by descendants)."""
        item = self._items[item_id]
        self._items[item_id] = dataclasses.replace(item, shared_with=item.shared_with | {email})

    def _tick(self) -> datetime:
        """A strictly increasing clock with millisecond resolution."""
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self._clock = max(now, self._clock + timedelta(milliseconds=1))
        return self._clock

    def _add(
        self,
        name: str,
        mime_type: str,
        parent: str | None,
        *,
        share_with: str | None = None,
        **fields: Any,
    ) -> FakeItem:
        if parent is None:
            parents: tuple[str, ...] = (self._my_drive_root,)
            parent_item = None
        else:
            parent_item = self._items[parent]
            if not parent_item.is_folder:
                raise ValueError(f"parent {parent} is not a folder")
            parents = (parent,)
        needs_key = fields.pop("needs_resource_key", False) or bool(
            parent_item and parent_item.needs_resource_key
        )
        resource_key = fields.pop("resource_key", None)
        if needs_key and resource_key is None:
            resource_key = "0-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))
        now = self._tick()
        item = FakeItem(
            id=random_id(),
            name=name,
            mime_type=mime_type,
            parents=parents,
            created_time=now,
            modified_time=now,
            drive_id=parent_item.drive_id if parent_item else None,
            shared_with=frozenset([share_with] if share_with else []),
            resource_key=resource_key,
            needs_resource_key=needs_key,
            **fields,
        )
        self._items[item.id] = item
        self._children[parents[0]].append(item.id)
        return item

    def _replace(self, item: FakeItem, *, touch: bool, **changes: Any) -> None:
        changes["version"] = item.version + 1
        if touch:
            changes["modified_time"] = self._tick()
        self._items[item.id] = dataclasses.replace(item, **changes)

    # --- access -------------------------------------------------------------------------

    def _chain(self, item: FakeItem) -> Iterator[FakeItem]:
        """The item and its ancestors, nearest first."""
        seen: set[str] = set()
        node: FakeItem | None = item
        while node is not None and node.id not in seen:
            yield node
            seen.add(node.id)
            node = self._items.get(node.parents[0]) if node.parents else None

    def _granted(self, item: FakeItem, ctx: Caller) -> bool:
        for node in self._chain(item):
            if ctx.email in node.shared_with:
                return True
            if node.needs_resource_key and ctx.keys.get(node.id) == node.resource_key:
                return True
        return False

    def _visible(self, item: FakeItem, ctx: Caller, all_drives: bool) -> bool:
        if item.drive_id is not None and not all_drives:
            return False
        return self._granted(item, ctx)

    def _lookup(self, file_id: str, ctx: Caller, all_drives: bool) -> FakeItem | None:
        item = self._items.get(file_id)
        if item is None or not self._visible(item, ctx, all_drives):
            return None
        return item

    def _trashed(self, item: FakeItem) -> bool:
        return any(node.explicitly_trashed for node in self._chain(item))

    # --- resources ----------------------------------------------------------------------

    async def _ensure_digests(self, items: Iterable[FakeItem], algorithms: list[str]) -> None:
        """Compute missing checksums; big synthetic files are hashed in a thread."""
        for item in items:
            if not item.is_blob:
                continue
            for algo in algorithms:
                key = (item.id, item.version, algo)
                if key in self._digests:
                    continue
                if item.content is not None:
                    self._digests[key] = hashlib.new(algo, item.content).hexdigest()
                else:
                    size = item.size or 0
                    self._digests[key] = await asyncio.to_thread(
                        synthetic_digest, item.id, item.version, size, algo
                    )

    def _file_json(self, item: FakeItem, ctx: Caller, all_drives: bool) -> dict[str, Any]:
        """The full File resource as this caller sees it (masks are applied afterwards)."""
        parents = [
            p
            for p in item.parents
            if p in self._items and self._visible(self._items[p], ctx, all_drives)
        ]
        owner = {
            "kind": "drive#user",
            "displayName": "Course Instructor",
            "me": False,
            "permissionId": "0" + hashlib.md5(OWNER_EMAIL.encode()).hexdigest()[:19],
            "emailAddress": OWNER_EMAIL,
        }
        kind = doc_kind(item.mime_type)
        res: dict[str, Any] = {
            "kind": "drive#file",
            "id": item.id,
            "name": item.name,
            "mimeType": item.mime_type,
            "starred": False,
            "trashed": self._trashed(item),
            "explicitlyTrashed": item.explicitly_trashed,
        }
        if parents:
            res["parents"] = parents
        res |= {
            "spaces": ["drive"],
            "version": str(item.version),
            "webViewLink": self._web_view_link(item),
            "hasThumbnail": False,
            "thumbnailVersion": "0",
            "viewedByMe": False,
            "createdTime": rfc3339(item.created_time),
            "modifiedTime": rfc3339(item.modified_time),
            "modifiedByMe": False,
            "shared": True,
            "ownedByMe": False,
            "capabilities": self._capabilities(item),
            "viewersCanCopyContent": True,
            "copyRequiresWriterPermission": False,
            "writersCanShare": True,
            "isAppAuthorized": False,
        }
        if item.drive_id is None:
            res["owners"] = [owner]
            res["lastModifyingUser"] = owner
        else:
            res["driveId"] = res["teamDriveId"] = item.drive_id
        if item.resource_key:
            res["resourceKey"] = item.resource_key
        if item.is_blob:
            size = item.size or 0
            res["size"] = res["quotaBytesUsed"] = str(size)
            for field_name, algo in CHECKSUMS.items():
                digest = self._digests.get((item.id, item.version, algo))
                if digest is not None:
                    res[field_name] = digest
            res["headRevisionId"] = (
                "0B" + hashlib.sha1(f"{item.id}:{item.version}".encode()).hexdigest()[:26]
            )
            res["originalFilename"] = item.name
            if "." in item.name.strip("."):
                ext = item.name.rsplit(".", 1)[1]
                res["fileExtension"] = ext
                res["fullFileExtension"] = item.name.split(".", 1)[1]
            res["webContentLink"] = f"https://drive.google.com/uc?id={item.id}&export=download"
        elif kind is not None:
            res["size"] = str(item.size or 0)
            res["quotaBytesUsed"] = "0"
            links = export_links(item.id, item.mime_type, item.resource_key)
            if links:
                res["exportLinks"] = links
        if item.is_shortcut:
            details = {
                "targetId": item.shortcut_target_id,
                "targetMimeType": item.shortcut_target_mime_type,
            }
            if item.shortcut_target_resource_key:
                details["targetResourceKey"] = item.shortcut_target_resource_key
            res["shortcutDetails"] = details
        return res

    @staticmethod
    def _web_view_link(item: FakeItem) -> str:
        kind = doc_kind(item.mime_type)
        if item.is_folder:
            link = f"https://drive.google.com/drive/folders/{item.id}"
            return link + (f"?resourcekey={item.resource_key}" if item.resource_key else "")
        if kind is not None:
            path = {"spreadsheet": "spreadsheets", "drawing": "drawings", "form": "forms"}.get(
                kind, kind
            )
            link = f"https://docs.google.com/{path}/d/{item.id}/edit?usp=drivesdk"
        else:
            link = f"https://drive.google.com/file/d/{item.id}/view?usp=drivesdk"
        return link + (f"&resourcekey={item.resource_key}" if item.resource_key else "")

    @staticmethod
    def _capabilities(item: FakeItem) -> dict[str, bool]:
        return {
            "canDownload": item.can_download,
            "canCopy": item.is_blob and item.can_download,
            "canEdit": False,
            "canComment": False,
            "canShare": False,
            "canRename": False,
            "canTrash": False,
            "canDelete": False,
            "canAddChildren": False,
            "canListChildren": item.is_folder,
            "canReadRevisions": False,
            "canModifyContent": False,
            "canRemoveChildren": False,
            "canChangeCopyRequiresWriterPermission": False,
        }

    def _record(self, item: FakeItem, ctx: Caller) -> dict[str, object]:
        """Values the ``q`` language can test."""
        readers = {e for node in self._chain(item) for e in node.shared_with}
        full_text = item.name + " " + item.text
        if item.content is not None and len(item.content) < 1024**2:
            full_text += " " + item.content.decode("utf-8", "replace")
        return {
            "name": item.name,
            "mimeType": item.mime_type,
            "trashed": self._trashed(item),
            "starred": False,
            "sharedWithMe": ctx.email in item.shared_with,
            "parents": list(item.parents),
            "owners": [OWNER_EMAIL] if item.drive_id is None else [],
            "writers": [],
            "readers": sorted(readers),
            "modifiedTime": item.modified_time,
            "createdTime": item.created_time,
            "fullText": full_text,
        }

    def _search(
        self, query: Query, ctx: Caller, all_drives: bool, corpora: str, drive_id: str | None
    ) -> list[FakeItem]:
        parent_ids = query.required_parents()
        if parent_ids is None:
            candidates: Iterable[str] = list(self._items)
        else:
            candidates = dict.fromkeys(c for p in parent_ids for c in self._children.get(p, ()))
        results = []
        for item_id in candidates:
            item = self._items.get(item_id)
            if item is None or item.is_shared_drive:
                continue
            if corpora == "drive" and item.drive_id != drive_id:
                continue
            if not self._visible(item, ctx, all_drives):
                continue
            if query.matches(self._record(item, ctx)):
                results.append(item)
        return results

    def _drive_json(self, item: FakeItem) -> dict[str, Any]:
        return {
            "kind": "drive#drive",
            "id": item.id,
            "name": item.name,
            "createdTime": rfc3339(item.created_time),
            "hidden": False,
            "capabilities": {"canListChildren": True, "canDownload": True, "canEdit": False},
            "restrictions": {
                "adminManagedRestrictions": False,
                "copyRequiresWriterPermission": False,
                "domainUsersOnly": False,
                "driveMembersOnly": False,
            },
        }
