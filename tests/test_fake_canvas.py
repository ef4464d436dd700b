"""The fake Canvas, checked against the real `canvasapi` client and Canvas's documented
behaviour (pagination, errors, throttling, downloads, OAuth2)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from canvasapi import Canvas
from canvasapi.exceptions import (
    Forbidden,
    InvalidAccessToken,
    RateLimitExceeded,
    ResourceDoesNotExist,
    Unauthorized,
)

from privatepuller.testing.canvas.fake import (
    FakeCanvas,
    FakeCourse,
    FakeUser,
    ThrottlePolicy,
    populate_demo,
)

pytestmark = pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly")

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# Canvas since its 25 March 2026 deploy: no `uuid` (FakeCanvas(verifier_urls=True) adds it).
FILE_KEYS = {
    "id", "folder_id", "display_name", "filename", "upload_status", "content-type",
    "url", "size", "created_at", "updated_at", "unlock_at", "locked", "hidden", "lock_at",
    "hidden_for_user", "thumbnail_url", "modified_at", "mime_class", "media_entry_id",
    "category", "locked_for_user", "visibility_level",
}  # fmt: skip
FOLDER_KEYS = {
    "id", "name", "full_name", "context_id", "context_type", "parent_folder_id", "created_at",
    "updated_at", "lock_at", "unlock_at", "position", "locked", "folders_url", "files_url",
    "files_count", "folders_count", "hidden", "locked_for_user", "hidden_for_user",
    "for_submissions", "can_upload",
}  # fmt: skip
INVALID_TOKEN_BODY = {"errors": [{"message": "Invalid access token."}]}
UNAUTHORIZED_BODY = {
    "status": "unauthorized",
    "errors": [{"message": "user not authorized to perform that action"}],
}
NOT_FOUND_BODY = {"errors": [{"message": "The specified resource does not exist."}]}
UNAUTHENTICATED_BODY = {
    "status": "unauthenticated",
    "errors": [{"message": "user authorization required"}],
}


@pytest.fixture
async def canvas() -> AsyncIterator[FakeCanvas]:
    async with FakeCanvas() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # A fresh connection per request: aiohttp silently retries a request once when a
    # reused keep-alive connection fails, which would hide injected faults.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


@pytest.fixture
def course_setup(canvas: FakeCanvas) -> tuple[FakeUser, FakeUser, FakeCourse]:
    """A student, a teacher and a course with a hidden and a locked file and folder."""
    student = canvas.add_user("Sam Student")
    teacher = canvas.add_user("Tia Teacher")
    course = canvas.add_course("Data Science 101")
    course.enroll(student)
    course.enroll(teacher, role="teacher")
    files = course.files
    files.add_file("Week 1/intro.ipynb", b'{"cells": []}')
    files.add_file("Week 1/data/iris.csv", b"a,b\n1,2\n")
    files.add_file("Week 1/data/key.csv", b"secret", hidden=True)
    files.add_file("Week 1/data/draft.csv", b"draft", locked=True)
    files.add_file("Week 2/later.ipynb", b"{}", module_lock="Week 2")
    files.add_folder("Hidden", hidden=True)
    files.add_file("Hidden/answers.txt", b"42")
    files.add_folder("Locked", locked=True)
    files.add_file("Locked/exam.txt", b"exam")
    return student, teacher, course


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get(
    http: aiohttp.ClientSession, url: str, token: str | None = None, **kwargs: Any
) -> tuple[aiohttp.ClientResponse, Any]:
    headers = {**kwargs.pop("headers", {}), **(auth(token) if token else {})}
    async with http.get(url, headers=headers, allow_redirects=False, **kwargs) as resp:
        body = await resp.read()
    if resp.content_type == "application/json":
        return resp, json.loads(body)
    return resp, body


async def signed_url(
    http: aiohttp.ClientSession, canvas: FakeCanvas, user: FakeUser, file_id: int
) -> str:
    resp, _ = await get(http, f"{canvas.base_url}/files/{file_id}/download", user.token)
    assert resp.status == 302
    location = resp.headers["Location"]
    assert location.startswith(f"{canvas.filestore_url}/blob/")
    return location


# -- the real canvasapi client -------------------------------------------------------


async def test_canvasapi_course_and_paginated_files(canvas: FakeCanvas) -> None:
    user = canvas.add_user("Ada")
    course = canvas.add_course("Big Course")
    course.enroll(user)
    for i in range(150):
        course.files.add_file(f"Week {i % 3}/f{i:03}.txt", f"file {i}".encode())

    def run() -> tuple[str, list[str]]:
        api = Canvas(canvas.base_url, user.token)
        fetched = api.get_course(course.id)
        return fetched.name, [f.display_name for f in fetched.get_files(per_page=40)]

    name, names = await asyncio.to_thread(run)
    assert name == "Big Course"
    assert names == sorted(f"f{i:03}.txt" for i in range(150))
    # canvasapi appends its own per_page=100 after ours; Rails keeps the last value.
    pages = [
        r.path_qs for r in canvas.requests if r.path_qs.startswith("/api/v1/courses/101/files")
    ]
    assert pages == [
        "/api/v1/courses/101/files?per_page=40&per_page=100",
        "/api/v1/courses/101/files?page=2&per_page=100",
    ]


async def test_canvasapi_resolve_path_and_folder_files(
    canvas: FakeCanvas, course_setup: tuple[FakeUser, FakeUser, FakeCourse]
) -> None:
    student, teacher, course = course_setup

    def listing(user: FakeUser) -> tuple[list[str], list[str]]:
        api_course = Canvas(canvas.base_url, user.token).get_course(course.id)
        chain = list(api_course.resolve_path("Week 1/data"))
        return [f.full_name for f in chain], [f.display_name for f in chain[-1].get_files()]

    chain, student_files = await asyncio.to_thread(listing, student)
    assert chain == ["course files", "course files/Week 1", "course files/Week 1/data"]
    # Canvas lists neither hidden nor locked (unpublished) files to students.
    assert student_files == ["iris.csv"]
    _, teacher_files = await asyncio.to_thread(listing, teacher)
    assert teacher_files == ["draft.csv", "iris.csv", "key.csv"]


async def test_canvasapi_missing_and_hidden_paths_do_not_exist(
    canvas: FakeCanvas, course_setup: tuple[FakeUser, FakeUser, FakeCourse]
) -> None:
    student, teacher, course = course_setup

    def resolve(user: FakeUser, path: str) -> list[str]:
        api_course = Canvas(canvas.base_url, user.token).get_course(course.id)
        return [f.name for f in api_course.resolve_path(path)]

    for path in ("Nope", "Week 1/nope", "Hidden", "Locked"):
        with pytest.raises(ResourceDoesNotExist):
            await asyncio.to_thread(resolve, student, path)
    assert await asyncio.to_thread(resolve, teacher, "Hidden") == ["course files", "Hidden"]
    with pytest.raises(ResourceDoesNotExist):
        await asyncio.to_thread(lambda: Canvas(canvas.base_url, student.token).get_course(999))


async def test_canvasapi_download_keeps_token_off_the_file_store(
    canvas: FakeCanvas, course_setup: tuple[FakeUser, FakeUser, FakeCourse], tmp_path: Path
) -> None:
    student, _, course = course_setup
    target = tmp_path / "iris.csv"

    def download() -> None:
        api = Canvas(canvas.base_url, student.token)
        api.get_course(course.id).get_file(course.files.file("Week 1/data/iris.csv").id).download(
            str(target)
        )

    await asyncio.to_thread(download)
    assert target.read_bytes() == b"a,b\n1,2\n"
    # canvasapi's File.download sends its Authorization header to `file.url` (the Canvas
    # origin, no verifier since March 2026); requests drops it at the cross-origin redirect.
    [redirect] = [r for r in canvas.requests if "/download" in r.path_qs]
    assert "verifier" not in redirect.path_qs
    assert redirect.status == 302
    assert redirect.authorization == f"Bearer {student.token}"
    [blob] = [r for r in canvas.requests if r.origin == "filestore"]
    assert blob.status == 200
    assert blob.authorization is None
    assert canvas.filestore_authorization_headers == []


async def test_canvasapi_token_errors(
    canvas: FakeCanvas, course_setup: tuple[FakeUser, FakeUser, FakeCourse]
) -> None:
    student, _, course = course_setup
    expired = canvas.issue_token(student)
    canvas.expire_token(expired)
    revoked = canvas.issue_token(student)
    canvas.revoke_token(revoked)
    for token in (expired, revoked, "1~not-a-token"):
        api = Canvas(canvas.base_url, token)
        with pytest.raises(InvalidAccessToken):
            await asyncio.to_thread(api.get_course, course.id)


async def test_canvasapi_unauthorized_for_non_member(
    canvas: FakeCanvas, course_setup: tuple[FakeUser, FakeUser, FakeCourse]
) -> None:
    _, _, course = course_setup
    outsider = canvas.add_user("Eve")
    with pytest.raises(Unauthorized) as raised:
        await asyncio.to_thread(
            lambda: Canvas(canvas.base_url, outsider.token).get_course(course.id)
        )
    assert not isinstance(raised.value, InvalidAccessToken)


async def test_canvasapi_rate_limit_exceeded() -> None:
    # A tiny bucket that does not leak: one request fits, the second is refused.
    policy = ThrottlePolicy(high_water_mark=60, preflight_cost=50, cost_per_request=20, leak_rate=0)
    async with FakeCanvas(throttle=policy, throttle_status=429) as fake:
        user = fake.add_user("Ada")
        api = Canvas(fake.base_url, user.token)
        await asyncio.to_thread(api.get_user, "self")
        with pytest.raises(RateLimitExceeded):
            await asyncio.to_thread(api.get_user, "self")
        assert fake.throttled_count == 1
    async with FakeCanvas(throttle=policy) as fake:
        user = fake.add_user("Ada")
        api = Canvas(fake.base_url, user.token)
        await asyncio.to_thread(api.get_user, "self")
        with pytest.raises(Forbidden, match="Rate Limit Exceeded"):
            await asyncio.to_thread(api.get_user, "self")


# -- raw HTTP: errors ----------------------------------------------------------------------


async def test_error_bodies_and_www_authenticate(
    canvas: FakeCanvas,
    course_setup: tuple[FakeUser, FakeUser, FakeCourse],
    http: aiohttp.ClientSession,
) -> None:
    student, _, course = course_setup
    url = f"{canvas.base_url}/api/v1/courses/{course.id}"
    resp, body = await get(http, url, "1~bogus")
    assert (resp.status, body) == (401, INVALID_TOKEN_BODY)
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="canvas-lms"'

    expiring = canvas.issue_token(student, expires_in=0.5)
    assert (await get(http, url, expiring))[0].status == 200
    await asyncio.sleep(0.6)
    resp, body = await get(http, url, expiring)
    assert (resp.status, body) == (401, INVALID_TOKEN_BODY)

    resp, body = await get(http, url)
    assert resp.status == 401 and "WWW-Authenticate" in resp.headers
    assert body == {
        "status": "unauthenticated",
        "errors": [{"message": "user authorization required"}],
    }

    resp, body = await get(http, url, canvas.add_user("Eve").token)
    assert (resp.status, body) == (401, UNAUTHORIZED_BODY)
    assert "WWW-Authenticate" not in resp.headers

    for missing in (
        "/api/v1/courses/424242",
        "/api/v1/files/1",
        "/api/v1/folders/abc",
        "/api/v1/nope",
    ):
        resp, body = await get(http, canvas.base_url + missing, student.token)
        assert (resp.status, body) == (404, NOT_FOUND_BODY), missing


async def test_access_token_query_parameter(
    canvas: FakeCanvas, http: aiohttp.ClientSession
) -> None:
    user = canvas.add_user("Ada Lovelace")
    resp, body = await get(http, f"{canvas.base_url}/api/v1/users/self?access_token={user.token}")
    assert resp.status == 200
    assert body["name"] == "Ada Lovelace" and body["sortable_name"] == "Lovelace, Ada"


async def test_scoped_token_needs_the_endpoint_scope(
    canvas: FakeCanvas,
    course_setup: tuple[FakeUser, FakeUser, FakeCourse],
    http: aiohttp.ClientSession,
) -> None:
    student, _, course = course_setup
    token = canvas.issue_token(
        student, scopes=frozenset({"url:GET|/api/v1/courses/:course_id/files"})
    )
    resp, _ = await get(http, f"{canvas.base_url}/api/v1/courses/{course.id}/files", token)
    assert resp.status == 200
    resp, body = await get(http, f"{canvas.base_url}/api/v1/courses/{course.id}/folders", token)
    assert (resp.status, body) == (
        401,
        {"errors": [{"message": "Insufficient scopes on access token."}]},
    )
    assert "WWW-Authenticate" not in resp.headers


# -- raw HTTP: pagination -------------------------------------------------------------------


async def test_link_header_exactly_like_canvas(
    canvas: FakeCanvas, http: aiohttp.ClientSession
) -> None:
    user = canvas.add_user("Ada")
    course = canvas.add_course("C")
    course.enroll(user)
    for i in range(25):
        course.files.add_file(f"f{i:02}.txt", b"x")
    path = f"/api/v1/courses/{course.id}/files"
    query = f"?sort=name&include[]=user&page=2&per_page=10&access_token={user.token}"
    resp, body = await get(http, canvas.base_url + path + query)
    assert [f["display_name"] for f in body] == [f"f{i:02}.txt" for i in range(10, 20)]
    base = f"{canvas.base_url}{path}?include%5B%5D=user&sort=name&"
    assert resp.headers["Link"] == ",".join(
        [
            f'<{base}page=2&per_page=10>; rel="current"',
            f'<{base}page=3&per_page=10>; rel="next"',
            f'<{base}page=1&per_page=10>; rel="prev"',
            f'<{base}page=1&per_page=10>; rel="first"',
            f'<{base}page=3&per_page=10>; rel="last"',
        ]
    )
    assert user.token not in resp.headers["Link"]

    resp, body = await get(http, f"{canvas.base_url}{path}?page=3&per_page=10", user.token)
    assert len(body) == 5 and "next" not in resp.links and resp.links["last"]
    resp, body = await get(http, f"{canvas.base_url}{path}?page=9", user.token)
    assert (resp.status, body) == (200, [])
    resp, _ = await get(http, f"{canvas.base_url}{path}?page=0", user.token)
    assert resp.status == 404


async def test_per_page_default_and_clamp(canvas: FakeCanvas, http: aiohttp.ClientSession) -> None:
    user = canvas.add_user("Ada")
    course = canvas.add_course("C")
    course.enroll(user)
    for i in range(120):
        course.files.add_file(f"f{i:03}.txt", b"x")
    url = f"{canvas.base_url}/api/v1/courses/{course.id}/files"
    for query, expected in (
        ("", 10),
        ("?per_page=500", 100),
        ("?per_page=0", 1),
        ("?per_page=7x", 7),
    ):
        resp, body = await get(http, url + query, user.token)
        assert len(body) == expected, query
        assert f"per_page={expected}>" in resp.headers["Link"]


# -- raw HTTP: JSON shapes and permissions ---------------------------------------------------


async def test_file_json_for_students_and_teachers(
    canvas: FakeCanvas,
    course_setup: tuple[FakeUser, FakeUser, FakeCourse],
    http: aiohttp.ClientSession,
) -> None:
    student, teacher, course = course_setup
    later = course.files.file("Week 2/later.ipynb")
    resp, files = await get(
        http, f"{canvas.base_url}/api/v1/courses/{course.id}/files", student.token
    )
    by_name = {f["display_name"]: f for f in files}
    # Hidden/locked files and everything in hidden/locked folders stay out of the list;
    # a module-locked file is listed, locked for the user, without a URL.
    assert set(by_name) == {"intro.ipynb", "iris.csv", "later.ipynb"}
    entry = by_name["later.ipynb"]
    assert set(entry) == FILE_KEYS | {"lock_info", "lock_explanation"}
    assert (entry["locked"], entry["locked_for_user"], entry["url"]) == (False, True, "")
    assert "Week 2" in entry["lock_explanation"]
    iris = by_name["iris.csv"]
    assert set(iris) == FILE_KEYS
    # No verifier: the URL is worth nothing without the student's token.
    assert iris["url"] == f"{canvas.base_url}/files/{iris['id']}/download?download_frd=1"
    assert iris["content-type"] == "text/csv" and iris["size"] == 8
    assert all(ISO_Z.match(iris[k]) for k in ("created_at", "updated_at", "modified_at"))

    resp, files = await get(
        http, f"{canvas.base_url}/api/v1/courses/{course.id}/files", teacher.token
    )
    assert len(files) == 7
    assert {f["display_name"]: f["url"] != "" for f in files}["later.ipynb"]
    assert later.id in {f["id"] for f in files}

    # Metadata of a locked (unpublished) file is readable, its bytes are not.
    draft = course.files.file("Week 1/data/draft.csv")
    resp, body = await get(http, f"{canvas.base_url}/api/v1/files/{draft.id}", student.token)
    assert (body["locked"], body["locked_for_user"], body["url"]) == (True, True, "")
    assert body["preview_url"] is None
    resp, _ = await get(http, f"{canvas.base_url}/files/{draft.id}/download", student.token)
    assert resp.status == 403
    # A hidden file is "available with the link".
    key = course.files.file("Week 1/data/key.csv")
    resp, body = await get(
        http, f"{canvas.base_url}/api/v1/courses/{course.id}/files/{key.id}", student.token
    )
    assert (body["hidden"], body["hidden_for_user"], body["locked_for_user"]) == (True, True, False)
    assert body["url"] == f"{canvas.base_url}/files/{key.id}/download?download_frd=1"
    outsider = canvas.add_user("Eve")
    resp, body = await get(
        http, f"{canvas.base_url}/api/v1/courses/{course.id}/files/{key.id}", outsider.token
    )
    assert (resp.status, body) == (401, UNAUTHORIZED_BODY)
    # FilesController#api_show looks the file up in the named context first: 404.
    other = canvas.add_course("Other")
    resp, _ = await get(
        http, f"{canvas.base_url}/api/v1/courses/{other.id}/files/{key.id}", outsider.token
    )
    assert resp.status == 404


async def test_folder_json_and_visibility(
    canvas: FakeCanvas,
    course_setup: tuple[FakeUser, FakeUser, FakeCourse],
    http: aiohttp.ClientSession,
) -> None:
    student, teacher, course = course_setup
    url = f"{canvas.base_url}/api/v1/courses/{course.id}/folders"
    _, folders = await get(http, url, student.token)
    # Folder.by_name: sorted by name (not path), case-insensitively.
    assert [f["full_name"] for f in folders] == [
        "course files",
        "course files/Week 1/data",
        "course files/Week 1",
        "course files/Week 2",
    ]
    root, week1 = folders[0], folders[2]
    assert set(root) == FOLDER_KEYS
    assert (root["parent_folder_id"], root["context_type"], root["context_id"]) == (
        None,
        "Course",
        course.id,
    )
    assert week1["parent_folder_id"] == root["id"]
    assert root["folders_url"] == f"{canvas.base_url}/api/v1/folders/{root['id']}/folders"
    assert root["folders_count"] == 3  # Week 1, Week 2, Locked (hidden ones are not counted)
    _, folders = await get(http, url, teacher.token)
    assert len(folders) == 6

    hidden = course.files.folder("Hidden")
    resp, body = await get(http, f"{canvas.base_url}/api/v1/folders/{hidden.id}", student.token)
    assert (resp.status, body) == (401, UNAUTHORIZED_BODY)
    resp, body = await get(http, f"{canvas.base_url}/api/v1/folders/{hidden.id}", teacher.token)
    assert (resp.status, body["hidden"], body["full_name"]) == (200, True, "course files/Hidden")
    resp, body = await get(http, f"{url}/root", student.token)
    assert body["id"] == course.files.root.id
    resp, body = await get(
        http, f"{canvas.base_url}/api/v1/folders/{root['id']}/folders", student.token
    )
    assert [f["name"] for f in body] == ["Week 1", "Week 2"]


async def test_group_and_personal_files(canvas: FakeCanvas, http: aiohttp.ClientSession) -> None:
    user = canvas.add_user("Ada")
    other = canvas.add_user("Bob")
    course = canvas.add_course("C")
    group = canvas.add_group("Team 1", course)
    group.add_member(user)
    group.files.add_file("plan.md", b"# plan", hidden=True)
    user.files.add_file("notes/todo.txt", b"todo")
    _, body = await get(
        http, f"{canvas.base_url}/api/v1/groups/{group.id}/folders/root", user.token
    )
    assert (body["full_name"], body["context_type"]) == ("files", "Group")
    _, body = await get(http, f"{canvas.base_url}/api/v1/groups/{group.id}/files", user.token)
    assert [f["display_name"] for f in body] == ["plan.md"]  # members see hidden group files
    resp, _ = await get(http, f"{canvas.base_url}/api/v1/groups/{group.id}/files", other.token)
    assert resp.status == 401
    resp, body = await get(
        http, f"{canvas.base_url}/api/v1/users/self/folders/by_path/notes", user.token
    )
    assert [f["full_name"] for f in body] == ["my files", "my files/notes"]
    assert "Link" not in resp.headers  # resolve_path is not paginated
    resp, _ = await get(http, f"{canvas.base_url}/api/v1/users/{user.id}/files", other.token)
    assert resp.status == 401


# -- the caller's courses and groups (the hub's Canvas groups) ------------------------------


async def test_canvasapi_lists_the_current_users_courses_and_groups(canvas: FakeCanvas) -> None:
    user = canvas.add_user("Ada")
    other = canvas.add_user("Bob")
    math = canvas.add_course("Math")
    art = canvas.add_course("Art")
    math.enroll(user)
    art.enroll(user, "ta", role_name="Grader")
    canvas.add_course("Bob's").enroll(other)
    team = canvas.add_group("Team", math)
    team.add_member(user)

    def run() -> tuple[list[Any], list[Any]]:
        api = Canvas(canvas.base_url, user.token)
        courses = list(api.get_courses(enrollment_state="active"))
        return courses, list(api.get_current_user().get_groups())

    courses, groups = await asyncio.to_thread(run)
    assert [(c.id, c.name) for c in courses] == [(art.id, "Art"), (math.id, "Math")]  # by name
    assert courses[0].enrollments == [
        {
            "type": "ta",
            "role": "Grader",
            "role_id": courses[0].enrollments[0]["role_id"],
            "user_id": user.id,
            "enrollment_state": "active",
            "limit_privileges_to_course_section": False,
        }
    ]
    assert courses[1].enrollments[0]["role"] == "StudentEnrollment"
    assert courses[1].enrollments[0]["role_id"] != courses[0].enrollments[0]["role_id"]
    assert [(g.id, g.name, g.course_id, g.concluded) for g in groups] == [
        (team.id, "Team", math.id, False)
    ]


async def test_course_list_filters_like_canvas(
    canvas: FakeCanvas, http: aiohttp.ClientSession
) -> None:
    user = canvas.add_user("Ada")
    kid = canvas.add_user("Kid")
    active = canvas.add_course("A active")
    both = canvas.add_course("B two roles")
    invited = canvas.add_course("C invited")
    done = canvas.add_course("D completed")
    ended = canvas.add_course("E concluded")
    watched = canvas.add_course("F observed")
    gone = canvas.add_course("G deleted")
    active.enroll(user)
    both.enroll(user)
    both.enroll(user, "teacher")
    invited.enroll(user, state="invited")
    done.enroll(user, state="completed")
    ended.enroll(user)
    ended.concluded = True
    watched.enroll(user, "observer", observing=kid)
    gone.enroll(user)
    gone.unenroll(user)

    async def ids(query: str) -> list[int]:
        resp, body = await get(http, f"{canvas.base_url}/api/v1/courses{query}", user.token)
        assert resp.status == 200
        return [c["id"] for c in body]

    assert await ids("?enrollment_state=active") == [active.id, both.id, watched.id]
    assert await ids("") == [active.id, both.id, invited.id, watched.id]  # currentish
    assert await ids("?enrollment_state=invited_or_pending") == [invited.id]
    assert await ids("?enrollment_state=completed") == [done.id, ended.id]
    assert await ids("?enrollment_state=active&enrollment_type=teacher") == [both.id]

    _, body = await get(
        http, f"{canvas.base_url}/api/v1/courses?enrollment_state=active", user.token
    )
    by_id = {c["id"]: c for c in body}
    assert [(e["type"], e["role"]) for e in by_id[both.id]["enrollments"]] == [
        ("student", "StudentEnrollment"),
        ("teacher", "TeacherEnrollment"),
    ]
    observer = by_id[watched.id]["enrollments"][0]
    assert (observer["type"], observer["associated_user_id"]) == ("observer", kid.id)
    assert "associated_user_id" not in by_id[active.id]["enrollments"][0]
    assert "concluded" not in by_id[active.id]

    # include[] values are kept in the Link header, with every other parameter but page and
    # per_page (Api.paginate); include[]=concluded adds the field.
    query = "?enrollment_state=active&include[]=concluded&include[]=term&per_page=2"
    resp, body = await get(http, f"{canvas.base_url}/api/v1/courses{query}", user.token)
    assert [c["concluded"] for c in body] == [False, False]
    base = f"{canvas.base_url}/api/v1/courses?enrollment_state=active&"
    base += "include%5B%5D=concluded&include%5B%5D=term&"
    assert resp.headers["Link"] == ",".join(
        [
            f'<{base}page=1&per_page=2>; rel="current"',
            f'<{base}page=2&per_page=2>; rel="next"',
            f'<{base}page=1&per_page=2>; rel="first"',
            f'<{base}page=2&per_page=2>; rel="last"',
        ]
    )


async def test_own_groups_list(canvas: FakeCanvas, http: aiohttp.ClientSession) -> None:
    user = canvas.add_user("Ada")
    course = canvas.add_course("Math")
    old = canvas.add_course("Old")
    old.concluded = True
    b_team = canvas.add_group("B team", course)
    a_club = canvas.add_group("A club")  # an account group
    past = canvas.add_group("C past", old)
    canvas.add_group("D not mine", course)
    for group in (b_team, a_club, past):
        group.add_member(user)
    url = f"{canvas.base_url}/api/v1/users/self/groups"
    resp, body = await get(http, url, user.token)
    assert resp.status == 200 and resp.headers["Link"]
    # Ordered by name, concluded courses' groups included and marked.
    assert [(g["id"], g["concluded"]) for g in body] == [
        (a_club.id, False),
        (b_team.id, False),
        (past.id, True),
    ]
    assert (body[0]["context_type"], body[0]["account_id"]) == ("Account", 1)
    assert "course_id" not in body[0]
    assert (body[1]["context_type"], body[1]["course_id"]) == ("Course", course.id)
    assert "account_id" not in body[1]
    _, body = await get(http, f"{url}?context_type=Account", user.token)
    assert [g["id"] for g in body] == [a_club.id]
    # Canvas has no route for another user's groups.
    resp, _ = await get(http, f"{canvas.base_url}/api/v1/users/{user.id}/groups", user.token)
    assert resp.status == 404


async def test_course_and_group_lists_need_their_scopes(
    canvas: FakeCanvas, http: aiohttp.ClientSession
) -> None:
    user = canvas.add_user("Ada")
    canvas.add_course("Math").enroll(user)
    courses = f"{canvas.base_url}/api/v1/courses"
    groups = f"{canvas.base_url}/api/v1/users/self/groups"
    token = canvas.issue_token(user, scopes=frozenset({"url:GET|/api/v1/courses"}))
    resp, body = await get(http, courses, token)
    assert resp.status == 200 and len(body) == 1
    resp, _ = await get(http, groups, token)
    assert resp.status == 401 and "WWW-Authenticate" not in resp.headers
    token = canvas.issue_token(user, scopes=frozenset({"url:GET|/api/v1/users/self/groups"}))
    assert (await get(http, groups, token))[0].status == 200
    assert (await get(http, courses, token))[0].status == 401


# -- raw HTTP: throttling ---------------------------------------------------------------------


async def test_rate_limit_headers(canvas: FakeCanvas, http: aiohttp.ClientSession) -> None:
    user = canvas.add_user("Ada")
    resp, _ = await get(http, f"{canvas.base_url}/api/v1/users/self", user.token)
    assert float(resp.headers["X-Request-Cost"]) == 1.0
    # Pre-flight 50 added then refunded: only the request's own cost stays in the bucket.
    assert 698.0 < float(resp.headers["X-Rate-Limit-Remaining"]) <= 700.0


async def test_parallel_requests_are_throttled() -> None:
    async with (
        FakeCanvas(latency=0.5) as fake,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        user = fake.add_user("Ada")
        # Each in-flight request holds 50 units; 700 is the high-water mark.
        results = await asyncio.gather(
            *(get(session, f"{fake.base_url}/api/v1/users/self", user.token) for _ in range(20))
        )
        refused = [(r, body) for r, body in results if r.status == 403]
        assert 5 <= len(refused) <= 7
        assert fake.throttled_count == len(refused)
        resp, body = refused[0]
        assert body == b"403 Forbidden (Rate Limit Exceeded)\n"
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert "X-Request-Cost" not in resp.headers and "X-Rate-Limit-Remaining" in resp.headers
        # Another token has its own bucket.
        other = fake.add_user("Bob")
        resp, _ = await get(session, f"{fake.base_url}/api/v1/users/self", other.token)
        assert resp.status == 200


async def test_retry_after_when_enabled(http: aiohttp.ClientSession) -> None:
    policy = ThrottlePolicy(
        high_water_mark=60, cost_per_request=20, leak_rate=1, send_retry_after=True
    )
    async with FakeCanvas(throttle=policy, throttle_status=429) as fake:
        user = fake.add_user("Ada")
        assert (await get(http, f"{fake.base_url}/api/v1/users/self", user.token))[0].status == 200
        resp, body = await get(http, f"{fake.base_url}/api/v1/users/self", user.token)
        assert (resp.status, body) == (429, b"429 Too Many Requests (Rate Limit Exceeded)\n")
        assert int(resp.headers["Retry-After"]) == 10  # (20 + 50 - 60) / 1 per second


# -- raw HTTP: file store ------------------------------------------------------------------------


async def test_file_store_ranges_and_signatures(
    canvas: FakeCanvas, http: aiohttp.ClientSession
) -> None:
    user = canvas.add_user("Ada")
    file = user.files.add_file("abc.txt", b"0123456789")
    url = await signed_url(http, canvas, user, file.id)
    for header, status, body, content_range in (
        ("bytes=2-5", 206, b"2345", "bytes 2-5/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-3", 206, b"789", "bytes 7-9/10"),
        ("bytes=8-100", 206, b"89", "bytes 8-9/10"),
        ("bytes=10-", 416, b"", "bytes */10"),
    ):
        resp, got = await get(http, url, headers={"Range": header})
        assert (resp.status, got, resp.headers["Content-Range"]) == (status, body, content_range)
    resp, got = await get(http, url)
    assert (resp.status, got, resp.headers["Content-Length"]) == (200, b"0123456789", "10")
    async with http.head(url) as resp:
        assert (resp.status, resp.headers["Content-Length"]) == (200, "10")
    resp, _ = await get(http, url.replace("sig=", "sig=0"))
    assert resp.status == 403
    canvas.filestore_url_ttl = -10
    resp, _ = await get(http, await signed_url(http, canvas, user, file.id))
    assert resp.status == 403
    assert canvas.filestore_authorization_headers == []


async def test_downloads_need_the_token(canvas: FakeCanvas, http: aiohttp.ClientSession) -> None:
    """Canvas since 25 March 2026: every download carries the token; a verifier left in an old
    URL grants nothing; the refusals are the API's own 401s with WWW-Authenticate."""
    user = canvas.add_user("Ada")
    file = user.files.add_file("abc.txt", b"0123456789")
    download = f"{canvas.base_url}/files/{file.id}/download?download_frd=1"
    for url in (download, f"{download}&verifier={file.uuid}"):
        resp, body = await get(http, url)
        assert (resp.status, body) == (401, UNAUTHENTICATED_BODY)
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="canvas-lms"'
    revoked = canvas.issue_token(user)
    canvas.revoke_token(revoked)
    for bad, message in (
        ("1~not-a-token", "Invalid access token."),
        (revoked, "Revoked access token."),
    ):
        resp, body = await get(http, download, bad)
        assert (resp.status, body) == (401, {"errors": [{"message": message}]})
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="canvas-lms"'
    resp, _ = await get(http, download, user.token)
    assert resp.status == 302
    assert resp.headers["Location"].startswith(f"{canvas.filestore_url}/blob/")
    # Someone else's token: a valid user without access (no WWW-Authenticate).
    resp, body = await get(http, download, canvas.add_user("Eve").token)
    assert (resp.status, body) == (401, UNAUTHORIZED_BODY)
    assert "WWW-Authenticate" not in resp.headers
    # A token of a scoped developer key is not checked against its scopes here: no scope can
    # name a non-API route (see privatepuller.hub.canvas).
    scoped = canvas.issue_token(user, scopes=frozenset({"url:GET|/api/v1/files/:id"}))
    resp, _ = await get(http, download, scoped)
    assert resp.status == 302


