"""Canvas links -> repo types, and the API check that the folder or file exists for this student.

Resolution has two rounds, as in repoproviders: `CanvasURLResolver` recognises the link forms
people copy from the browser (no network) and answers `MaybeExists` of a link type;
`CanvasResolver` asks the Canvas API with the student's token and answers
`Exists(CanvasFolder | CanvasFile)` or `DoesNotExist` with a message that says what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

from yarl import URL

from ...credentials.sources import CredentialSource, EnvCredentialSource
from ...errors import NotConfigured, PullError, UnsupportedURL, WrongHost
from ...http.origin import Origin
from ...http.session import SessionOptions
from ..base import DoesNotExist, Exists, MaybeExists
from .policy import CANVAS_OPTIONS

Context = Literal["courses", "groups", "users"]
CONTEXT_NOUN = {"courses": "course", "groups": "group", "users": "personal"}

NOT_CONFIGURED = (
    "This link needs your Canvas login, but this server has no Canvas token. Ask your hub "
    "administrator to enable Canvas token passthrough (see the admin guide in privatepuller's "
    "docs/admin.md)."
)

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


class CanvasURLResolver:
    """Link forms -> unchecked repo types; no network."""

    async def resolve(
        self, question: URL, log: Any = None
    ) -> MaybeExists[CanvasFolderLink | CanvasFileLink] | DoesNotExist[CanvasFolderLink] | None:
        try:
            link = parse_canvas_url(question)
        except UnsupportedURL as refused:
            return DoesNotExist(CanvasFolderLink, refused.message)
        return None if link is None else MaybeExists(link)


class CanvasResolver:
    """Checks a link with the Canvas API, using the student's own token."""

    def __init__(
        self,
        credentials: CredentialSource | None = None,
        *,
        options: SessionOptions = CANVAS_OPTIONS,
    ) -> None:
        self.credentials = credentials or EnvCredentialSource()
        self.options = options

    async def resolve(
        self, question: CanvasFolderLink | CanvasFileLink, log: Any = None
    ) -> (
        Exists[CanvasFolder]
        | Exists[CanvasFile]
        | DoesNotExist[CanvasFolder]
        | DoesNotExist[CanvasFile]
    ):
        from .api import CanvasAPI

        credentials = await self.canvas_credentials(question.base_url)
        async with CanvasAPI.open(credentials, self.options) as api:
            if isinstance(question, CanvasFileLink):
                return await api.resolve_file(question)
            return await api.resolve_folder(question)

    async def canvas_credentials(self, base_url: str):  # -> CanvasCredentials
        credentials = await self.credentials.canvas()
        if credentials is None:
            raise NotConfigured(NOT_CONFIGURED)
        check_same_canvas(base_url, credentials.origin)
        return credentials


def check_same_canvas(base_url: str, configured: Origin) -> None:
    """The token goes only to the configured Canvas: any other host is refused before sending."""
    try:
        link_origin = Origin.of(base_url)
    except PullError:
        link_origin = None
    if link_origin != configured:
        shown = link_origin.host if link_origin else base_url
        raise WrongHost(
            f"This link points to {shown}, but your Canvas is {configured.host}. Your Canvas "
            f"login is only ever sent to {configured.host}, so this link cannot be pulled. Ask "
            "your instructor for a link to your course's Canvas."
        )
