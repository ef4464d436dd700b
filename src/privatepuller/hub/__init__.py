"""Code that runs in the hub: Canvas login, token passthrough and freshness, for
jupyterhub_config.py.

    from privatepuller.hub import CanvasPassthrough

    CanvasPassthrough(
        "https://canvas.example.edu",
        google_service_account_key="/etc/jupyterhub/secrets/drive-sa.json",
    ).configure(c)

See docs/admin.md for the complete configuration and what to ask Canvas administrators for.
The user's server reads what the hub passes with `privatepuller.credentials.hub`.
"""

from .canvas import (
    CANVAS_GROUP_SCOPES,
    CANVAS_SCOPES,
    TOKEN_PARAMS,
    canvas_oauth_settings,
    canvas_scopes,
    canvas_urls,
    scope_regex,
    scopes_allow,
)
from .groups import canvas_group, course_group
from .passthrough import PASSTHROUGH_ROLES, CanvasPassthrough, merge_roles

__all__ = [
    "CANVAS_GROUP_SCOPES",
    "CANVAS_SCOPES",
    "PASSTHROUGH_ROLES",
    "TOKEN_PARAMS",
    "CanvasPassthrough",
    "canvas_group",
    "canvas_oauth_settings",
    "canvas_scopes",
    "canvas_urls",
    "course_group",
    "merge_roles",
    "scope_regex",
    "scopes_allow",
]