async def test_verifier_urls_for_older_canvas(http: aiohttp.ClientSession) -> None:
    """FakeCanvas(verifier_urls=True): file objects carry `uuid`, URLs carry `verifier`, and
    the verifier alone authorises the download (a bad token still fails)."""
    async with FakeCanvas(verifier_urls=True) as canvas:
        user = canvas.add_user("Ada")
        file = user.files.add_file("abc.txt", b"0123456789")
        resp, body = await get(http, f"{canvas.base_url}/api/v1/files/{file.id}", user.token)
        assert set(body) == FILE_KEYS | {"uuid", "preview_url"}
        url = body["url"]
        assert url == (
            f"{canvas.base_url}/files/{file.id}/download?download_frd=1&verifier={file.uuid}"
        )
        resp, _ = await get(http, url)
        assert resp.status == 302
        resp, body = await get(http, url, "1~not-a-token")
        assert (resp.status, body) == (401, INVALID_TOKEN_BODY)
        resp, body = await get(http, url.replace(file.uuid, "0" * len(file.uuid)))
        assert (resp.status, body) == (401, UNAUTHENTICATED_BODY)
        assert canvas.filestore_authorization_headers == []


async def test_synthetic_file_is_streamed(canvas: FakeCanvas, http: aiohttp.ClientSession) -> None:
    user = canvas.add_user("Ada")
    size = 5 * 1024 * 1024 + 123
    file = user.files.add_file("big.bin", size=size)
    assert file.content is None  # generated on demand, never held in memory
    url = await signed_url(http, canvas, user, file.id)
    digest = hashlib.sha256()
    received = 0
    async with http.get(url) as resp:
        assert resp.headers["Content-Length"] == str(size)
        async for chunk in resp.content.iter_chunked(65536):
            digest.update(chunk)
            received += len(chunk)
    assert received == size and digest.hexdigest() == file.sha256()
    start = 3 * 1024 * 1024 - 17
    resp, got = await get(http, url, headers={"Range": f"bytes={start}-{start + 9999}"})
    assert got == b"".join(file.iter_bytes(start, start + 10000))
    assert len(got) == 10000 and len(set(got)) > 100


