"""Request handlers of the fake Canvas: REST API (files and folders; the caller's courses and
groups), downloads, file store.

Permissions follow canvas-lms: `Attachments::ScopedToUser` (students list neither hidden
nor locked files, nor anything in hidden or locked folders), the Folder and Attachment
policies (a student may read a locked file's metadata but not download it), and
`AuthenticationMethods#render_json_unauthorized` / `ApplicationController#api_error_json`
for the error bodies.
"""

from __future__ import annotations

import json
import math
import re
import socket
import struct
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from .model import (
    MANAGING_ROLES,
    FakeCourse,
    FakeEnrollment,
    FakeFile,
    FakeFileSpace,
    FakeFolder,
    FakeGroup,
    FakeUser,
    TokenError,
    utcnow,
)
from .shapes import (
    Json,
    course_json,
    file_json,
    file_locked_for,
    folder_json,
    group_json,
    profile_json,
    user_json,
)

if TYPE_CHECKING:
    from .fake import FakeCanvas

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ApiHandler = Callable[[web.Request, FakeUser], Awaitable[web.StreamResponse]]

DEFAULT_PER_PAGE = 10  # Api::PER_PAGE
MAX_PER_PAGE = 100  # Api::MAX_PER_PAGE
# Api::EXCLUDE_IN_PAGINATION_LINKS: never echoed into Link URLs.
_EXCLUDED_LINK_PARAMS = frozenset({"page", "per_page", "access_token", "api_key"})
_SINGULAR = {"courses": "course", "groups": "group", "users": "user"}
_CTX = "{kind:courses|groups|users}/{cid}"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class ApiError(Exception):
    """Stops a handler with a ready-made Canvas error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True)
class Access:
    read: bool
    # May see hidden and locked content (teachers; group members; a user's own files).
    manage: bool


def canvas_json(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(data, ensure_ascii=False),
        content_type="application/json",
        headers=headers,
    )


def not_found() -> ApiError:
    return ApiError(
        canvas_json({"errors": [{"message": "The specified resource does not exist."}]}, 404)
    )


def unauthorized() -> ApiError:
    # A valid user without permission: no WWW-Authenticate, which is how clients tell
    # this apart from a bad token.
    body = {
        "status": "unauthorized",
        "errors": [{"message": "user not authorized to perform that action"}],
    }
    return ApiError(canvas_json(body, 401))


def abort_connection(request: web.Request, *, rst: bool) -> None:
    """Close the client connection; with `rst`, abruptly (TCP reset, data may be lost)."""
    transport = request.transport
    if transport is None:
        return
    if rst:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


# Per-request state shared by the middlewares and the handlers.
FAULT_KEY: web.RequestKey[str | None] = web.RequestKey("privatepuller_fault")
# Set when the status line never went out (connection reset or stalled).
SENT_STATUS_KEY: web.RequestKey[int | None] = web.RequestKey("privatepuller_sent_status")


def query_param(request: web.Request, name: str, default: str | None = None) -> str | None:
    """A scalar query parameter as Rails reads it: the last of repeated values wins.

    canvasapi relies on this: `get_files(per_page=40)` sends `per_page=40&per_page=100`.
    """
    values = request.query.getall(name, [])
    return values[-1] if values else default


def ruby_to_i(value: str | None) -> int:
    """String#to_i: leading integer or 0."""
    match = re.match(r"\s*([+-]?\d+)", value or "")
    return int(match.group(1)) if match else 0


def parse_id(raw: str) -> int:
    if not raw.isdigit():
        raise not_found()
    return int(raw)


def query_includes(request: web.Request) -> set[str]:
    return set(request.query.getall("include[]", [])) | set(request.query.getall("include", []))


