"""Google Drive as a provider: folders and files shared with the hub's service account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from yarl import URL

from ...credentials.sources import CredentialSource, GoogleCredentials
from ...errors import NotConfigured
from ...http.session import SessionOptions
from ...sync.names import stem
from ...sync.source import ListingLimits
from ..base import DoesNotExist, Exists
from .api import DriveAPI
from .exports import ExportFormats
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


class GoogleDriveProvider:
    name = "gdrive"
    policy = GOOGLE_POLICY
    links = (GoogleDriveFolderLink, GoogleDriveFileLink)
    repos = (GoogleDriveFolder, GoogleDriveFile)

    def __init__(self, exports: ExportFormats | None = None) -> None:
        """`exports`: formats for Google files (default: `PRIVATEPULLER_DRIVE_EXPORTS`, read
        when a folder is opened)."""
        self.exports = exports

    def recognise(self, url: URL) -> DriveLink | None:
        return parse_drive_url(url)

    async def credentials(
        self, source: CredentialSource, item: DriveLink | DriveRepo
    ) -> GoogleCredentials:
        credentials = await source.google()
        if credentials is None:
            raise NotConfigured(NOT_CONFIGURED)
        return credentials

    async def resolve(
        self, link: DriveLink, credentials: GoogleCredentials, options: SessionOptions
    ) -> Exists[DriveRepo] | DoesNotExist[DriveRepo]:
        async with DriveAPI.open(credentials, options) as api:
            return await resolve(api, link)

    @asynccontextmanager
    async def open(
        self,
        repo: DriveRepo,
        credentials: GoogleCredentials,
        options: SessionOptions | None = None,
        limits: ListingLimits | None = None,
    ) -> AsyncIterator[GoogleDriveSource]:
        exports = self.exports or ExportFormats.from_env()
        async with DriveAPI.open(
            credentials, options or SessionOptions(self.policy), limits
        ) as api:
            yield GoogleDriveSource(api, repo, exports)

    def folder_name(self, repo: DriveRepo) -> str:
        return stem(repo.name) if self.is_file(repo) else repo.name

    def is_file(self, repo: DriveRepo) -> bool:
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