async def test_file_store_sends_nothing_for_head_and_records_authorization(
    canvas: FakeCanvas, http: aiohttp.ClientSession
) -> None:
    user = canvas.add_user("Ada")
    file = user.files.add_file("a.txt", b"abc")
    url = await signed_url(http, canvas, user, file.id)
    resp, _ = await get(http, url, user.token)  # a client that leaks its token
    assert resp.status == 200
    assert canvas.filestore_authorization_headers == [f"Bearer {user.token}"]


# -- fault injection ---------------------------------------------------------------------------


async def test_http_error_faults(canvas: FakeCanvas, http: aiohttp.ClientSession) -> None:
    user = canvas.add_user("Ada")
    url = f"{canvas.base_url}/api/v1/users/self"
    canvas.inject_fault(r"/users/self", "502", times=2)
    canvas.inject_fault(r"/users/self", "500")
    canvas.inject_fault(r"/users/self", "401")
    for _ in range(2):
        resp, body = await get(http, url, user.token)
        assert resp.status == 502 and b"Bad Gateway" in body
        assert resp.headers["Content-Type"].startswith("text/html")
    resp, body = await get(http, url, user.token)
    assert resp.status == 500 and body["errors"][0]["message"] == "An error occurred."
    resp, body = await get(http, url, user.token)
    assert (resp.status, body) == (401, INVALID_TOKEN_BODY) and "WWW-Authenticate" in resp.headers
    resp, _ = await get(http, url, user.token)
    assert resp.status == 200
    assert [r.fault for r in canvas.requests] == ["502", "502", "500", "401", None]


