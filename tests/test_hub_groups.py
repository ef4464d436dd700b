"""Canvas enrollments as JupyterHub groups: OAuthenticator's real GenericOAuthenticator with our
hooks against the fake Canvas (courses, roles, groups, pagination, failures, the login
restriction, and what configure() sets). A real JupyterHub runs in test_e2e_hub.py."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from traitlets.config import Config

from privatepuller.credentials.auth_state import AUTH_STATE_KEY
from privatepuller.errors import ConfigurationError
from privatepuller.http.session import SessionOptions
from privatepuller.hub import CANVAS_GROUP_SCOPES, CANVAS_SCOPES, CanvasPassthrough
from privatepuller.hub.groups import CANVAS_UNAVAILABLE_MESSAGE, NOT_ENROLLED_MESSAGE
from privatepuller.hub.passthrough import GROUPS_KEY
from privatepuller.providers.canvas.policy import CANVAS_POLICY
from privatepuller.testing.canvas.fake import FakeCanvas
from privatepuller.testing.canvas.model import FakeCourse, FakeUser

CLIENT_ID = "10000000000077"
CLIENT_SECRET = "hub-client-secret-" + "g" * 20
CALLBACK = "http://127.0.0.1:8000/hub/oauth_callback"
# The hub's retry schedule for these reads, on a clock 1000 times faster.
FAST = SessionOptions(
    replace(CANVAS_POLICY, max_attempts=3, max_delay=4.0).scaled(0.001), read_timeout=5.0
)


@dataclass
class HubUser:
    """What OAuthenticator.refresh_user needs of a JupyterHub User."""

    name: str
    auth_state: dict[str, Any] | None = None

    async def get_auth_state(self) -> dict[str, Any] | None:
        return self.auth_state


def hub(
    canvas: FakeCanvas, *, extra: dict[str, Any] | None = None, **options: Any
) -> tuple[CanvasPassthrough, GenericOAuthenticator]:
    """A passthrough and the authenticator configure() makes; `extra`: the admin's own
    GenericOAuthenticator settings, made before configure()."""
    passthrough = CanvasPassthrough(canvas.base_url, groups_session=FAST, **options)
    c = Config()
    for name, value in (extra or {}).items():
        setattr(c.GenericOAuthenticator, name, value)
    passthrough.configure(
        c, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, oauth_callback_url=CALLBACK
    )
    c.GenericOAuthenticator.enable_pkce = False  # no browser cookie here; e2e covers PKCE
    return passthrough, GenericOAuthenticator(config=c)


async def oauth_handler(canvas: FakeCanvas, authenticator: Any, user: FakeUser) -> Any:
    """The Canvas side of the OAuth dance; returns a stand-in for the hub's callback handler."""
    canvas.oauth_login_user = user
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": " ".join(authenticator.scope),
        "state": "s",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{canvas.base_url}/login/oauth2/auth", params=params, allow_redirects=False
        ) as response,
    ):
        assert response.status == 302
        code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    return SimpleNamespace(get_argument=lambda name, default=None: code)


async def login(canvas: FakeCanvas, authenticator: Any, user: FakeUser) -> dict[str, Any]:
    """authenticate(), as the hub's callback runs it: the auth model (groups included)."""
    handler = await oauth_handler(canvas, authenticator, user)
    model: dict[str, Any] = await authenticator.authenticate(handler)
    return model


async def admitted(canvas: FakeCanvas, authenticator: Any, user: FakeUser) -> dict[str, Any] | None:
    """JupyterHub's whole login decision (get_authenticated_user: authenticate, blocked,
    allow_all, check_allowed): the model, or None when the user is refused."""
    handler = await oauth_handler(canvas, authenticator, user)
    result: dict[str, Any] | None = await authenticator.get_authenticated_user(handler, None)
    return result


GROUP_READS = ("/api/v1/courses", "/api/v1/users/self/groups")


def course_groups(course: FakeCourse, *types: str) -> list[str]:
    """`canvas:course:<id>` and `canvas:course:<id>:<type>` for each of `types`."""
    return [f"canvas:course:{course.id}"] + [f"canvas:course:{course.id}:{t}" for t in types]


