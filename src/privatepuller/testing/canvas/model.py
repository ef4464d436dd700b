"""Data model of the fake Canvas: users, courses, groups and their file spaces.

Everything here is plain in-memory state that tests mutate directly; the HTTP layer
(`fake.py`) only reads it. Names and defaults follow canvas-lms
(`app/models/folder.rb`, `app/models/attachment.rb`; enrollments as `lib/api/v1/course_json.rb`
shows them: `type` is Enrollment#sis_type, `role` the role's name).
"""

from __future__ import annotations

import hashlib
import mimetypes
import secrets
import string
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

ContextType = Literal["Course", "Group", "User"]
# An enrollment's `type` in the API (canvas-lms Enrollment#sis_type): the base role. A custom
# course role is made from one of these and keeps its `type`; only its `role` name differs.
Role = Literal["student", "teacher", "ta", "designer", "observer"]
# Enrollment#workflow_state values a course's `enrollments` show (deleted ones are never listed).
EnrollmentState = Literal["active", "invited", "completed", "inactive"]

# The built-in course roles: `type` -> the `role` name the API shows, and an id for `role_id`.
BASE_ROLE_NAMES: dict[Role, str] = {
    "student": "StudentEnrollment",
    "teacher": "TeacherEnrollment",
    "ta": "TaEnrollment",
    "designer": "DesignerEnrollment",
    "observer": "ObserverEnrollment",
}
BASE_ROLE_IDS: dict[Role, int] = {"student": 3, "teacher": 4, "ta": 5, "designer": 6, "observer": 7}
# Roles whose default course permissions include managing files (so they see hidden ones).
MANAGING_ROLES: frozenset[Role] = frozenset({"teacher", "ta", "designer"})
_ROLE_RANK: dict[Role, int] = {"teacher": 0, "ta": 1, "designer": 2, "student": 3, "observer": 4}

# Folder.root_folder_name_for_context in canvas-lms: Course -> "course files",
# User -> "my files", anything else (groups) -> "files".
ROOT_FOLDER_NAMES: dict[ContextType, str] = {
    "Course": "course files",
    "Group": "files",
    "User": "my files",
}

_ALNUM = string.ascii_letters + string.digits
# Synthetic content repeats a pattern of this many bytes, so a 1 GiB file costs nothing
# to hold and any byte range can be produced directly.
_PATTERN_BYTES = 4096
STREAM_CHUNK_BYTES = 256 * 1024

# Extensions Python's mimetypes does not know (or knows differently) on all platforms.
_CONTENT_TYPES = {
    ".ipynb": "application/x-ipynb+json",
    ".csv": "text/csv",
    ".md": "text/markdown",
    ".py": "text/x-python",
    ".txt": "text/plain",
    ".json": "application/json",
}


class TokenError(Exception):
    """Why a presented access token was refused; the message is what Canvas says."""