async def test_connection_faults(canvas: FakeCanvas, http: aiohttp.ClientSession) -> None:
    user = canvas.add_user("Ada")
    file = user.files.add_file("big.bin", size=2_000_000)
    api_url = f"{canvas.base_url}/api/v1/users/self"

    # aiohttp retries an idempotent request once after a reset, so reset twice.
    canvas.inject_fault("/users/self", "reset", times=2)
    with pytest.raises(aiohttp.ClientError):
        await get(http, api_url, user.token)
    canvas.inject_fault("/users/self", "truncate")
    with pytest.raises(aiohttp.ClientPayloadError):
        await get(http, api_url, user.token)

    url = await signed_url(http, canvas, user, file.id)
    canvas.inject_fault("^/blob/", "reset")
    with pytest.raises(aiohttp.ClientError):
        await get(http, url)
    canvas.inject_fault("^/blob/", "truncate")
    with pytest.raises(aiohttp.ClientPayloadError):
        await get(http, url)
    resp, body = await get(http, url)
    assert resp.status == 200 and len(body) == 2_000_000

    faults = [(r.origin, r.fault, r.status) for r in canvas.requests if r.fault]
    assert faults == [
        ("canvas", "reset", None),
        ("canvas", "reset", None),
        ("canvas", "truncate", 200),
        ("filestore", "reset", 200),
        ("filestore", "truncate", 200),
    ]