def section(model: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = model["auth_state"][AUTH_STATE_KEY]
    return value


@pytest.fixture(autouse=True)
def crypt_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "0" * 64)  # configure() checks it is there


@pytest.fixture
async def canvas() -> AsyncIterator[FakeCanvas]:
    async with FakeCanvas() as fake:
        fake.register_client(CLIENT_ID, CLIENT_SECRET)
        yield fake


@pytest.fixture
def ada(canvas: FakeCanvas) -> FakeUser:
    return canvas.add_user("Ada Student", login_id="ada")


# --- the groups ----------------------------------------------------------------------------


async def test_groups_follow_the_naming_scheme_for_every_role(
    canvas: FakeCanvas, ada: FakeUser
) -> None:
    other = canvas.add_user("Bo Other", login_id="bo")
    c = [canvas.add_course(f"Course {i}") for i in range(8)]
    c[0].enroll(ada)  # student
    c[1].enroll(ada, "teacher")
    c[2].enroll(ada, "ta", role_name="Grader")  # a custom role: its type is "ta"
    c[3].enroll(ada, "designer")
    c[4].enroll(ada, "observer", observing=other)
    c[5].enroll(ada)
    c[5].enroll(ada, "ta")  # two roles in one course
    c[6].enroll(ada, state="invited")  # not accepted yet: not active
    c[7].enroll(ada)
    c[7].concluded = True  # past its end date: completed by date
    canvas.add_course("Not mine").enroll(other)
    team = canvas.add_group("Team 1", c[0])
    club = canvas.add_group("Chess club")  # an account group
    old = canvas.add_group("Old team", c[7])  # its course concluded
    theirs = canvas.add_group("Their team", c[0])
    for group in (team, club, old):
        group.add_member(ada)
    theirs.add_member(other)

    passthrough, authenticator = hub(canvas, canvas_groups=True, extra={"allow_all": True})
    before = time.time()
    model = await login(canvas, authenticator, ada)

    expected = sorted(
        [
            f"canvas:course:{c[0].id}",
            f"canvas:course:{c[0].id}:student",
            f"canvas:course:{c[1].id}",
            f"canvas:course:{c[1].id}:teacher",
            f"canvas:course:{c[2].id}",
            f"canvas:course:{c[2].id}:ta",
            f"canvas:course:{c[3].id}",
            f"canvas:course:{c[3].id}:designer",
            f"canvas:course:{c[4].id}",
            f"canvas:course:{c[4].id}:observer",
            f"canvas:course:{c[5].id}",
            f"canvas:course:{c[5].id}:student",
            f"canvas:course:{c[5].id}:ta",
            f"canvas:group:{team.id}",
            f"canvas:group:{club.id}",
        ]
    )
    assert model["groups"] == expected  # what JupyterHub syncs (manage_groups)
    assert section(model)["groups"] == expected
    assert before <= section(model)["groups_read_at"] <= time.time()
    assert "groups_error" not in section(model)

    # Two GETs after the login's profile request, with the student's token, to Canvas only.
    token = model["auth_state"]["access_token"]
    reads = [r for r in canvas.requests if r.path_qs.startswith(GROUP_READS)]
    assert [(r.method, r.path_qs, r.status) for r in reads] == [
        ("GET", "/api/v1/courses?enrollment_state=active&per_page=100", 200),
        ("GET", "/api/v1/users/self/groups?per_page=100", 200),
    ]
    assert {r.authorization for r in reads} == {f"Bearer {token}"}
    assert canvas.non_get_api_requests == []
    # The token was asked for, and granted, exactly the base and the group scopes.
    assert canvas.tokens[token].scopes == frozenset(CANVAS_SCOPES + CANVAS_GROUP_SCOPES)
    assert passthrough.scopes == CANVAS_SCOPES + CANVAS_GROUP_SCOPES


