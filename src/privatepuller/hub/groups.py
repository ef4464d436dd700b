"""Canvas enrollments as JupyterHub groups: what the hub reads at login and refresh, and the
group names it makes of it (`CanvasPassthrough(canvas_groups=True)`).

The names (docs/admin.md; Drive folders limited to groups and other admins' config rely on
them):

    canvas:course:<id>           every course where the user has an active enrollment
    canvas:course:<id>:<type>    the same, per enrollment type: student, teacher, ta, designer
                                 or observer (a custom course role counts as the type it was
                                 made from, which is what Canvas reports as `type`)
    canvas:group:<id>            every Canvas group the user is a member of, unless its course
                                 has concluded

`<id>` is Canvas's numeric id, the one in the course's or group's URL.

Two Canvas API calls, GET only, with the student's own token, through the same read-only
session (and backoff) as every other Canvas request, following `Link: rel="next"`:

- `GET /api/v1/courses?enrollment_state=active` ("List your courses"): the user's
  participating enrollments, active by date, grouped by course (canvas-lms
  CoursesController#courses_for_user, `user.participating_enrollments`); each course carries
  the user's `enrollments: [{type, role, role_id, user_id, enrollment_state}]`
  (lib/api/v1/course_json.rb). No `include[]` is sent: developer keys that enforce scopes drop
  include parameters unless "Allow include parameters" is on.
- `GET /api/v1/users/self/groups` ("List your groups"): the user's current groups
  (GroupsController#index, `@current_user.current_groups`), those of concluded courses too,
  each with `concluded` (lib/api/v1/group.rb).

What lands in auth_state[AUTH_STATE_KEY] (the hub's `auth_state_groups_key` is
`privatepuller.groups`):

    "groups": ["canvas:course:101", "canvas:course:101:student", ...],
    "groups_read_at": <epoch seconds of the last successful read, or None>,
    "groups_error": <why the last read failed, for admins> (only after a failed read),
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from yarl import URL

from ..credentials.tokens import StaticToken
from ..errors import LoginExpired, NoAccess, PullError, RateLimited, TooBig
from ..http.origin import Origin
from ..http.session import ReadOnlySession, SessionOptions
from ..providers.canvas.api import CanvasAPI
from ..providers.canvas.policy import CANVAS_POLICY
from ..sync.source import ListingLimits

COURSE_PREFIX = "canvas:course:"
GROUP_PREFIX = "canvas:group:"
# Enrollment#sis_type: the `type` of every enrollment, custom roles included.
ENROLLMENT_TYPES = frozenset({"student", "teacher", "ta", "designer", "observer"})

# (method, path) of every Canvas API call below; hub.canvas.CANVAS_GROUP_SCOPES must cover them.
ENDPOINTS = (
    ("GET", "/api/v1/courses"),
    ("GET", "/api/v1/users/self/groups"),
)
COURSES_SCOPE = "url:GET|/api/v1/courses"
GROUPS_SCOPE = "url:GET|/api/v1/users/self/groups"

# A login waits for these reads, so they are bounded: a few quick retries (not the minutes a
# sync may wait out), and the whole read within DEFAULT_TIMEOUT seconds.
GROUPS_SESSION = SessionOptions(
    replace(CANVAS_POLICY, max_attempts=3, max_delay=4.0), concurrency=2, read_timeout=15.0
)
DEFAULT_TIMEOUT = 20.0
# More courses or groups than this is not a person's enrolment list.
LIMITS = ListingLimits(max_pages=100, max_entries=10_000)

# Shown by JupyterHub to a student refused by `allowed_courses` (its custom_403_message).
NOT_ENROLLED_MESSAGE = (
    "This hub is for the Canvas courses that use it, and your Canvas account has no active "
    "enrollment in any of them. Log in with the Canvas account you use for your course. If you "
    "were just added to the course, accept the course invitation in Canvas first, then log in "
    "here again. If it keeps happening, ask your instructor."
)
# Shown when Canvas could not be asked whether the student may log in (allowed_courses).
CANVAS_UNAVAILABLE_MESSAGE = (
    "The hub could not check your Canvas courses because Canvas did not answer in time. "
    "Nothing is wrong with your account: try logging in again in a few minutes."
)


def course_group(course_id: int, enrollment_type: str | None = None) -> str:
    """`canvas:course:<id>`, or `canvas:course:<id>:<type>`."""
    name = f"{COURSE_PREFIX}{int(course_id)}"
    return f"{name}:{enrollment_type}" if enrollment_type else name


def canvas_group(group_id: int) -> str:
    """`canvas:group:<id>`."""
    return f"{GROUP_PREFIX}{int(group_id)}"


def course_id_of(value: object) -> int:
    """A Canvas course id as configured (an int, or a string of digits); ValueError else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not a Canvas course id: {value!r}")
    text = str(value).strip()
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(
            f"not a Canvas course id: {value!r} (use the number in the course's address, "
            "https://canvas.example.edu/courses/<id>)"
        )
    return int(text)