async def test_stall_fault_never_answers(canvas: FakeCanvas, http: aiohttp.ClientSession) -> None:
    user = canvas.add_user("Ada")
    canvas.inject_fault("/users/self", "stall")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await get(http, f"{canvas.base_url}/api/v1/users/self", user.token)
    assert time.monotonic() - started >= 0.5
    assert canvas.requests[-1].fault == "stall" and canvas.requests[-1].status is None
    resp, _ = await get(http, f"{canvas.base_url}/api/v1/users/self", user.token)
    assert resp.status == 200


# -- recording of writes -------------------------------------------------------------------------


async def test_non_get_requests_are_recorded(
    canvas: FakeCanvas, http: aiohttp.ClientSession
) -> None:
    user = canvas.add_user("Ada")
    file = user.files.add_file("a.txt", b"a")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        async with http.request(
            method, f"{canvas.base_url}/api/v1/files/{file.id}", headers=auth(user.token)
        ) as resp:
            assert resp.status == 405
    async with http.post(f"{canvas.filestore_url}/blob/{file.uuid}") as resp:
        assert resp.status == 405
    async with http.post(f"{canvas.base_url}/login/oauth2/token", data={"grant_type": "x"}) as resp:
        assert resp.status == 400
    async with http.head(f"{canvas.base_url}/api/v1/users/self", headers=auth(user.token)) as resp:
        assert resp.status == 200
    assert [(r.origin, r.method) for r in canvas.non_get_requests] == [
        ("canvas", "POST"),
        ("canvas", "PUT"),
        ("canvas", "DELETE"),
        ("canvas", "PATCH"),
        ("filestore", "POST"),
        ("canvas", "POST"),
    ]
    assert [r.method for r in canvas.non_get_api_requests] == [
        "POST",
        "PUT",
        "DELETE",
        "PATCH",
        "POST",
    ]
    assert canvas.non_get_requests[-1].is_oauth_token_request
    assert file.read() == b"a"


