"""The Canvas developer-key scopes privatepuller asks for cover everything the fetcher calls."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from conftest import CanvasWorld
from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.hub import (
    CANVAS_GROUP_SCOPES,
    CANVAS_SCOPES,
    CanvasPassthrough,
    canvas_oauth_settings,
    canvas_scopes,
    scope_regex,
    scopes_allow,
)
from privatepuller.hub import groups as hub_groups
from privatepuller.hub.canvas import UNSCOPED_PATH_PREFIXES, canvas_urls, normalize_canvas_url
from privatepuller.providers.canvas.api import ENDPOINTS
from privatepuller.pull import pull

CONTEXTS = ("courses", "groups", "users")
# Concrete values for each template parameter, including the odd ones Canvas accepts.
SAMPLE_IDS = ("1", "12345", "self", "sis_course_id:ABC-101")
SAMPLE_PATHS = ("Week 1", "Week%201/data", "a/b/c/d")


def concrete_paths(template: str) -> list[str]:
    """Every path the fetcher can request from an ENDPOINTS template."""
    contexts = CONTEXTS if ":context" in template else ("",)
    paths = []
    for context in contexts:
        for sample_id in SAMPLE_IDS:
            if sample_id == "self" and context not in ("", "users"):
                continue
            for sample_path in SAMPLE_PATHS:
                path = template.replace(":context", context).replace(":id", sample_id)
                paths.append(path.replace("*path", sample_path))
    return sorted(set(paths))


@pytest.mark.parametrize(("method", "template"), ENDPOINTS)
def test_every_endpoint_the_fetcher_calls_is_covered_by_a_scope(method: str, template: str) -> None:
    for path in concrete_paths(template):
        if path.startswith("/api/"):
            assert scopes_allow(CANVAS_SCOPES, method, path), f"no scope covers {method} {path}"
            assert scopes_allow(CANVAS_SCOPES, "HEAD", path)
        else:
            # Not an API route (a file's download URL): no developer-key scope can name it,
            # since Canvas builds scopes from /api/ routes only. The token is still sent there.
            assert path.startswith(UNSCOPED_PATH_PREFIXES), f"{path} needs a decision"
            assert not any(scope_regex(s)[1].match(path) for s in CANVAS_SCOPES)


def test_every_scope_is_needed() -> None:
    """No scope is asked for that nothing uses (admins grant exactly this list)."""
    used_paths = [p for _, t in ENDPOINTS for p in concrete_paths(t) if p.startswith("/api/")]
    used_paths.append("/api/v1/users/self/profile")  # GenericOAuthenticator's userdata_url
    for scope in CANVAS_SCOPES:
        _, regex = scope_regex(scope)
        assert any(regex.match(p) for p in used_paths), f"{scope} is never used"
    assert len(set(CANVAS_SCOPES)) == len(CANVAS_SCOPES)


def test_the_group_scopes_are_exactly_what_the_hub_reads_for_groups() -> None:
    """CanvasPassthrough(canvas_groups=True) reads two lists; each needs its own scope, the
    base list covers neither, and no group scope is unused."""
    for method, path in hub_groups.ENDPOINTS:
        assert scopes_allow(CANVAS_GROUP_SCOPES, method, path), f"no scope covers {path}"
        assert not scopes_allow(CANVAS_SCOPES, method, path), f"{path} needs no extra scope"
    for scope in CANVAS_GROUP_SCOPES:
        _, regex = scope_regex(scope)
        assert sum(bool(regex.match(p)) for _, p in hub_groups.ENDPOINTS) == 1, scope
        assert scope.startswith("url:GET|/api/v1/")
    # Canvas's route templates (config/routes.rb, ApiRouteSet::V1): `get "courses"` and
    # `get "users/self/groups"`; a scope for the course list must not cover a course's files.
    assert not scopes_allow(CANVAS_GROUP_SCOPES, "GET", "/api/v1/courses/7/files")
    assert not scopes_allow(CANVAS_GROUP_SCOPES, "GET", "/api/v1/users/7/groups")
    assert {hub_groups.COURSES_SCOPE, hub_groups.GROUPS_SCOPE} == set(CANVAS_GROUP_SCOPES)


def test_group_scopes_are_requested_only_with_canvas_groups() -> None:
    """Canvas refuses an authorization asking for a scope the developer key lacks, so a hub
    without groups must not ask for them."""
    assert canvas_scopes() == CANVAS_SCOPES
    assert canvas_scopes(canvas_groups=True) == CANVAS_SCOPES + CANVAS_GROUP_SCOPES
    plain = CanvasPassthrough("https://canvas.example.edu")
    assert plain.oauth_settings()["scope"] == list(CANVAS_SCOPES)
    grouped = CanvasPassthrough("https://canvas.example.edu", allowed_courses=[5])
    assert grouped.oauth_settings()["scope"] == list(CANVAS_SCOPES + CANVAS_GROUP_SCOPES)
    custom = CanvasPassthrough(
        "https://canvas.example.edu", scopes=CANVAS_SCOPES[:3], canvas_groups=True
    )
    assert custom.scopes == CANVAS_SCOPES[:3] + CANVAS_GROUP_SCOPES


def test_scopes_are_read_only() -> None:
    assert all(s.startswith("url:GET|/api/v1/") for s in CANVAS_SCOPES + CANVAS_GROUP_SCOPES)
    for path in ("/api/v1/courses/1/files", "/api/v1/files/9"):
        for method in ("POST", "PUT", "DELETE"):
            assert not scopes_allow(CANVAS_SCOPES, method, path)


def test_scope_matching_follows_canvas_rules() -> None:
    # AccessToken#url_scopes_for_method: :param = one segment, *glob = anything, optional
    # .format suffix, anchored at both ends.
    _, folder = scope_regex("url:GET|/api/v1/courses/:course_id/folders/:id")
    assert folder.match("/api/v1/courses/7/folders/root")
    assert folder.match("/api/v1/courses/7/folders/12.json")
    assert not folder.match("/api/v1/courses/7/folders/12/files")
    assert not folder.match("/api/v1/courses/7/folders")
    _, by_path = scope_regex("url:GET|/api/v1/courses/:course_id/folders/by_path/*full_path")
    assert by_path.match("/api/v1/courses/7/folders/by_path/a/b%20c")
    assert not by_path.match("/api/v1/courses/7/folders/by_path/")
    _, optional = scope_regex("url:GET|/api/v1/x(/:id)")
    assert optional.match("/api/v1/x") and optional.match("/api/v1/x/3")
    method, _ = scope_regex("url:GET|/api/v1/files/:id")
    assert method == "GET"
    with pytest.raises(ValueError):
        scope_regex("/api/v1/files/:id")
    # Scopes are case- and path-exact: another resource with the same shape is refused.
    assert not scopes_allow(["url:GET|/api/v1/courses/:id"], "GET", "/api/v1/groups/3")
    assert re.fullmatch(r"url:GET\|/api/v1/[a-z_/:*]+", CANVAS_SCOPES[0])


def test_oauth_settings_for_generic_oauthenticator() -> None:
    settings = canvas_oauth_settings("https://canvas.example.edu/")
    assert settings["authorize_url"] == "https://canvas.example.edu/login/oauth2/auth"
    assert settings["token_url"] == "https://canvas.example.edu/login/oauth2/token"
    assert settings["userdata_url"] == "https://canvas.example.edu/api/v1/users/self/profile"
    assert settings["token_params"] == {"replace_tokens": "1"}
    assert settings["scope"] == list(CANVAS_SCOPES)
    assert settings["username_claim"] == "login_id"
    assert canvas_urls("http://127.0.0.1:8080")[0] == "http://127.0.0.1:8080/login/oauth2/auth"
    assert normalize_canvas_url("HTTPS://Canvas.Example.edu") == "https://canvas.example.edu"
    for bad in ("canvas.example.edu", "https://canvas.example.edu/courses/1", "ftp://x"):
        with pytest.raises(ValueError):
            normalize_canvas_url(bad)


async def test_a_token_with_exactly_these_scopes_pulls_a_course(
    world: CanvasWorld, tmp_path: Path
) -> None:
    """The fake Canvas enforces scopes like a scoped developer key: a token limited to
    CANVAS_SCOPES must be enough for whole-course, folder and single-file links."""
    token = world.canvas.issue_token(world.student, scopes=frozenset(CANVAS_SCOPES))
    credentials = EnvCredentialSource(
        {"CANVAS_BASE_URL": world.canvas.base_url, "CANVAS_ACCESS_TOKEN": token}
    )
    config = dataclasses.replace(world.config, backoff_scale=0.001)
    file = world.course.files.file("Week 1/data/iris.csv")
    for suffix in ("", "/folder/Week%201", f"/{file.id}"):
        report = await pull(
            world.url(suffix), parent_dir=world.workdir, credentials=credentials, config=config
        )
        assert report.target.exists()
    refused = [r for r in world.canvas.requests if r.status == 401]
    assert refused == []
    # The fake Canvas, like Canvas since March 2026, wants the token on every download (file
    # URLs carry no verifier): the scoped token was sent there and accepted.
    downloads = [r for r in world.canvas.requests if "/download" in r.path_qs]
    assert downloads and all("verifier" not in r.path_qs for r in downloads)
    assert {(r.status, r.authorization) for r in downloads} == {(302, f"Bearer {token}")}
    # A token missing one scope is refused by the same fake: the check above can fail.
    partial = world.canvas.issue_token(
        world.student, scopes=frozenset(s for s in CANVAS_SCOPES if "/files" not in s)
    )
    with pytest.raises(Exception, match="(?i)access|login"):
        await pull(
            world.url(),
            tmp_path / "partial",
            credentials=EnvCredentialSource(
                {"CANVAS_BASE_URL": world.canvas.base_url, "CANVAS_ACCESS_TOKEN": partial}
            ),
            config=config,
        )