class CanvasApi:
    def __init__(self, canvas: FakeCanvas) -> None:
        self.canvas = canvas

    # -- routing -------------------------------------------------------------------

    def add_canvas_routes(self, router: web.UrlDispatcher) -> None:
        ctx = f"/api/v1/{_CTX}"
        api = self._api
        routes: list[tuple[str, str, ApiHandler]] = [
            (f"{ctx}/files", "/api/v1/{kind}/:{ctx}_id/files", self.context_files),
            (f"{ctx}/folders", "/api/v1/{kind}/:{ctx}_id/folders", self.context_folders),
            (
                f"{ctx}/folders/by_path",
                "/api/v1/{kind}/:{ctx}_id/folders/by_path",
                self.resolve_path,
            ),
            (
                f"{ctx}/folders/by_path/{{path:.*}}",
                "/api/v1/{kind}/:{ctx}_id/folders/by_path/*full_path",
                self.resolve_path,
            ),
            (
                f"{ctx}/folders/{{folder_id}}",
                "/api/v1/{kind}/:{ctx}_id/folders/:id",
                self.context_folder,
            ),
            (f"{ctx}/files/{{file_id}}", "/api/v1/{kind}/:{ctx}_id/files/:id", self.context_file),
            ("/api/v1/folders/{folder_id}", "/api/v1/folders/:id", self.folder),
            ("/api/v1/folders/{folder_id}/folders", "/api/v1/folders/:id/folders", self.subfolders),
            ("/api/v1/folders/{folder_id}/files", "/api/v1/folders/:id/files", self.folder_files),
            ("/api/v1/files/{file_id}", "/api/v1/files/:id", self.file),
            ("/api/v1/courses", "/api/v1/courses", self.courses),
            ("/api/v1/courses/{cid}", "/api/v1/courses/:id", self.course),
            ("/api/v1/users/self/groups", "/api/v1/users/self/groups", self.own_groups),
            ("/api/v1/groups/{cid}", "/api/v1/groups/:group_id", self.group),
            ("/api/v1/users/{cid}", "/api/v1/users/:id", self.user),
            ("/api/v1/users/{cid}/profile", "/api/v1/users/:user_id/profile", self.profile),
        ]
        for path, scope, handler in routes:
            router.add_get(path, api(scope, handler))
        router.add_get("/files/{file_id}/download", self.download)
        router.add_get(f"/{_CTX}/files/{{file_id}}/download", self.download)

    def add_fallback_route(self, router: web.UrlDispatcher) -> None:
        async def fallback(request: web.Request) -> web.StreamResponse:
            raise not_found()

        router.add_route("GET", "/{tail:.*}", fallback)

    def add_filestore_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/blob/{uuid}", self.blob)

    async def call(self, handler: Handler, request: web.Request) -> web.StreamResponse:
        """Run a Canvas-origin handler, turning errors into Canvas responses."""
        try:
            return await handler(request)
        except ApiError as error:
            return error.response
        except web.HTTPNotFound:
            return not_found().response
        except web.HTTPException as exc:
            return web.Response(status=exc.status, text=exc.text, headers=exc.headers)

    # -- authentication ------------------------------------------------------------

    def presented_token(self, request: web.Request) -> str | None:
        # AuthenticationMethods.access_token: a Bearer header, else ?access_token=.
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme == "Bearer" and value:
            return value
        return query_param(request, "access_token") or None

    def invalid_token_response(self, message: str) -> web.Response:
        return canvas_json(
            {"errors": [{"message": message}]},
            401,
            headers={"WWW-Authenticate": 'Bearer realm="canvas-lms"'},
        )

    def error_500(self) -> web.Response:
        body = {
            "errors": [{"message": "An error occurred.", "error_code": "internal_server_error"}]
        }
        return canvas_json(body, 500)

    def optional_user(self, request: web.Request) -> FakeUser | None:
        token = self.presented_token(request)
        if token is None:
            return None
        try:
            return self.canvas.authenticate(token)
        except TokenError as error:
            raise ApiError(self.invalid_token_response(str(error))) from None

    def require_user(self, request: web.Request) -> FakeUser:
        user = self.optional_user(request)
        if user is None:
            body = {
                "status": "unauthenticated",
                "errors": [{"message": "user authorization required"}],
            }
            raise ApiError(
                canvas_json(body, 401, headers={"WWW-Authenticate": 'Bearer realm="canvas-lms"'})
            )
        return user

    def _api(self, scope_template: str, handler: ApiHandler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            user = self.require_user(request)
            token = self.presented_token(request)
            record = self.canvas.tokens.get(token or "")
            if record is not None and record.scopes:
                kind = request.match_info.get("kind", "")
                scope = "url:GET|" + scope_template.format(kind=kind, ctx=_SINGULAR.get(kind, ""))
                if scope not in record.scopes:
                    body = {"errors": [{"message": "Insufficient scopes on access token."}]}
                    raise ApiError(canvas_json(body, 401))
            return await handler(request, user)

        return wrapped

    # -- permissions ---------------------------------------------------------------

    def access(self, space: FakeFileSpace, user: FakeUser) -> Access:
        context = self.canvas.context_of(space)
        if isinstance(context, FakeUser):
            own = context.id == user.id
            return Access(read=own, manage=own)
        if isinstance(context, FakeGroup):
            teacher = (
                context.course is not None and context.course.roles.get(user.id) in MANAGING_ROLES
            )
            member = user.id in context.members or teacher
            # Group members may manage group files, so they also see hidden ones.
            return Access(read=member, manage=member)
        role = context.roles.get(user.id)
        return Access(read=role is not None, manage=role in MANAGING_ROLES)

    def readable_space(self, space: FakeFileSpace, user: FakeUser) -> Access:
        access = self.access(space, user)
        if not access.read:
            raise unauthorized()
        return access

    def check_read_contents(self, folder: FakeFolder, access: Access, now: datetime) -> None:
        # Folder policy :read_contents: visible and not locked, up to the root.
        if not access.manage and (folder.hidden_inherited() or folder.locked_inherited(now)):
            raise unauthorized()

    def space_from_path(self, request: web.Request, user: FakeUser) -> FakeFileSpace:
        kind = request.match_info["kind"]
        raw = request.match_info["cid"]
        if kind == "users" and raw == "self":
            return user.files
        context_id = parse_id(raw)
        context: FakeCourse | FakeGroup | FakeUser | None
        if kind == "courses":
            context = self.canvas.courses.get(context_id)
        elif kind == "groups":
            context = self.canvas.groups.get(context_id)
        else:
            context = self.canvas.users.get(context_id)
        if context is None:
            raise not_found()
        return context.files

    def lookup_folder(self, raw_id: str) -> FakeFolder:
        folder = self.canvas.registry.folders.get(parse_id(raw_id))
        if folder is None:
            raise not_found()
        return folder

    def lookup_file(self, raw_id: str) -> FakeFile:
        file = self.canvas.registry.files.get(parse_id(raw_id))
        if file is None:
            raise not_found()
        return file

    # -- pagination ------------------------------------------------------------------

    def paginate(self, request: web.Request, items: Sequence[T], path: str) -> tuple[list[T], str]:
        """One page of `items` and the Link header, exactly as Api.paginate builds them."""
        per_page_raw = query_param(request, "per_page")
        requested = ruby_to_i(per_page_raw) if per_page_raw is not None else DEFAULT_PER_PAGE
        per_page = min(max(requested, 1), MAX_PER_PAGE)
        page_raw = query_param(request, "page", "1") or ""
        if not page_raw.isdigit() or int(page_raw) < 1:
            raise not_found()  # will_paginate's InvalidPage
        page = int(page_raw)
        last = max(1, math.ceil(len(items) / per_page))
        pages = {
            "current": page,
            "next": page + 1 if page < last else None,
            "prev": page - 1 if page > 1 else None,
            "first": 1,
            "last": last,
        }
        base = f"{self.canvas.base_url}{path}?{self._link_query(request)}"
        links = [
            f'<{base}page={number}&per_page={per_page}>; rel="{rel}"'
            for rel, number in pages.items()
            if number is not None
        ]
        start = (page - 1) * per_page
        return list(items[start : start + per_page]), ",".join(links)

    @staticmethod
    def _link_query(request: web.Request) -> str:
        # Rails: query_parameters.except(...).to_query - "k[]" arrays, sorted pairs.
        arrays: dict[str, list[str]] = {}
        scalars: dict[str, str] = {}
        for key, value in request.query.items():
            if key.endswith("[]"):
                arrays.setdefault(key, []).append(value)
            elif key not in _EXCLUDED_LINK_PARAMS:
                scalars[key] = value
        pairs = [urllib.parse.urlencode({k: v}) for k, v in scalars.items()]
        pairs += [urllib.parse.urlencode([(k, v) for v in vs]) for k, vs in arrays.items()]
        return "".join(f"{pair}&" for pair in sorted(pairs))

    def page_response(
        self, request: web.Request, items: Sequence[T], path: str, render: Callable[[T], Json]
    ) -> web.Response:
        page, link = self.paginate(request, items, path)
        return canvas_json([render(item) for item in page], headers={"Link": link})

    # -- sorting and filtering ---------------------------------------------------------

    @staticmethod
    def sort_files(request: web.Request, files: list[FakeFile]) -> list[FakeFile]:
        sort = query_param(request, "sort") or query_param(request, "sort_by") or "name"
        keys: dict[str, Callable[[FakeFile], Any]] = {
            "size": lambda f: (f.size, f.id),
            "created_at": lambda f: (f.created_at, f.id),
            "updated_at": lambda f: (f.updated_at, f.id),
            "content_type": lambda f: (f.content_type, f.id),
        }
        key = keys.get(sort, lambda f: (f.display_name.casefold(), f.id))
        return sorted(files, key=key, reverse=query_param(request, "order") == "desc")

    @staticmethod
    def sort_folders(request: web.Request, folders: list[FakeFolder]) -> list[FakeFolder]:
        if query_param(request, "sort_by") == "position":
            return sorted(folders, key=lambda f: (f.position or 0, f.name.casefold(), f.id))
        return sorted(folders, key=lambda f: (f.name.casefold(), f.id))

    @staticmethod
    def file_listed(file: FakeFile, now: datetime) -> bool:
        """Attachments::ScopedToUser for a student: not hidden, not locked."""
        return not file.hidden and not file.currently_locked(now)

    @staticmethod
    def folder_listed(folder: FakeFolder, now: datetime) -> bool:
        return not folder.hidden_inherited() and not folder.locked_inherited(now)

    # -- JSON helpers ------------------------------------------------------------------

    def render_file(
        self, access: Access, now: datetime, preview_url: bool = False
    ) -> Callable[[FakeFile], Json]:
        def render(file: FakeFile) -> Json:
            return file_json(
                file,
                base_url=self.canvas.base_url,
                manage=access.manage,
                now=now,
                include_preview_url=preview_url,
                verifier_urls=self.canvas.verifier_urls,
            )

        return render

    def render_folder(self, access: Access, now: datetime) -> Callable[[FakeFolder], Json]:
        def render(folder: FakeFolder) -> Json:
            return folder_json(folder, base_url=self.canvas.base_url, manage=access.manage, now=now)

        return render

    @staticmethod
    def context_path(space: FakeFileSpace) -> str:
        return f"/api/v1/{space.context_type.lower()}s/{space.context_id}"

    # -- files and folders --------------------------------------------------------------

    async def context_files(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        space = self.space_from_path(request, user)
        access = self.readable_space(space, user)
        now = utcnow()
        files = space.all_files()
        if not access.manage:
            files = [
                f for f in files if self.file_listed(f, now) and self.folder_listed(f.folder, now)
            ]
        return self.page_response(
            request,
            self.sort_files(request, files),
            f"{self.context_path(space)}/files",
            self.render_file(access, now, "preview_url" in query_includes(request)),
        )

    async def context_folders(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        space = self.space_from_path(request, user)
        access = self.readable_space(space, user)
        now = utcnow()
        folders = space.all_folders()
        if not access.manage:
            folders = [f for f in folders if self.folder_listed(f, now)]
        return self.page_response(
            request,
            self.sort_folders(request, folders),
            f"{self.context_path(space)}/folders",
            self.render_folder(access, now),
        )

    async def resolve_path(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        space = self.space_from_path(request, user)
        access = self.readable_space(space, user)
        now = utcnow()
        # Ruby's String#split drops trailing empty parts; an inner "" matches nothing.
        parts = request.match_info.get("path", "").split("/")
        while parts and parts[-1] == "":
            parts.pop()
        chain = [space.root]
        for part in parts:
            sub = chain[-1].folders.get(part)
            if sub is None or (not access.manage and (sub.hidden or sub.currently_locked(now))):
                raise not_found()
            chain.append(sub)
        render = self.render_folder(access, now)
        return canvas_json([render(folder) for folder in chain])

    async def context_folder(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        space = self.space_from_path(request, user)
        raw = request.match_info["folder_id"]
        folder = space.root if raw == "root" else self.lookup_folder(raw)
        if folder.space is not space:
            raise not_found()
        return self._show_folder(folder, user)

    async def folder(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        return self._show_folder(self.lookup_folder(request.match_info["folder_id"]), user)

    def _show_folder(self, folder: FakeFolder, user: FakeUser) -> web.Response:
        access = self.readable_space(folder.space, user)
        now = utcnow()
        self.check_read_contents(folder, access, now)
        return canvas_json(self.render_folder(access, now)(folder))

    async def subfolders(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        folder = self.lookup_folder(request.match_info["folder_id"])
        access = self.readable_space(folder.space, user)
        now = utcnow()
        self.check_read_contents(folder, access, now)
        folders = list(folder.folders.values())
        if not access.manage:
            folders = [f for f in folders if not f.hidden and not f.currently_locked(now)]
        return self.page_response(
            request,
            self.sort_folders(request, folders),
            f"/api/v1/folders/{folder.id}/folders",
            self.render_folder(access, now),
        )

    async def folder_files(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        folder = self.lookup_folder(request.match_info["folder_id"])
        access = self.readable_space(folder.space, user)
        now = utcnow()
        self.check_read_contents(folder, access, now)
        files = list(folder.files.values())
        if not access.manage:
            files = [f for f in files if self.file_listed(f, now)]
        return self.page_response(
            request,
            self.sort_files(request, files),
            f"/api/v1/folders/{folder.id}/files",
            self.render_file(access, now, "preview_url" in query_includes(request)),
        )

    async def file(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        return self._show_file(self.lookup_file(request.match_info["file_id"]), user)

    async def context_file(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        space = self.space_from_path(request, user)
        file = self.lookup_file(request.match_info["file_id"])
        if file.folder.space is not space:
            raise not_found()
        return self._show_file(file, user)

    def _show_file(self, file: FakeFile, user: FakeUser) -> web.Response:
        # Attachment policy: reading metadata needs only access to the context; a
        # locked file comes back with locked_for_user and no url.
        access = self.readable_space(file.folder.space, user)
        return canvas_json(self.render_file(access, utcnow(), preview_url=True)(file))

    # -- courses, groups, users ---------------------------------------------------------

    async def course(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        course = self.canvas.courses.get(parse_id(request.match_info["cid"]))
        if course is None:
            raise not_found()
        if course.roles.get(user.id) is None:
            raise unauthorized()
        # CoursesController#show: the caller's current enrollments in it.
        enrollments = [
            e
            for e in course.enrollments_of(user)
            if course.state_by_date(e) in ("active", "invited")
        ]
        return canvas_json(
            course_json(
                course,
                enrollments=enrollments,
                base_url=self.canvas.base_url,
                includes=frozenset(query_includes(request)),
            )
        )

    async def courses(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        """GET /api/v1/courses ("List your courses"), CoursesController#courses_for_user
        without `state[]`: the caller's enrollments, filtered by `enrollment_state` (`active`:
        participating, active by date; none: active or invited), `enrollment_type`, then
        grouped by course; one entry per course, sorted by name, paginated by course."""
        wanted = query_param(request, "enrollment_state")
        states: dict[str | None, tuple[str, ...]] = {
            None: ("active", "invited"),
            "active": ("active",),
            "invited_or_pending": ("invited",),
            "completed": ("completed",),
        }
        allowed = states.get(wanted, states[None])
        enrollment_type = query_param(request, "enrollment_type")
        chosen: list[tuple[FakeCourse, list[FakeEnrollment]]] = []
        for course in self.canvas.courses.values():
            mine = [
                e
                for e in course.enrollments_of(user)
                if course.state_by_date(e) in allowed
                and (enrollment_type is None or e.type == enrollment_type)
            ]
            if mine:
                chosen.append((course, mine))
        chosen.sort(key=lambda pair: (pair[0].name.casefold(), pair[0].id))
        includes = frozenset(query_includes(request))
        base_url = self.canvas.base_url
        return self.page_response(
            request,
            chosen,
            "/api/v1/courses",
            lambda pair: course_json(
                pair[0], enrollments=pair[1], base_url=base_url, includes=includes
            ),
        )

    async def own_groups(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        """GET /api/v1/users/self/groups ("List your groups"), GroupsController#index: the
        groups the caller is an accepted member of (`current_groups`), those in concluded
        courses too (each says `concluded`), ordered by name and id; `context_type` filters."""
        context_type = query_param(request, "context_type")
        groups = [
            g
            for g in self.canvas.groups.values()
            if user.id in g.members
            and (context_type is None or (context_type == "Course") == (g.course is not None))
        ]
        groups.sort(key=lambda g: (g.name, g.id))
        return self.page_response(request, groups, "/api/v1/users/self/groups", group_json)

    async def group(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        group = self.canvas.groups.get(parse_id(request.match_info["cid"]))
        if group is None:
            raise not_found()
        self.readable_space(group.files, user)
        return canvas_json(group_json(group))

    def _user_from_path(self, request: web.Request, user: FakeUser) -> FakeUser:
        raw = request.match_info["cid"]
        target = user if raw == "self" else self.canvas.users.get(parse_id(raw))
        if target is None:
            raise not_found()
        if target is not user:
            raise unauthorized()
        return target

    async def user(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        return canvas_json(user_json(self._user_from_path(request, user)))

    async def profile(self, request: web.Request, user: FakeUser) -> web.StreamResponse:
        return canvas_json(profile_json(self._user_from_path(request, user)))

    # -- downloads -------------------------------------------------------------------------

    async def download(self, request: web.Request) -> web.StreamResponse:
        """GET /files/:id/download: 302 to a signed, expiring file-store URL.

        Canvas as it is now (the default): the caller's token (Authorization header, or
        `access_token=`) must allow the download; without one, or with a bad one, the answer
        is the API's own 401 with `WWW-Authenticate` (`require_user`, `optional_user`), and a
        `verifier` left in an old URL grants nothing. A scoped token is not checked against
        its scopes here: no developer-key scope can name this route (Canvas builds scopes
        from /api/ routes only, lib/token_scopes.rb), see privatepuller.hub.canvas.
        With `verifier_urls=True` (older Canvas), a valid `verifier` (the file's uuid)
        grants the download by itself, as Attachments::Verification does; otherwise the
        token must allow it. A locked file gives 403 (Canvas renders its lock page).
        """
        file = self.lookup_file(request.match_info["file_id"])
        space = file.folder.space
        kind, raw = request.match_info.get("kind"), request.match_info.get("cid")
        # /courses/:id/files/:file_id/download must name the file's own context.
        if kind is not None and raw != "self":
            context = (_SINGULAR[kind].capitalize(), parse_id(raw or ""))
            if context != (space.context_type, space.context_id):
                raise not_found()
        user = self.optional_user(request)  # a bad token fails even with a verifier
        verified = self.canvas.verifier_urls and query_param(request, "verifier") == file.uuid
        if not verified:
            if user is None:
                user = self.require_user(request)
            access = self.readable_space(space, user)
            if file_locked_for(file, manage=access.manage, now=utcnow()):
                raise ApiError(
                    web.Response(
                        status=403,
                        text="<html><body><h1>This file is currently locked.</h1></body></html>",
                        content_type="text/html",
                    )
                )
        raise ApiError(
            web.Response(
                status=302,
                headers={
                    "Location": self.canvas.signed_blob_url(file),
                    "Cache-Control": "private, max-age=0",
                },
            )
        )

    async def blob(self, request: web.Request) -> web.StreamResponse:
        """The file store: bytes for a signed URL, no authentication, Range support."""
        file = self.canvas.registry.files_by_uuid.get(request.match_info["uuid"])
        if file is None:
            return web.Response(status=404, text="Not Found\n")
        expires = query_param(request, "expires", "") or ""
        if not self.canvas.blob_signature_ok(file.uuid, expires, query_param(request, "sig") or ""):
            return web.Response(status=403, text="invalid signature\n")
        if int(expires) < utcnow().timestamp():
            return web.Response(status=403, text="signed URL expired\n")
        start, end, status = 0, file.size, 200
        headers = {
            "Content-Type": file.content_type,
            "Accept-Ranges": "bytes",
            "Content-Disposition": "attachment; filename*=UTF-8''"
            + urllib.parse.quote(file.display_name, safe=""),
            "Last-Modified": file.modified_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "ETag": f'"{file.uuid}-{file.seed.hex()[-8:]}"',
        }
        match = _RANGE.fullmatch(request.headers.get("Range", "").strip())
        if match and (match.group(1) or match.group(2)):
            first, last = match.group(1), match.group(2)
            if first:
                start = int(first)
                end = min(int(last) + 1, file.size) if last else file.size
            else:  # suffix range: the last N bytes
                start = max(file.size - int(last), 0)
            if start >= file.size or start >= end:
                headers["Content-Range"] = f"bytes */{file.size}"
                return web.Response(status=416, headers=headers)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = end - start
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        fault = request.get(FAULT_KEY)
        cut = ("reset", "truncate", "stall_body")
        stop = end if fault not in cut else start + (end - start) // 2
        for chunk in file.iter_bytes(start, stop):
            await response.write(chunk)
        if fault == "stall_body":
            await self.canvas.wait_stopping()
        if fault in cut:
            abort_connection(request, rst=fault == "reset")
        return response