# -- data model changes --------------------------------------------------------------------------


async def test_update_rename_and_remove(
    canvas: FakeCanvas,
    course_setup: tuple[FakeUser, FakeUser, FakeCourse],
    http: aiohttp.ClientSession,
) -> None:
    student, _, course = course_setup
    iris = course.files.file("Week 1/data/iris.csv")
    file_url = f"{canvas.base_url}/api/v1/files/{iris.id}"
    _, before = await get(http, file_url, student.token)
    course.files.update_file("Week 1/data/iris.csv", b"a,b\n3,4\n5,6\n")
    _, after = await get(http, file_url, student.token)
    assert after["id"] == before["id"] and after["size"] == 12
    assert after["modified_at"] > before["modified_at"]
    _, content = await get(http, await signed_url(http, canvas, student, iris.id))
    assert content == b"a,b\n3,4\n5,6\n"

    data = course.files.folder("Week 1/data")
    course.files.rename("Week 1/data", "Datasets")
    course.files.rename("Datasets/iris.csv", "Datasets/flowers.csv")
    resp, chain = await get(
        http,
        f"{canvas.base_url}/api/v1/courses/{course.id}/folders/by_path/Datasets",
        student.token,
    )
    assert [f["id"] for f in chain][-1] == data.id
    _, moved = await get(http, file_url, student.token)
    assert (moved["display_name"], moved["folder_id"]) == ("flowers.csv", data.id)

    course.files.remove("Datasets")
    for url in (file_url, f"{canvas.base_url}/api/v1/folders/{data.id}"):
        resp, body = await get(http, url, student.token)
        assert (resp.status, body) == (404, NOT_FOUND_BODY)


