"""The `auth_state` layout: what the hub writes (`privatepuller.hub`) and the user's server
reads (`privatepuller.credentials.hub`), defined once for both.

    auth_state["access_token"], ["refresh_token"], ["token_response"]: OAuthenticator's own
        keys (the Canvas token); ["token_response"][OBTAINED_AT_KEY]: when Canvas issued it.
    auth_state[AUTH_STATE_KEY] = {
        "canvas_base_url": "https://canvas.example.edu",
        "canvas_obtained_at": <epoch seconds>, "canvas_expires_at": <epoch seconds or None>,
        "google": {"access_token", "expires_at", "obtained_at", "service_account_email"}
                  or {"error": <sentence for the student>},
        with canvas_groups: "groups": [JupyterHub group names], "groups_read_at": <epoch
        seconds or None>, "groups_error": <why Canvas could not be read, for the admin>,
    }

When the hub has nothing to pass, its `auth_state_hook` sets `HUB_STATUS_ENV` in the server's
environment to one of the `HUB_STATUS_*` values, so that a server which cannot read auth_state
itself can still tell the student why.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .service_account import MintedToken

AUTH_STATE_KEY = "privatepuller"
OBTAINED_AT_KEY = "privatepuller_obtained_at"
# Where JupyterHub finds the groups (OAuthenticator's dotted `auth_state_groups_key`).
GROUPS_KEY = f"{AUTH_STATE_KEY}.groups"

HUB_STATUS_ENV = "PRIVATEPULLER_HUB_STATUS"
HUB_STATUS_AUTH_STATE_DISABLED = "auth_state_disabled"
HUB_STATUS_NO_CANVAS_LOGIN = "no_canvas_login"


# -- writing (the hub) ------------------------------------------------------------------------


def new_section(
    canvas_base_url: str, canvas_obtained_at: float, canvas_expires_at: float | None
) -> dict[str, Any]:
    """`auth_state[AUTH_STATE_KEY]` for a Canvas login; `google` is added by `with_google`."""
    return {
        "canvas_base_url": canvas_base_url,
        "canvas_obtained_at": canvas_obtained_at,
        "canvas_expires_at": canvas_expires_at,
    }


def google_token(token: MintedToken) -> dict[str, Any]:
    """The `google` entry for a token minted from the hub's service account."""
    return {
        "access_token": token.access_token,
        "expires_at": token.expires_at,
        "obtained_at": token.obtained_at,
        "service_account_email": token.service_account_email,
    }


def google_problem(message: str) -> dict[str, Any]:
    """The `google` entry when the hub could not mint a token: words for the student."""
    return {"error": message}


# -- reading (both sides) ---------------------------------------------------------------------


def our_section(auth_state: Mapping[str, Any]) -> dict[str, Any]:
    """`auth_state[AUTH_STATE_KEY]`, or {} when absent or malformed."""
    found = auth_state.get(AUTH_STATE_KEY)
    return found if isinstance(found, dict) else {}


def google_entry(auth_state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `google` entry, or None."""
    found = our_section(auth_state).get("google")
    return found if isinstance(found, dict) else None


def google_is_fresh(entry: object, margin: float) -> bool:
    """Whether a `google` entry holds a token valid for at least `margin` more seconds."""
    if not isinstance(entry, dict) or not entry.get("access_token"):
        return False
    expires_at = entry.get("expires_at")
    return isinstance(expires_at, int | float) and expires_at - time.time() > margin


def canvas_expires_at(auth_state: Mapping[str, Any]) -> float | None:
    """When the Canvas token in `auth_state` expires (epoch seconds), if known."""
    ours = our_section(auth_state)
    if isinstance(ours.get("canvas_expires_at"), int | float):
        return float(ours["canvas_expires_at"])
    token_response = auth_state.get("token_response")
    if isinstance(token_response, dict):
        obtained = token_response.get(OBTAINED_AT_KEY)
        expires_in = token_response.get("expires_in")
        if isinstance(obtained, int | float) and isinstance(expires_in, int | float):
            return float(obtained) + float(expires_in)
    return None


def text(value: object) -> str:
    """A string value of auth_state, stripped; "" for anything else."""
    return value.strip() if isinstance(value, str) else ""