async def test_every_page_of_courses_and_groups_is_read(canvas: FakeCanvas, ada: FakeUser) -> None:
    courses = [canvas.add_course(f"Course {i:03}") for i in range(130)]
    for course in courses:
        course.enroll(ada)
    groups = [canvas.add_group(f"Group {i:03}") for i in range(105)]
    for group in groups:
        group.add_member(ada)
    _, authenticator = hub(canvas, canvas_groups=True, extra={"allow_all": True})
    model = await login(canvas, authenticator, ada)
    names = set(model["groups"])
    assert {f"canvas:course:{c.id}" for c in courses} <= names
    assert {f"canvas:course:{c.id}:student" for c in courses} <= names
    assert {f"canvas:group:{g.id}" for g in groups} <= names
    assert len(names) == 2 * 130 + 105
    paths = [r.path_qs for r in canvas.requests]
    # The second pages came from Canvas's Link headers, which keep enrollment_state.
    assert "/api/v1/courses?enrollment_state=active&page=2&per_page=100" in paths
    assert "/api/v1/users/self/groups?page=2&per_page=100" in paths


async def test_groups_are_kept_in_sync_at_each_refresh(canvas: FakeCanvas, ada: FakeUser) -> None:
    course = canvas.add_course("Data Science 101")
    course.enroll(ada)
    team = canvas.add_group("Team", course)
    team.add_member(ada)
    _, authenticator = hub(canvas, canvas_groups=True, extra={"allow_all": True})
    state = (await login(canvas, authenticator, ada))["auth_state"]
    course.unenroll(ada)
    team.remove_member(ada)
    later = canvas.add_course("Statistics 102")
    later.enroll(ada, "ta")
    result = await authenticator.refresh_user(HubUser("ada", state))
    assert isinstance(result, dict)
    assert result["groups"] == course_groups(later, "ta")


# --- the login restriction ------------------------------------------------------------------


async def test_allowed_courses_admits_members_of_any_role_and_refuses_the_rest(
    canvas: FakeCanvas, ada: FakeUser
) -> None:
    listed = canvas.add_course("Listed 1")
    listed_too = canvas.add_course("Listed 2")
    elsewhere = canvas.add_course("Another course")
    grace = canvas.add_user("Grace Teacher", login_id="grace")
    olga = canvas.add_user("Olga Observer", login_id="olga")
    ivy = canvas.add_user("Ivy Invited", login_id="ivy")
    bo = canvas.add_user("Bo Outsider", login_id="bo")
    listed.enroll(grace, "teacher")
    listed_too.enroll(ada)
    listed.enroll(olga, "observer", observing=ada)
    listed.enroll(ivy, state="invited")
    elsewhere.enroll(ivy)
    elsewhere.enroll(bo)

    _, authenticator = hub(canvas, allowed_courses=[listed.id, str(listed_too.id)])
    assert authenticator.manage_groups is True
    assert authenticator.allowed_groups == {
        f"canvas:course:{listed.id}",
        f"canvas:course:{listed_too.id}",
    }
    assert authenticator.custom_403_message == NOT_ENROLLED_MESSAGE
    for user in (grace, ada, olga):
        model = await admitted(canvas, authenticator, user)
        assert model is not None, user.login_id
        assert model["name"] == user.login_id
    for user in (ivy, bo):  # invited only, or enrolled in another course
        assert await admitted(canvas, authenticator, user) is None, user.login_id

    # Without the restriction, the same hub (allow_all) lets Bo in, with his groups.
    _, open_hub = hub(canvas, canvas_groups=True, extra={"allow_all": True})
    model = await admitted(canvas, open_hub, bo)
    assert model is not None
    assert model["groups"] == course_groups(elsewhere, "student")


# --- failures -----------------------------------------------------------------------------