# -- OAuth2 ---------------------------------------------------------------------------------------


async def test_oauth_code_refresh_and_replace(
    canvas: FakeCanvas, http: aiohttp.ClientSession
) -> None:
    student = canvas.add_user("Ada")
    canvas.register_client("10000000000001", "s3cret", redirect_uri="https://hub.example.edu/")
    canvas.oauth_login_user = student
    canvas.access_token_ttl = 120
    redirect_uri = "https://hub.example.edu/hub/oauth_callback"
    params = {
        "client_id": "10000000000001",
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "state": "xyz",
    }

    async def authorize() -> str:
        resp, _ = await get(http, f"{canvas.base_url}/login/oauth2/auth", params=params)
        assert resp.status == 302
        location = resp.headers["Location"]
        assert location.startswith(redirect_uri + "?") and "state=xyz" in location
        return re.search(r"code=([0-9a-f]+)", location).group(1)  # type: ignore[union-attr]

    async def post_token(data: dict[str, str]) -> tuple[int, dict[str, Any]]:
        async with http.post(f"{canvas.base_url}/login/oauth2/token", data=data) as resp:
            return resp.status, await resp.json()

    code = await authorize()
    grant = {
        "grant_type": "authorization_code",
        "client_id": "10000000000001",
        "client_secret": "s3cret",
        "redirect_uri": redirect_uri,
    }
    status, first = await post_token({**grant, "code": code})
    assert status == 200
    assert set(first) == {
        "access_token",
        "token_type",
        "user",
        "refresh_token",
        "expires_in",
        "canvas_region",
    }
    assert (first["token_type"], first["expires_in"], first["user"]["id"]) == (
        "Bearer",
        120,
        student.id,
    )
    assert (await get(http, f"{canvas.base_url}/api/v1/users/self", first["access_token"]))[
        0
    ].status == 200
    status, body = await post_token({**grant, "code": code})  # codes are single-use
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await post_token({**grant, "code": await authorize(), "client_secret": "wrong"})
    assert (status, body) == (
        401,
        {"error": "invalid_client", "error_description": "invalid client"},
    )

    refresh = {
        "grant_type": "refresh_token",
        "client_id": "10000000000001",
        "client_secret": "s3cret",
        "refresh_token": first["refresh_token"],
    }
    status, renewed = await post_token(refresh)
    assert status == 200 and "refresh_token" not in renewed
    assert renewed["access_token"] != first["access_token"]
    resp, body = await get(http, f"{canvas.base_url}/api/v1/users/self", first["access_token"])
    assert (resp.status, body) == (401, INVALID_TOKEN_BODY)
    assert (await get(http, f"{canvas.base_url}/api/v1/users/self", renewed["access_token"]))[
        0
    ].status == 200

    status, second = await post_token({**grant, "code": await authorize(), "replace_tokens": "1"})
    assert status == 200
    assert (await get(http, f"{canvas.base_url}/api/v1/users/self", renewed["access_token"]))[
        0
    ].status == 401
    assert (await get(http, f"{canvas.base_url}/api/v1/users/self", second["access_token"]))[
        0
    ].status == 200
    status, body = await post_token(refresh)  # the replaced token's refresh token died too
    assert (status, body["error"]) == (400, "invalid_request")