def random_alnum(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def utcnow() -> datetime:
    # Canvas renders timestamps with whole seconds.
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def guess_content_type(name: str) -> str:
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def mime_class(content_type: str) -> str:
    """A reduced copy of Attachment.mime_class."""
    major = content_type.split("/", 1)[0]
    if major in ("image", "video", "audio"):
        return major
    return {
        "text/html": "html",
        "text/plain": "text",
        "text/csv": "text",
        "application/pdf": "pdf",
        "application/zip": "zip",
        "application/json": "code",
        "text/x-python": "code",
    }.get(content_type, "file")


def split_path(path: str) -> list[str]:
    """Path components, taken literally (".." is a name like any other)."""
    return [part for part in path.split("/") if part]


class Registry:
    """Ids and global indexes shared by every file space of one fake Canvas."""

    def __init__(self) -> None:
        # Separate, non-overlapping ranges per kind, so a client mixing up a folder id
        # and a file id gets a 404 instead of silently reading the wrong object.
        self._next_ids = {"user": 1001, "course": 101, "group": 201, "folder": 10001}
        self._next_ids["file"] = 100001
        self.folders: dict[int, FakeFolder] = {}
        self.files: dict[int, FakeFile] = {}
        self.files_by_uuid: dict[str, FakeFile] = {}

    def new_id(self, kind: str) -> int:
        value = self._next_ids[kind]
        self._next_ids[kind] = value + 1
        return value


@dataclass(eq=False)
class FakeFolder:
    id: int
    space: FakeFileSpace
    name: str
    parent: FakeFolder | None
    position: int | None
    hidden: bool = False
    locked: bool = False
    lock_at: datetime | None = None
    unlock_at: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    folders: dict[str, FakeFolder] = field(default_factory=dict)
    files: dict[str, FakeFile] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """Path relative to the root folder ("" for the root)."""
        names: list[str] = []
        folder: FakeFolder | None = self
        while folder is not None and folder.parent is not None:
            names.append(folder.name)
            folder = folder.parent
        return "/".join(reversed(names))

    @property
    def full_name(self) -> str:
        return "/".join(filter(None, [self.space.root.name, self.path]))

    def ancestors_and_self(self) -> Iterator[FakeFolder]:
        folder: FakeFolder | None = self
        while folder is not None:
            yield folder
            folder = folder.parent

    def currently_locked(self, now: datetime) -> bool:
        """Folder#currently_locked without the hidden part: own flag or lock window."""
        return (
            self.locked
            or (self.lock_at is not None and now > self.lock_at)
            or (self.unlock_at is not None and now < self.unlock_at)
        )

    def hidden_inherited(self) -> bool:
        """Folder#hidden?: hidden itself or inside a hidden folder."""
        return any(folder.hidden for folder in self.ancestors_and_self())

    def locked_inherited(self, now: datetime) -> bool:
        """Folder#locked?: locked itself or inside a locked folder."""
        return any(folder.currently_locked(now) for folder in self.ancestors_and_self())


@dataclass(eq=False)
class FakeFile:
    id: int
    uuid: str
    folder: FakeFolder
    name: str
    display_name: str
    content_type: str
    size: int
    content: bytes | None
    seed: bytes
    locked: bool = False
    hidden: bool = False
    lock_at: datetime | None = None
    unlock_at: datetime | None = None
    module_lock: str | None = None
    lock_explanation: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    modified_at: datetime = field(default_factory=utcnow)

    @property
    def path(self) -> str:
        return "/".join(filter(None, [self.folder.path, self.name]))

    @property
    def filename(self) -> str:
        # Canvas stores the upload's filename URL-form-escaped ("Lecture 1.pdf" ->
        # "Lecture+1.pdf"); clients must name local files after display_name.
        return self.display_name.replace(" ", "+")

    def currently_locked(self, now: datetime) -> bool:
        return (
            self.locked
            or (self.lock_at is not None and now > self.lock_at)
            or (self.unlock_at is not None and now < self.unlock_at)
        )

    def iter_bytes(
        self, start: int = 0, end: int | None = None, chunk_size: int = STREAM_CHUNK_BYTES
    ) -> Iterator[bytes]:
        """Bytes [start, end) in chunks; synthetic content is generated on the fly."""
        stop = self.size if end is None else min(end, self.size)
        if self.content is not None:
            for offset in range(start, stop, chunk_size):
                yield self.content[offset : min(offset + chunk_size, stop)]
            return
        pattern = _pattern(self.seed)
        for offset in range(start, stop, chunk_size):
            length = min(chunk_size, stop - offset)
            shift = offset % _PATTERN_BYTES
            repeats = (shift + length) // _PATTERN_BYTES + 1
            yield (pattern * repeats)[shift : shift + length]

    def read(self) -> bytes:
        """The whole content (for tests; do not call on huge synthetic files)."""
        return b"".join(self.iter_bytes())

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for chunk in self.iter_bytes():
            digest.update(chunk)
        return digest.hexdigest()


def _pattern(seed: bytes) -> bytes:
    blocks = (
        hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(_PATTERN_BYTES // 32)
    )
    return b"".join(blocks)


class FakeFileSpace:
    """The files of one Canvas context (a course, a group or a user's "my files")."""

    def __init__(self, registry: Registry, context_type: ContextType, context_id: int) -> None:
        self._registry = registry
        self.context_type: ContextType = context_type
        self.context_id = context_id
        self.root = self._new_folder(ROOT_FOLDER_NAMES[context_type], None)

    # -- building ---------------------------------------------------------------

    def add_folder(self, path: str, *, hidden: bool = False, locked: bool = False) -> FakeFolder:
        """Create the folder (and missing parents); flags apply to the last one."""
        folder = self._ensure_folder(split_path(path))
        folder.hidden = hidden
        folder.locked = locked
        return folder

    def add_file(
        self,
        path: str,
        content: bytes | None = None,
        *,
        size: int | None = None,
        locked: bool = False,
        hidden: bool = False,
        lock_explanation: str | None = None,
        content_type: str | None = None,
        display_name: str | None = None,
        module_lock: str | None = None,
        lock_at: datetime | None = None,
        unlock_at: datetime | None = None,
    ) -> FakeFile:
        """Add a file; with `size` and no `content` the bytes are synthetic and lazy.

        `locked` is Canvas's own `locked` flag (an unpublished file: students do not
        see it in listings). `module_lock` names a module whose requirements lock the
        file: students see it listed with `locked_for_user` and an empty `url`.
        `display_name` overrides the name shown by the API (to test hostile names).
        """
        *parents, name = split_path(path) or [""]
        if not name:
            raise ValueError(f"not a file path: {path!r}")
        folder = self._ensure_folder(parents)
        if name in folder.files or name in folder.folders:
            raise ValueError(f"already exists: {path!r}")
        if content is None and size is None:
            content = b""
        if content is not None and size is not None and size != len(content):
            raise ValueError("size does not match content")
        shown = display_name if display_name is not None else name
        uuid = random_alnum(40)
        file = FakeFile(
            id=self._registry.new_id("file"),
            uuid=uuid,
            folder=folder,
            name=name,
            display_name=shown,
            content_type=content_type or guess_content_type(shown),
            size=len(content) if content is not None else int(size or 0),
            content=content,
            seed=uuid.encode(),
            locked=locked,
            hidden=hidden,
            lock_at=lock_at,
            unlock_at=unlock_at,
            module_lock=module_lock,
            lock_explanation=lock_explanation,
        )
        folder.files[name] = file
        self._registry.files[file.id] = file
        self._registry.files_by_uuid[file.uuid] = file
        return file

    def update_file(
        self, path: str, content: bytes | None = None, *, size: int | None = None
    ) -> FakeFile:
        """New content for the same file id; updated_at and modified_at move forward."""
        file = self.file(path)
        if content is None and size is None:
            raise ValueError("give content or size")
        file.content = content
        file.size = len(content) if content is not None else int(size or 0)
        file.seed = file.seed + b"+"
        # Strictly later, even within the same second, so that clients comparing
        # modified_at (with Canvas's one-second resolution) always see the change.
        stamp = max(utcnow(), file.modified_at + timedelta(seconds=1))
        file.modified_at = file.updated_at = stamp
        return file

    def remove(self, path: str) -> None:
        """Delete a file or a folder with everything in it (its ids then 404)."""
        parts = split_path(path)
        parent = self._find_folder(parts[:-1])
        if parent is not None and parts and parts[-1] in parent.files:
            self._forget_file(parent.files.pop(parts[-1]))
            return
        folder = self.folder(path)
        if folder.parent is None:
            raise ValueError("cannot remove the root folder")
        del folder.parent.folders[folder.name]
        self._forget_folder(folder)

    def rename(self, old_path: str, new_path: str) -> None:
        """Move or rename a file or folder; ids and uuids stay the same."""
        *new_parents, new_name = split_path(new_path) or [""]
        if not new_name:
            raise ValueError(f"bad target path: {new_path!r}")
        old_parts = split_path(old_path)
        old_parent = self._find_folder(old_parts[:-1])
        is_file = old_parent is not None and bool(old_parts) and old_parts[-1] in old_parent.files
        target = self._ensure_folder(new_parents)
        if new_name in target.files or new_name in target.folders:
            raise ValueError(f"already exists: {new_path!r}")
        now = utcnow()
        if is_file and old_parent is not None:
            file = old_parent.files.pop(old_parts[-1])
            if file.display_name == file.name:
                file.display_name = new_name
            file.name = new_name
            file.folder = target
            file.updated_at = now
            target.files[new_name] = file
            return
        folder = self.folder(old_path)
        if folder.parent is None:
            raise ValueError("cannot move the root folder")
        if any(f is folder for f in target.ancestors_and_self()):
            raise ValueError("cannot move a folder into itself")
        del folder.parent.folders[folder.name]
        folder.name = new_name
        folder.parent = target
        folder.updated_at = now
        target.folders[new_name] = folder

    # -- lookup -----------------------------------------------------------------

    def file(self, path: str) -> FakeFile:
        *parents, name = split_path(path) or [""]
        folder = self._find_folder(parents)
        if folder is None or name not in folder.files:
            raise KeyError(path)
        return folder.files[name]

    def folder(self, path: str) -> FakeFolder:
        folder = self._find_folder(split_path(path))
        if folder is None:
            raise KeyError(path)
        return folder

    def all_folders(self) -> list[FakeFolder]:
        """Every folder, the root first, parents before children."""
        result: list[FakeFolder] = []
        pending = [self.root]
        while pending:
            folder = pending.pop(0)
            result.append(folder)
            pending.extend(folder.folders.values())
        return result

    def all_files(self) -> list[FakeFile]:
        return [file for folder in self.all_folders() for file in folder.files.values()]

    # -- internals --------------------------------------------------------------

    def _new_folder(self, name: str, parent: FakeFolder | None) -> FakeFolder:
        position = None if parent is None else len(parent.folders) + 1
        folder = FakeFolder(
            id=self._registry.new_id("folder"),
            space=self,
            name=name,
            parent=parent,
            position=position,
        )
        if parent is not None:
            parent.folders[name] = folder
        self._registry.folders[folder.id] = folder
        return folder

    def _find_folder(self, parts: list[str]) -> FakeFolder | None:
        folder = self.root
        for part in parts:
            if part not in folder.folders:
                return None
            folder = folder.folders[part]
        return folder

    def _ensure_folder(self, parts: list[str]) -> FakeFolder:
        folder = self.root
        for part in parts:
            if part in folder.files:
                raise ValueError(f"a file is in the way: {part!r}")
            folder = folder.folders.get(part) or self._new_folder(part, folder)
        return folder

    def _forget_file(self, file: FakeFile) -> None:
        self._registry.files.pop(file.id, None)
        self._registry.files_by_uuid.pop(file.uuid, None)

    def _forget_folder(self, folder: FakeFolder) -> None:
        for file in folder.files.values():
            self._forget_file(file)
        for sub in folder.folders.values():
            self._forget_folder(sub)
        self._registry.folders.pop(folder.id, None)


@dataclass(eq=False)
class FakeUser:
    id: int
    name: str
    login_id: str
    files: FakeFileSpace
    token: str = field(default="", repr=False)  # kept out of failure reports

    @property
    def sortable_name(self) -> str:
        first, _, last = self.name.rpartition(" ")
        return f"{last}, {first}" if first else last


@dataclass(eq=False)
class FakeEnrollment:
    """One enrollment of a user in a course (Canvas keeps one per user, type and section)."""

    user_id: int
    type: Role
    state: EnrollmentState = "active"
    # A custom course role's name (e.g. "Grader", made from "ta"); None for the built-in role.
    role_name: str | None = None
    # An observer's enrollment is linked to the student they observe.
    associated_user_id: int | None = None

    @property
    def role(self) -> str:
        return self.role_name or BASE_ROLE_NAMES[self.type]

    @property
    def role_id(self) -> int:
        if self.role_name is None:
            return BASE_ROLE_IDS[self.type]
        return 100 + zlib.crc32(self.role_name.encode()) % 900  # a custom role's own id


@dataclass(eq=False)
class FakeCourse:
    id: int
    name: str
    uuid: str
    files: FakeFileSpace
    enrollments: list[FakeEnrollment] = field(default_factory=list)
    # Past its end (course or term dates): every enrollment in it counts as completed by date,
    # so it is no longer among a user's active courses, and its groups are `concluded`.
    concluded: bool = False
    created_at: datetime = field(default_factory=utcnow)

    @property
    def course_code(self) -> str:
        return self.name

    @property
    def roles(self) -> dict[int, Role]:
        """Who may read the course: each user's most privileged enrollment that still grants
        access (active, or completed: Canvas keeps past courses readable)."""
        roles: dict[int, Role] = {}
        for enrollment in self.enrollments:
            if enrollment.state not in ("active", "completed"):
                continue
            held = roles.get(enrollment.user_id)
            if held is None or _ROLE_RANK[enrollment.type] < _ROLE_RANK[held]:
                roles[enrollment.user_id] = enrollment.type
        return roles

    def enroll(
        self,
        user: FakeUser,
        role: Role = "student",
        *,
        state: EnrollmentState = "active",
        role_name: str | None = None,
        observing: FakeUser | None = None,
    ) -> FakeEnrollment:
        """Enroll `user` as `role` (again: updates that enrollment, as Canvas does)."""
        for enrollment in self.enrollments:
            if enrollment.user_id == user.id and enrollment.type == role:
                enrollment.state = state
                enrollment.role_name = role_name
                enrollment.associated_user_id = observing.id if observing else None
                return enrollment
        enrollment = FakeEnrollment(
            user.id, role, state, role_name, observing.id if observing else None
        )
        self.enrollments.append(enrollment)
        return enrollment

    def unenroll(self, user: FakeUser, role: Role | None = None) -> None:
        """Delete the user's enrollments (only the `role` one, if given); Canvas lists deleted
        enrollments nowhere."""
        self.enrollments = [
            e
            for e in self.enrollments
            if not (e.user_id == user.id and (role is None or e.type == role))
        ]

    def enrollments_of(self, user: FakeUser) -> list[FakeEnrollment]:
        return [e for e in self.enrollments if e.user_id == user.id]

    def state_by_date(self, enrollment: FakeEnrollment) -> EnrollmentState:
        """Enrollment#state_based_on_date, for the dates this fake models (course concluded)."""
        if self.concluded and enrollment.state in ("active", "invited"):
            return "completed"
        return enrollment.state


@dataclass(eq=False)
class FakeGroup:
    id: int
    name: str
    course: FakeCourse | None
    files: FakeFileSpace
    members: set[int] = field(default_factory=set)
    created_at: datetime = field(default_factory=utcnow)

    @property
    def concluded(self) -> bool:
        """Group JSON's `concluded`: its course has concluded (account groups never do)."""
        return self.course is not None and self.course.concluded

    def add_member(self, user: FakeUser) -> None:
        self.members.add(user.id)

    def remove_member(self, user: FakeUser) -> None:
        self.members.discard(user.id)