async def test_canvas_failure_keeps_the_previous_groups_also_after_a_hub_restart(
    canvas: FakeCanvas, ada: FakeUser, caplog: pytest.LogCaptureFixture
) -> None:
    course = canvas.add_course("Data Science 101")
    course.enroll(ada)
    team = canvas.add_group("Team", course)
    team.add_member(ada)
    expected = [
        f"canvas:course:{course.id}",
        f"canvas:course:{course.id}:student",
        f"canvas:group:{team.id}",
    ]
    _, authenticator = hub(canvas, canvas_groups=True, extra={"allow_all": True})
    first = await login(canvas, authenticator, ada)
    read_at = section(first)["groups_read_at"]

    canvas.inject_fault(r"^/api/v1/courses\?", "500", times=100)
    with caplog.at_level(logging.INFO):
        result = await authenticator.refresh_user(HubUser("ada", first["auth_state"]))
    assert isinstance(result, dict)
    assert result["groups"] == expected
    assert section(result)["groups_read_at"] == read_at
    assert "GET /api/v1/courses" in section(result)["groups_error"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "could not read ada's Canvas courses and groups" in w and "keeping the 3 group(s)" in w
        for w in warnings
    ), warnings
    attempts = [r for r in canvas.requests if r.path_qs.startswith("/api/v1/courses?")]
    assert [r.status for r in attempts[-3:]] == [500, 500, 500]  # retried, then given up

    # The hub restarts (nothing in memory) while Canvas is still failing: the groups stored
    # in auth_state at the last refresh are kept.
    _, restarted = hub(canvas, canvas_groups=True, extra={"allow_all": True})
    again = await restarted.refresh_user(HubUser("ada", result["auth_state"]))
    assert isinstance(again, dict)
    assert again["groups"] == expected

    # Canvas answers again, and the student was dropped from the course: the groups follow.
    canvas.clear_faults()
    course.unenroll(ada)
    final = await restarted.refresh_user(HubUser("ada", again["auth_state"]))
    assert isinstance(final, dict)
    assert final["groups"] == [f"canvas:group:{team.id}"]
    assert "groups_error" not in section(final)


async def test_canvas_failure_at_a_first_login(
    canvas: FakeCanvas, ada: FakeUser, caplog: pytest.LogCaptureFixture
) -> None:
    course = canvas.add_course("Data Science 101")
    course.enroll(ada)
    canvas.inject_fault(r"^/api/v1/users/self/groups", "502", times=100)

    # No restriction: the login goes on without Canvas groups, and the admin is told why.
    _, open_hub = hub(canvas, canvas_groups=True, extra={"allow_all": True})
    with caplog.at_level(logging.INFO):
        model = await admitted(canvas, open_hub, ada)
    assert model is not None
    assert model["groups"] == []
    assert section(model)["groups_read_at"] is None
    assert "they have no Canvas groups until the hub reads them" in caplog.text
    assert "GET /api/v1/users/self/groups" in caplog.text

    # With allowed_courses, the hub cannot tell whether she may come in: she is told to try
    # again later (not that she is not enrolled).
    _, strict = hub(canvas, allowed_courses=[course.id])
    with pytest.raises(web.HTTPError) as refused:
        await admitted(canvas, strict, ada)
    assert refused.value.status_code == 503
    assert getattr(refused.value, "jupyterhub_message", None) == CANVAS_UNAVAILABLE_MESSAGE
    assert refused.value.log_message is None  # tornado would log it with the OAuth code
    assert "login refused for now" in caplog.text

    # A refresh is never refused for this: a user who logged in before the hub had groups
    # (nothing stored to keep) just has none until Canvas answers.
    earlier = {
        "access_token": ada.token,
        "token_response": {"access_token": ada.token, "token_type": "Bearer"},
        "oauth_user": {"id": ada.id, "login_id": "ada"},
        AUTH_STATE_KEY: {"canvas_base_url": canvas.base_url},
    }
    refreshed = await strict.refresh_user(HubUser("ada", earlier))
    assert isinstance(refreshed, dict) and refreshed["groups"] == []

    # Once this hub has read her courses, a later failure keeps them and she gets in.
    canvas.clear_faults()
    assert await admitted(canvas, strict, ada) is not None
    canvas.inject_fault(r"^/api/v1/courses\?", "reset", times=100)
    model = await admitted(canvas, strict, ada)
    assert model is not None
    assert f"canvas:course:{course.id}" in model["groups"]