@dataclass(frozen=True)
class Membership:
    """A user's active enrollments (course id -> enrollment types) and Canvas groups."""

    courses: Mapping[int, frozenset[str]]
    groups: frozenset[int]

    def group_names(self) -> list[str]:
        names: set[str] = set()
        for course_id, types in self.courses.items():
            names.add(course_group(course_id))
            names.update(course_group(course_id, t) for t in types)
        names.update(canvas_group(g) for g in self.groups)
        return sorted(names)


def membership_from_json(
    courses: Iterable[Mapping[str, Any]], groups: Iterable[Mapping[str, Any]]
) -> Membership:
    """Read Canvas's course and group lists defensively: entries without a usable id, and
    enrollments that are not active, are skipped (a course Canvas lists without enrollments,
    such as one restricted by date, gives no group)."""
    by_course: dict[int, set[str]] = {}
    for course in courses:
        course_id = _numeric_id(course.get("id"))
        enrollments = course.get("enrollments")
        if course_id is None or not isinstance(enrollments, list):
            continue
        for enrollment in enrollments:
            if not isinstance(enrollment, dict):
                continue
            if enrollment.get("enrollment_state", "active") != "active":
                continue
            types = by_course.setdefault(course_id, set())
            if enrollment.get("type") in ENROLLMENT_TYPES:
                types.add(str(enrollment["type"]))
    group_ids = set()
    for group in groups:
        group_id = _numeric_id(group.get("id"))
        if group_id is not None and group.get("concluded") is not True:
            group_ids.add(group_id)
    return Membership(
        {course_id: frozenset(types) for course_id, types in by_course.items()},
        frozenset(group_ids),
    )


class MembershipUnavailable(Exception):
    """Canvas's course or group list could not be read; `reason` is for the admin's log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def read_membership(
    canvas_url: str,
    token: str,
    *,
    options: SessionOptions = GROUPS_SESSION,
    timeout: float = DEFAULT_TIMEOUT,
    limits: ListingLimits = LIMITS,
) -> Membership:
    """The user's active enrollments and groups, read with their token; raises
    MembershipUnavailable (never anything else) if Canvas cannot be read in time."""
    origin = Origin.of(canvas_url)
    step = "courses"
    try:
        async with asyncio.timeout(timeout), options.session(origin, StaticToken(token)) as http:
            courses = await _List(http, limits, {"enrollment_state": "active"}).paginate(
                "courses", what="your courses", keep=frozenset({"id", "enrollments"})
            )
            step = "groups"
            groups = await _List(http, limits, {}).paginate(
                "users", "self", "groups", what="your groups", keep=frozenset({"id", "concluded"})
            )
    except Exception as error:
        raise MembershipUnavailable(_reason(error, step, timeout, limits)) from None
    return membership_from_json(courses, groups)


class _List(CanvasAPI):
    """CanvasAPI whose list requests carry `query` (Canvas echoes it into every `next` link,
    Api.paginate). Reuses CanvasAPI.paginate: bounded pages, loop and cross-host checks."""

    def __init__(self, session: ReadOnlySession, limits: ListingLimits, query: dict[str, str]):
        super().__init__(session, limits)
        self._query = query

    def url(self, *segments: str) -> URL:
        return super().url(*segments).update_query(self._query)


def _reason(error: BaseException, step: str, timeout: float, limits: ListingLimits) -> str:
    path, scope = (
        ("GET /api/v1/courses", COURSES_SCOPE)
        if step == "courses"
        else ("GET /api/v1/users/self/groups", GROUPS_SCOPE)
    )
    if isinstance(error, NoAccess):
        return (
            f"Canvas refused {path}: the token lacks the scope {scope} (enable it on the "
            "developer key; each student's token gets it at their next login)"
        )
    if isinstance(error, LoginExpired):
        return f"Canvas rejected the token on {path}"
    if isinstance(error, RateLimited):
        return f"Canvas kept throttling {path}"
    if isinstance(error, TooBig):
        return f"{path} listed more than {limits.max_entries:,} entries"
    if isinstance(error, TimeoutError):
        return f"no complete answer to {path} within {timeout:g} s"
    if isinstance(error, PullError):  # the first sentence: the rest is meant for students
        return f"{path}: {str(error).split('. ')[0]}"
    return f"{path}: {type(error).__name__}"


def _numeric_id(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
