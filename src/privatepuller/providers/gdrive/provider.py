"""Google Drive as a provider: folders and files shared with the hub's service account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from yarl import URL

from ...credentials.sources import CredentialSource, GoogleCredentials
from ...errors import NotConfigured, hub_or_alone
from ...http.session import SessionOptions
from ...sync.names import stem
from ...sync.source import ListingLimits
from ..base import DoesNotExist, Exists
from .api import DriveAPI
from .exports import ExportFormats
from .hub import HubClient, HubDriveItem, HubDriveSource, HubService
from .links import (
    DriveLink,
    DriveRepo,
    GoogleDriveFile,
    GoogleDriveFileLink,
    GoogleDriveFolder,
    GoogleDriveFolderLink,
    parse_drive_url,
)
from .policy import GOOGLE_POLICY
from .resolve import resolve
from .source import GoogleDriveSource

NOT_CONFIGURED = (
    "This link is a Google Drive link, but this server has no Google Drive credentials. Ask "
    "your hub administrator to set up the hub's Google service account (see privatepuller's "
    "docs/admin.md)."
)
# Outside a hub (the command line, a plain Jupyter server), the person running it sets these.
NOT_CONFIGURED_ALONE = (
    "This link is a Google Drive link, and no Google credentials are set. Set "
    "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (and share the folder with "
    "that account's address), or GOOGLE_DRIVE_ACCESS_TOKEN to an access token with the "
    "drive.readonly scope, then try again."
)


class GoogleDriveProvider:
    """Drive with the service account's credentials where this process has them (the
    command line, the hub's service, `drive_token_to_servers`); otherwise, in a student's
    server under a hub with the privatepuller service, through that service (`hub.py`): the
    credentials are then a `HubService`, the repo a `HubDriveItem`."""

    name = "gdrive"
    title = "Google Drive"
    policy = GOOGLE_POLICY
    links = (GoogleDriveFolderLink, GoogleDriveFileLink)
    repos = (GoogleDriveFolder, GoogleDriveFile, HubDriveItem)

    def __init__(self, exports: ExportFormats | None = None) -> None:
        """`exports`: formats for Google files (default: `PRIVATEPULLER_DRIVE_EXPORTS`, read
        when a folder is opened)."""
        self.exports = exports

    def recognise(self, url: URL) -> DriveLink | None:
        return parse_drive_url(url)

    async def credentials(
        self, source: CredentialSource, item: DriveLink | DriveRepo | HubDriveItem
    ) -> GoogleCredentials | HubService:
        credentials = await source.google()
        if credentials is not None:
            return credentials
        if (service := HubService.from_env()) is not None:
            return service
        raise NotConfigured(hub_or_alone(hub=NOT_CONFIGURED, alone=NOT_CONFIGURED_ALONE))

    async def resolve(
        self, link: DriveLink, credentials: GoogleCredentials | HubService, options: SessionOptions
    ) -> Exists[DriveRepo | HubDriveItem] | DoesNotExist[DriveRepo]:
        if isinstance(credentials, HubService):
            return Exists(await HubClient(credentials, options).info(link))
        async with DriveAPI.open(credentials, options) as api:
            return await resolve(api, link)

    @asynccontextmanager
    async def open(
        self,
        repo: DriveRepo | HubDriveItem,
        credentials: GoogleCredentials | HubService,
        options: SessionOptions | None = None,
        limits: ListingLimits | None = None,
    ) -> AsyncIterator[GoogleDriveSource | HubDriveSource]:
        if isinstance(repo, HubDriveItem) and isinstance(credentials, HubService):
            yield HubDriveSource(HubClient(credentials, options), repo)
            return
        assert not isinstance(repo, HubDriveItem) and not isinstance(credentials, HubService)
        exports = self.exports or ExportFormats.from_env()
        async with DriveAPI.open(
            credentials, options or SessionOptions(self.policy), limits
        ) as api:
            yield GoogleDriveSource(api, repo, exports)

    def folder_name(self, repo: DriveRepo | HubDriveItem) -> str:
        return stem(repo.name) if self.is_file(repo) else repo.name

    def is_file(self, repo: DriveRepo | HubDriveItem) -> bool:
        if isinstance(repo, HubDriveItem):
            return repo.kind == "file"
        return isinstance(repo, GoogleDriveFile)

    # -- InstructorView -------------------------------------------------------------------

    async def students_view(self, source: GoogleDriveSource, files: tuple[Any, ...]) -> None:
        return None  # every student reads with the hub's account: they get what is listed

    def instructor_notes(self, checked: bool) -> list[str]:
        return [
            "Google Drive is read with the hub's service account, the same for every student: "
            "students get what is listed here, as long as the folder stays shared with the hub."
        ]


GDRIVE = GoogleDriveProvider()