async def test_a_token_without_the_group_scopes_is_reported_with_the_scope(
    canvas: FakeCanvas, ada: FakeUser, caplog: pytest.LogCaptureFixture
) -> None:
    """A student who logged in before the developer key had the group scopes."""
    canvas.add_course("Data Science 101").enroll(ada)
    passthrough, authenticator = hub(canvas, canvas_groups=True, extra={"allow_all": True})
    old_token = canvas.issue_token(ada, scopes=frozenset(CANVAS_SCOPES))
    state = {
        "access_token": old_token,
        "token_response": {"expires_in": 3600},
        "oauth_user": {"id": ada.id, "login_id": "ada"},
    }
    with caplog.at_level(logging.INFO):
        result = await passthrough.modify_auth_state_hook(authenticator, state)
    assert result[AUTH_STATE_KEY]["groups"] == []
    assert "the token lacks the scope url:GET|/api/v1/courses" in caplog.text
    refused = [r for r in canvas.requests if r.path_qs.startswith("/api/v1/courses?")]
    assert [r.status for r in refused] == [401]  # a permission error is not retried


async def test_a_stalled_canvas_holds_a_login_only_for_groups_timeout(
    canvas: FakeCanvas, ada: FakeUser, caplog: pytest.LogCaptureFixture
) -> None:
    canvas.add_course("Data Science 101").enroll(ada)
    canvas.inject_fault(r"^/api/v1/courses\?", "stall")
    _, authenticator = hub(
        canvas, canvas_groups=True, groups_timeout=0.5, extra={"allow_all": True}
    )
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        model = await login(canvas, authenticator, ada)
    assert time.monotonic() - started < 5
    assert model["groups"] == []
    assert "no complete answer to GET /api/v1/courses within 0.5 s" in caplog.text


# --- configure() ----------------------------------------------------------------------------


def test_configure_without_canvas_groups_leaves_groups_alone() -> None:
    c = Config()
    CanvasPassthrough("https://canvas.example.edu").configure(c)
    auth = c.GenericOAuthenticator
    for name in ("manage_groups", "auth_state_groups_key", "allowed_groups"):
        assert name not in auth
    assert auth.scope == list(CANVAS_SCOPES)


def test_configure_with_canvas_groups() -> None:
    c = Config()
    c.Authenticator.allow_all = True  # fine without a restriction
    CanvasPassthrough("https://canvas.example.edu", canvas_groups=True).configure(c)
    auth = c.GenericOAuthenticator
    assert auth.manage_groups is True
    assert auth.auth_state_groups_key == GROUPS_KEY == "privatepuller.groups"
    assert auth.scope == [*CANVAS_SCOPES, *CANVAS_GROUP_SCOPES]
    assert "allowed_groups" not in auth and "custom_403_message" not in auth
    authenticator = GenericOAuthenticator(config=c)  # the traits accept it all
    assert authenticator.manage_groups and authenticator.allow_all


async def test_configure_keeps_the_admins_groups_settings(
    canvas: FakeCanvas, ada: FakeUser
) -> None:
    course = canvas.add_course("Data Science 101")
    course.enroll(ada)

    def staff_hook(authenticator: Any, auth_state: dict[str, Any]) -> dict[str, Any]:
        return {**auth_state, "my_groups": ["staff"]}

    c = Config()
    c.OAuthenticator.auth_state_groups_key = "my_groups"
    c.GenericOAuthenticator.manage_groups = True
    c.GenericOAuthenticator.modify_auth_state_hook = staff_hook
    c.Authenticator.allowed_groups.add("staff")  # a LazyConfigValue until it is loaded
    c.GenericOAuthenticator.custom_403_message = "Ask the help desk."
    passthrough = CanvasPassthrough(
        canvas.base_url, allowed_courses=[course.id], groups_session=FAST
    )
    passthrough.configure(
        c, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, oauth_callback_url=CALLBACK
    )
    c.GenericOAuthenticator.enable_pkce = False
    auth = c.GenericOAuthenticator
    assert auth.allowed_groups == {"staff", f"canvas:course:{course.id}"}
    assert auth.custom_403_message == "Ask the help desk."
    authenticator = GenericOAuthenticator(config=c)
    model = await admitted(canvas, authenticator, ada)
    assert model is not None
    assert model["groups"] == [
        f"canvas:course:{course.id}",
        f"canvas:course:{course.id}:student",
        "staff",
    ]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (("Authenticator", "allow_all", True), "Remove allow_all"),
        (("GenericOAuthenticator", "allow_all", True), "Remove allow_all"),
        (("Authenticator", "manage_groups", False), "needs manage_groups = True"),
        (("JupyterHub", "load_groups", {"staff": {"users": ["grace"]}}), "remove load_groups"),
    ],
)
def test_configure_refuses_settings_that_would_undo_the_restriction(
    setting: tuple[str, str, Any], message: str
) -> None:
    c = Config()
    section, name, value = setting
    setattr(c[section], name, value)
    with pytest.raises(ConfigurationError, match=message):
        CanvasPassthrough("https://canvas.example.edu", allowed_courses=[7]).configure(c)


