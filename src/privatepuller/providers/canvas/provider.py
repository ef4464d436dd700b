"""Canvas as a provider: course, group and personal files, read with the student's own token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from yarl import URL

from ...credentials.sources import CanvasCredentials, CredentialSource
from ...errors import NotConfigured, PullError, WrongHost, hub_or_alone
from ...http.origin import Origin
from ...http.session import SessionOptions
from ...sync.names import stem
from ...sync.source import ListingLimits, RemoteFile, Skipped
from ..base import DoesNotExist, Exists
from .api import CanvasAPI
from .links import (
    CanvasFile,
    CanvasFileLink,
    CanvasFolder,
    CanvasFolderLink,
    CanvasLink,
    CanvasRepo,
    parse_canvas_url,
)
from .policy import CANVAS_POLICY
from .resolve import resolve
from .source import CanvasSource
from .students import students_view

NOT_CONFIGURED = (
    "This link needs your Canvas login, but this server has no Canvas token. Ask your hub "
    "administrator to enable Canvas token passthrough (see the admin guide in privatepuller's "
    "docs/admin.md)."
)
# Outside a hub (the command line, a plain Jupyter server), the person running it sets these.
NOT_CONFIGURED_ALONE = (
    "This link needs a Canvas login, and none is set. Set CANVAS_BASE_URL to your Canvas's "
    "address (e.g. https://canvas.example.edu) and CANVAS_ACCESS_TOKEN to an access token "
    "(in Canvas: Account, Settings, New access token), then try again."
)


class CanvasProvider:
    name = "canvas"
    title = "Canvas"
    policy = CANVAS_POLICY
    links = (CanvasFolderLink, CanvasFileLink)
    repos = (CanvasFolder, CanvasFile)

    def recognise(self, url: URL) -> CanvasLink | None:
        return parse_canvas_url(url)

    async def credentials(
        self, source: CredentialSource, item: CanvasLink | CanvasRepo
    ) -> CanvasCredentials:
        credentials = await source.canvas()
        if credentials is None:
            raise NotConfigured(hub_or_alone(hub=NOT_CONFIGURED, alone=NOT_CONFIGURED_ALONE))
        check_same_canvas(item.base_url, credentials.origin)
        return credentials

    async def resolve(
        self, link: CanvasLink, credentials: CanvasCredentials, options: SessionOptions
    ) -> Exists[CanvasRepo] | DoesNotExist[CanvasRepo]:
        check_same_canvas(link.base_url, credentials.origin)
        async with CanvasAPI.open(credentials, options) as api:
            return await resolve(api, link)

    @asynccontextmanager
    async def open(
        self,
        repo: CanvasRepo,
        credentials: CanvasCredentials,
        options: SessionOptions | None = None,
        limits: ListingLimits | None = None,
    ) -> AsyncIterator[CanvasSource]:
        check_same_canvas(repo.base_url, credentials.origin)
        async with CanvasAPI.open(
            credentials, options or SessionOptions(self.policy), limits
        ) as api:
            yield CanvasSource(api, repo)

    def folder_name(self, repo: CanvasRepo) -> str:
        return stem(repo.name) if self.is_file(repo) else repo.name

    def is_file(self, repo: CanvasRepo) -> bool:
        return isinstance(repo, CanvasFile)

    # -- InstructorView -------------------------------------------------------------------

    async def students_view(
        self, source: CanvasSource, files: tuple[RemoteFile[str], ...]
    ) -> tuple[tuple[RemoteFile[str], ...], list[Skipped]]:
        return await students_view(source, files)

    def instructor_notes(self, checked: bool) -> list[str]:
        notes = [
            "You checked this with your own Canvas login. Each student's server reads Canvas "
            "with that student's own login, so a student gets only what they can open in "
            "Canvas themselves."
        ]
        if checked:
            notes.append(
                "Unpublished files, files outside their availability dates and hidden files "
                "are listed above as not copied; students get them at their next click once "
                "Canvas lets them see them."
            )
        notes.append(
            "Files locked by module requirements (“complete the previous module first”) do "
            "not look locked to you here; each student gets them once Canvas unlocks them for "
            "that student."
        )
        return notes


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


CANVAS = CanvasProvider()
