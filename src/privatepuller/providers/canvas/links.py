"""Canvas links (what a URL names, not yet checked) and repos (what the student can see), and
the link forms people copy from the browser, recognised without network.

A link becomes a repo in `resolve.py`, with the student's token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from yarl import URL

from ...errors import PullError, UnsupportedURL
from ...http.origin import Origin

Context = Literal["courses", "groups", "users"]
CONTEXT_NOUN = {"courses": "course", "groups": "group", "users": "personal"}

USER_INFO = (
    "This link has a user name in it (a part ending in “@” before the host name). Canvas links "
    "never have one, and such links are used to disguise where they point, so it was not "
    "pulled. Ask your instructor for the link exactly as Canvas shows it."
)


@dataclass(frozen=True)
class CanvasFolderLink:
    """A folder named by a link; not yet checked."""

    base_url: str  # the Canvas origin, e.g. "https://canvas.example.edu"
    context: Context
    context_id: str  # digits, or "self" for the personal files page
    path: tuple[str, ...]  # folder names below the context's root folder

    immutable = False


@dataclass(frozen=True)
class CanvasFileLink:
    base_url: str
    file_id: str
    context: Context | None = None
    context_id: str | None = None

    immutable = False


@dataclass(frozen=True)
class CanvasFolder:
    """A folder the student can see."""

    base_url: str
    context: Context
    context_id: str
    folder_id: int
    name: str  # default local folder name (course or group name for a root folder)
    full_name: str  # Canvas's own path, e.g. "course files/Week 1"

    immutable = False


@dataclass(frozen=True)
class CanvasFile:
    base_url: str
    file_id: int
    name: str  # display name

    immutable = False


_ID = r"(?:\d+|self|\d+~\d+)"
_CONTEXT_FILES = re.compile(rf"^/(courses|groups|users)/({_ID})/files(?:/(.*))?$")
_PERSONAL_FILES = re.compile(r"^/files(?:/(.*))?$")


def parse_canvas_url(url: URL) -> CanvasFolderLink | CanvasFileLink | None:
    """Recognise Canvas file links by their path; the host is checked against credentials later.

    Raises `UnsupportedURL` for a Canvas-shaped link with user info (`name@host`) in it.
    """
    if url.scheme not in ("http", "https") or not url.host:
        return None
    # Split the raw path so an encoded "%2F" inside a folder name stays inside that name.
    raw_path = url.raw_path.rstrip("/") or "/"
    context: Context
    if m := _CONTEXT_FILES.match(raw_path):
        context, context_id, rest = m.group(1), m.group(2), m.group(3)  # type: ignore[assignment]
    elif m := _PERSONAL_FILES.match(raw_path):
        context, context_id, rest = "users", "self", m.group(1)
    else:
        return None
    try:
        base = str(Origin.of(url))
    except PullError:
        # `https://canvas.example.edu@evil.example/...`: user info hides the real host. Refused
        # here, so no later step can mistake the link for the configured Canvas.
        raise UnsupportedURL(USER_INFO) from None
    segments = [unquote(s) for s in rest.split("/")] if rest else []
    if any(s in (".", "..") or "\x00" in s or "/" in s for s in segments):
        return None  # no Canvas folder has such a name; it can only be a path trick
    if "preview" in url.query and url.query["preview"].isdigit():
        return CanvasFileLink(base, url.query["preview"], context, context_id)
    if not segments:
        return CanvasFolderLink(base, context, context_id, ())
    if segments[0] == "folder":
        return CanvasFolderLink(base, context, context_id, tuple(s for s in segments[1:] if s))
    if segments[0].isdigit() and (len(segments) == 1 or segments[1] in ("preview", "download")):
        return CanvasFileLink(base, segments[0], context, context_id)
    if context == "users" and context_id == "self" and segments[0].isdigit():
        return CanvasFileLink(base, segments[0])
    return None


CanvasLink = CanvasFolderLink | CanvasFileLink
CanvasRepo = CanvasFolder | CanvasFile