async def test_oauth_authorize_errors(canvas: FakeCanvas, http: aiohttp.ClientSession) -> None:
    canvas.register_client("1", "s", redirect_uri="https://hub.example.edu")
    base = {
        "client_id": "1",
        "response_type": "code",
        "redirect_uri": "https://evil.example.com/cb",
    }
    resp, body = await get(http, f"{canvas.base_url}/login/oauth2/auth", params=base)
    assert (resp.status, body["error"]) == (400, "invalid_request")
    resp, body = await get(
        http, f"{canvas.base_url}/login/oauth2/auth", params={**base, "client_id": "2"}
    )
    assert (resp.status, body["error"]) == (401, "invalid_client")
    ok = {**base, "redirect_uri": "https://hub.example.edu/cb"}
    resp, _ = await get(http, f"{canvas.base_url}/login/oauth2/auth", params=ok)
    assert resp.headers["Location"] == f"{canvas.base_url}/login/canvas"  # nobody logged in
    canvas.oauth_login_user = canvas.add_user("Ada")
    canvas.oauth_consent = False
    resp, _ = await get(http, f"{canvas.base_url}/login/oauth2/auth", params=ok)
    assert resp.headers["Location"] == "https://hub.example.edu/cb?error=access_denied"


# -- demo -----------------------------------------------------------------------------------------


async def test_populate_demo(canvas: FakeCanvas, http: aiohttp.ClientSession) -> None:
    import nbformat

    student, course = populate_demo(canvas)
    for file in course.files.all_files():
        if file.display_name.endswith(".ipynb"):
            nbformat.validate(nbformat.reads(file.read().decode(), as_version=4))
    _, files = await get(
        http, f"{canvas.base_url}/api/v1/courses/{course.id}/files?per_page=100", student.token
    )
    names = {f["display_name"] for f in files}
    assert "Übung 2 – Daten säubern.ipynb" in names and "iris.csv" in names
    assert "solutions.ipynb" not in names and "answer_key.csv" not in names
    assert [f["url"] for f in files if f["display_name"] == "03 Classification.ipynb"] == [""]