def test_allowed_courses_are_checked() -> None:
    passthrough = CanvasPassthrough("https://canvas.example.edu", allowed_courses=["12", 7, 12])
    assert passthrough.allowed_courses == (7, 12) and passthrough.canvas_groups
    bad_ids: list[list[Any]] = [["DS101"], ["sis_course_id:DS101"], [0], [True], [1.5]]
    for bad in bad_ids:
        with pytest.raises(ValueError, match="not a Canvas course id"):
            CanvasPassthrough("https://canvas.example.edu", allowed_courses=bad)
    with pytest.raises(ValueError, match="needs canvas_groups"):
        CanvasPassthrough("https://canvas.example.edu", canvas_groups=False, allowed_courses=[7])


async def test_allow_all_set_after_configure_is_reported(
    canvas: FakeCanvas, ada: FakeUser, caplog: pytest.LogCaptureFixture
) -> None:
    course = canvas.add_course("Data Science 101")
    course.enroll(ada)
    passthrough, authenticator = hub(canvas, allowed_courses=[course.id])
    authenticator.allow_all = True  # e.g. a line below the configure() call
    with caplog.at_level(logging.INFO):
        await login(canvas, authenticator, ada)
        await login(canvas, authenticator, ada)
    errors = [r for r in caplog.records if "allow_all = True lets every Canvas user" in r.message]
    assert len(errors) == 1 and errors[0].levelno == logging.ERROR


async def test_concurrent_logins_get_their_own_groups(canvas: FakeCanvas) -> None:
    users = [canvas.add_user(f"Student {i}", login_id=f"s{i}") for i in range(6)]
    courses = [canvas.add_course(f"Course {i}") for i in range(6)]
    for user, course in zip(users, courses, strict=True):
        course.enroll(user)
    _, authenticator = hub(canvas, canvas_groups=True, extra={"allow_all": True})
    handlers = [await oauth_handler(canvas, authenticator, u) for u in users]
    models = await asyncio.gather(*(authenticator.authenticate(h) for h in handlers))
    for model, course in zip(models, courses, strict=True):
        assert model["groups"] == course_groups(course, "student")


def test_refused_logins_are_logged_without_the_oauth_code(caplog: pytest.LogCaptureFixture) -> None:
    """tornado's warning for a refused login names the callback URL, code and state included."""
    CanvasPassthrough("https://canvas.example.edu").configure(Config())
    CanvasPassthrough("https://canvas.example.edu").configure(Config())  # installed once
    tornado_log = logging.getLogger("tornado.general")
    with caplog.at_level(logging.WARNING, logger="tornado.general"):
        tornado_log.warning(
            "%d %s: " + NOT_ENROLLED_MESSAGE,
            403,
            "GET /hub/oauth_callback?code=0123abcd&state=eyJzdGF0ZSI6IDF9 (127.0.0.1)",
        )
    assert caplog.messages == [
        "403 GET /hub/oauth_callback?code=[secret]&state=[secret] (127.0.0.1): "
        + NOT_ENROLLED_MESSAGE
    ]
    assert len(tornado_log.filters) == 1
