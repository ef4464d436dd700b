"""The whole path for one link: recognise, resolve with credentials, sync, merge.

Shared by the CLI and the server extension. Recognising a link (`parse_link`) needs no network
and no credentials, so the server can decide at once whether a link is ours or nbgitpuller's.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from yarl import URL

from .credentials.sources import CredentialSource, EnvCredentialSource
from .errors import NoAccess, NotFound, UnsupportedURL
from .http.backoff import BackoffPolicy
from .http.session import SessionOptions
from .providers.base import DoesNotExist, Exists, NotVisible
from .providers.canvas.links import (
    CanvasFile,
    CanvasFileLink,
    CanvasFolder,
    CanvasFolderLink,
    CanvasResolver,
    parse_canvas_url,
)
from .providers.canvas.policy import CANVAS_POLICY
from .providers.canvas.source import CanvasFetcher
from .providers.gdrive.links import (
    GoogleDriveFile,
    GoogleDriveFileLink,
    GoogleDriveFolder,
    GoogleDriveFolderLink,
    GoogleDriveResolver,
    parse_drive_url,
)
from .providers.gdrive.policy import GOOGLE_POLICY
from .providers.gdrive.source import GoogleDriveFetcher
from .sync.engine import SyncConfig, SyncReport, origin_for, sync
from .sync.names import sanitize_component
from .sync.progress import NullProgress, Progress
from .sync.source import ListingLimits, Source
from .targets import claim_target, visible_name

Link = CanvasFolderLink | CanvasFileLink | GoogleDriveFolderLink | GoogleDriveFileLink
Resolved = CanvasFolder | CanvasFile | GoogleDriveFolder | GoogleDriveFile


def parse_link(url: str) -> Link | None:
    """Our link types for a URL we pull, or None for anything else (git URLs included).

    Raises `UnsupportedURL` for Google links that name nothing pullable (a published copy,
    Drive's home page), so the person is told what to copy instead, and for Canvas-shaped
    links with user info (`canvas.example.edu@evil.example`).
    """
    try:
        parsed = URL(url.strip())
    except (ValueError, TypeError):
        return None
    return parse_canvas_url(parsed) or parse_drive_url(parsed)


async def resolve_link(
    link: Link,
    credentials: CredentialSource,
    config: SyncConfig | None = None,
    progress: Progress | None = None,
) -> Resolved:
    config = config or SyncConfig()
    if isinstance(link, GoogleDriveFolderLink | GoogleDriveFileLink):
        options = session_options(GOOGLE_POLICY, config, progress)
        answer: Any = await GoogleDriveResolver(credentials, options=options).resolve(link)
    else:
        options = session_options(CANVAS_POLICY, config, progress)
        answer = await CanvasResolver(credentials, options=options).resolve(link)
    if isinstance(answer, Exists):
        return answer.repo
    if isinstance(answer, NotVisible):
        raise NoAccess(answer.message)
    assert isinstance(answer, DoesNotExist)
    raise NotFound(answer.message)


def session_options(
    policy: BackoffPolicy, config: SyncConfig, progress: Progress | None
) -> SessionOptions:
    """A provider's session settings for this sync (backoff clock, stall timeout, waits)."""
    return SessionOptions(
        policy.scaled(config.backoff_scale),
        read_timeout=config.read_timeout,
        on_wait=progress.waiting if progress else None,
        min_throughput=config.min_throughput,
        throughput_window=config.throughput_window,
    )


def listing_limits(config: SyncConfig) -> ListingLimits:
    return ListingLimits(max_pages=config.max_list_pages, max_entries=config.max_list_entries)


def default_target_name(repo: Resolved) -> str:
    """The folder's own name (a course's name for its root), never an id or a query string,
    and visible: a course called `.ipython` lands in `ipython`."""
    name = repo.name
    if isinstance(repo, CanvasFile | GoogleDriveFile) and "." in name.strip("."):
        name = name.rsplit(".", 1)[0]
    return sanitize_component(visible_name(name))


def is_local_origin(remote: str, config: SyncConfig) -> bool:
    """Is `remote` (a clone's origin URL) one of privatepuller's local origins?"""
    path = os.path.realpath(remote.removeprefix("file://"))
    return path.startswith(os.path.realpath(config.origins_dir) + os.sep)


def is_origin_of(remote: str, source: Source, config: SyncConfig) -> bool:
    """Is `remote` this source's local origin (a path; `file://` for clones made before)?"""
    origin = origin_for(config, source.key)
    return os.path.realpath(remote.removeprefix("file://")) == origin.location


@asynccontextmanager
async def open_source(
    repo: Resolved, credentials: CredentialSource, config: SyncConfig, progress: Progress
) -> AsyncIterator[Source]:
    if isinstance(repo, GoogleDriveFolder | GoogleDriveFile):
        drive = GoogleDriveFetcher(
            credentials,
            options=session_options(GOOGLE_POLICY, config, progress),
            limits=listing_limits(config),
        )
        async with drive.source(repo) as drive_source:
            yield drive_source
        return
    canvas = CanvasFetcher(
        credentials,
        options=session_options(CANVAS_POLICY, config, progress),
        limits=listing_limits(config),
    )
    async with canvas.source(repo) as source:
        yield source


async def pull(
    url: str,
    target: Path | None = None,
    *,
    parent_dir: Path | None = None,
    credentials: CredentialSource | None = None,
    config: SyncConfig | None = None,
    progress: Progress | None = None,
    backup: bool = False,
    puller_parent: Any = None,
) -> SyncReport:
    """Pull `url` into `target` (default: `parent_dir`/<folder name>), merging like nbgitpuller."""
    credentials = credentials or EnvCredentialSource()
    config = config or SyncConfig()
    progress = progress or NullProgress()
    link = parse_link(url)
    if link is None:
        raise UnsupportedURL(
            "This link is not a Canvas files link or a Google Drive link that privatepuller "
            "can pull. Copy the address of a Canvas files folder or a Drive folder."
        )
    repo = await resolve_link(link, credentials, config, progress)
    if target is None:
        target = (parent_dir or Path.cwd()) / default_target_name(repo)
    return await pull_resolved(
        repo,
        target,
        credentials=credentials,
        config=config,
        progress=progress,
        backup=backup,
        puller_parent=puller_parent,
    )


async def pull_resolved(
    repo: Resolved,
    target: Path,
    *,
    credentials: CredentialSource,
    config: SyncConfig,
    progress: Progress,
    backup: bool = False,
    puller_parent: Any = None,
) -> SyncReport:
    """Sync an already resolved folder or file into `target`: an absent folder, or a copy made
    by this same link (anything else is refused before a file is listed)."""
    async with open_source(repo, credentials, config, progress) as source:
        claim_target(
            target.parent,
            target,
            lambda remote: is_origin_of(remote, source, config),
            link_name=repo.name,
        )
        return await sync(
            source,
            target,
            name=repo.name,
            config=config,
            progress=progress,
            backup=backup,
            puller_parent=puller_parent,
        )
