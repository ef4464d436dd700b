"""Canvas as JupyterHub's OAuth2 provider: URLs, settings and developer-key scopes.

`CANVAS_SCOPES` is the exact list a Canvas administrator enables on a scoped developer key
for privatepuller; the hub requests the same list at login. A test checks every endpoint in
`privatepuller.providers.canvas.api.ENDPOINTS` against it with Canvas's own matching rule
(`scope_regex`), so the list cannot silently fall behind the API client. `CANVAS_GROUP_SCOPES`
is added when the hub turns Canvas enrollments into JupyterHub groups (`canvas_scopes`),
checked the same way against `privatepuller.hub.groups.ENDPOINTS`.

Scope names are Canvas's route templates, as printed under each endpoint of the Canvas REST
API docs (e.g. https://canvas.instructure.com/doc/api/files.html).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..credentials.sources import canvas_base_url

# Every Canvas API call privatepuller makes, plus the one GenericOAuthenticator makes at login.
# `:context` in the API client is one of courses, groups or users (a student's own files), so
# each context-scoped route appears three times.
CANVAS_SCOPES: tuple[str, ...] = (
    # Login: GenericOAuthenticator's userdata_url, /api/v1/users/self/profile.
    "url:GET|/api/v1/users/:user_id/profile",
    # The name of a course or group (the default folder name when linking a whole space).
    "url:GET|/api/v1/courses/:id",
    "url:GET|/api/v1/groups/:group_id",
    # The root folder of a space: folders/root is "Get folder" with id "root".
    "url:GET|/api/v1/courses/:course_id/folders/:id",
    "url:GET|/api/v1/groups/:group_id/folders/:id",
    "url:GET|/api/v1/users/:user_id/folders/:id",
    # A folder link: "Resolve path".
    "url:GET|/api/v1/courses/:course_id/folders/by_path/*full_path",
    "url:GET|/api/v1/groups/:group_id/folders/by_path/*full_path",
    "url:GET|/api/v1/users/:user_id/folders/by_path/*full_path",
    # The tree: "List all folders" and "List files" of the space (flat, paginated).
    "url:GET|/api/v1/courses/:course_id/folders",
    "url:GET|/api/v1/groups/:group_id/folders",
    "url:GET|/api/v1/users/:user_id/folders",
    "url:GET|/api/v1/courses/:course_id/files",
    "url:GET|/api/v1/groups/:group_id/files",
    "url:GET|/api/v1/users/:user_id/files",
    # A single-file link: "Get file".
    "url:GET|/api/v1/files/:id",
)

# With Canvas groups on (`CanvasPassthrough(canvas_groups=True)`), the hub also reads the
# student's courses and groups at login and refresh (`privatepuller.hub.groups.ENDPOINTS`).
# canvas-lms config/routes.rb: `get "courses", action: :index` ("List your courses") and
# `get "users/self/groups", action: :index, as: "current_user_groups"` ("List your groups"),
# both in the /api/v1 route set. Requested only when the feature is on: Canvas refuses an
# authorization that asks for a scope the developer key lacks (lib/canvas/oauth/provider.rb,
# `valid_scopes?`), so a hub that does not use groups must not need them on its key.
CANVAS_GROUP_SCOPES: tuple[str, ...] = (
    "url:GET|/api/v1/courses",
    "url:GET|/api/v1/users/self/groups",
)

# Paths the API client requests that are NOT API routes: a file's `url`, /files/:id/download,
# which redirects to the file store. No developer-key scope can name them, so none is listed:
# Canvas builds its scopes from /api/ routes only (canvas-lms lib/token_scopes.rb,
# TokenScopes.api_routes: routes matching ^/api/(v1|sis|quiz/v1)), and checks a token's
# scopes only where it reads API tokens at all (lib/authentication_methods.rb: validate_scopes
# is called from load_pseudonym_from_access_token, which returns early unless `api_request?`,
# a path starting with /api/). Since Canvas's deploy of 25 March 2026 these URLs carry no
# `verifier`, and a download needs the token in the Authorization header (Instructure's
# "Modernizing our Files API"); the session sends it to the Canvas origin only, never to the
# file store. The canvas-lms source read for this still authorises a download by `verifier` or
# by session (FilesController#show), so how that deploy treats a scoped key's token on a
# download is not visible there; docs/admin.md says how an admin checks it.
UNSCOPED_PATH_PREFIXES: tuple[str, ...] = ("/files/",)

# Sent with the authorization-code grant: Canvas deletes the user's older tokens from this
# developer key, so logging in again does not pile up tokens (datahub PR #3499).
TOKEN_PARAMS: dict[str, str] = {"replace_tokens": "1"}


def canvas_scopes(*, canvas_groups: bool = False) -> tuple[str, ...]:
    """The scopes to enable on the developer key (and request at login)."""
    return CANVAS_SCOPES + (CANVAS_GROUP_SCOPES if canvas_groups else ())


def canvas_urls(canvas_url: str) -> tuple[str, str, str]:
    """(authorize_url, token_url, userdata_url) of a Canvas instance."""
    base = normalize_canvas_url(canvas_url)
    return (
        f"{base}/login/oauth2/auth",
        f"{base}/login/oauth2/token",
        f"{base}/api/v1/users/self/profile",
    )


def normalize_canvas_url(canvas_url: str) -> str:
    """`https://canvas.example.edu` (no path, no trailing slash); raises ValueError (the same
    check, and message, as the user server's `CANVAS_BASE_URL`)."""
    return str(canvas_base_url(canvas_url))


def canvas_oauth_settings(
    canvas_url: str, *, username_claim: str = "login_id", scopes: Iterable[str] = CANVAS_SCOPES
) -> dict[str, Any]:
    """GenericOAuthenticator settings for a Canvas instance.

    for name, value in canvas_oauth_settings("https://canvas.example.edu").items():
        setattr(c.GenericOAuthenticator, name, value)
    """
    authorize_url, token_url, userdata_url = canvas_urls(canvas_url)
    return {
        "login_service": "Canvas",
        "authorize_url": authorize_url,
        "token_url": token_url,
        "userdata_url": userdata_url,
        "scope": list(scopes),
        "token_params": dict(TOKEN_PARAMS),
        # Canvas's profile: id, name, login_id, primary_email... (login_id is the user's
        # institutional login, which is what students expect as their hub name).
        "username_claim": username_claim,
    }


def scope_regex(scope: str) -> tuple[str, re.Pattern[str]]:
    """(method, path regex) of a `url:METHOD|/path` scope, exactly as Canvas builds it in
    AccessToken#url_scopes_for_method: `:param` matches one segment, `*glob` one or more
    characters, `(...)` is optional, and an optional `.format` suffix is allowed."""
    kind, _, rest = scope.partition(":")
    method, sep, path = rest.partition("|")
    if kind != "url" or not sep or not path.startswith("/"):
        raise ValueError(f"not a Canvas URL scope: {scope!r}")
    pattern = re.escape(path)
    # re.escape turned ":" "*" "(" ")" into escaped forms; rebuild Canvas's substitutions.
    pattern = re.sub(r":[^/)\\]+", "[^/]+", pattern.replace("\\:", ":"))
    pattern = re.sub(r"\\\*[^/)\\]+", ".+", pattern)
    pattern = pattern.replace("\\(", "(?:").replace("\\)", "|)")
    return method, re.compile(f"^{pattern}(?:\\.[^/]+|)$")


def scopes_allow(scopes: Iterable[str], method: str, path: str) -> bool:
    """Whether a token with `scopes` may send `method path` to Canvas (HEAD counts as GET)."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    if not path.startswith("/api/"):
        return True  # Canvas checks scopes on /api/ paths only (see UNSCOPED_PATH_PREFIXES)
    for scope in scopes:
        scope_method, regex = scope_regex(scope)
        if scope_method == method and regex.match(path):
            return True
    return False
