"""The whole path for one link: recognise, resolve with credentials read once, sync, merge.

Shared by the CLI and the server extension. Recognising a link (`parse_link`) needs no network
and no credentials, so the server can decide at once whether a link is ours or nbgitpuller's.
Resolving reads the provider's credentials once; the `Resolved` it returns carries them to
the sync, which reads none again.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .credentials.sources import CredentialSource, EnvCredentialSource
from .errors import NoAccess, NotFound, UnsupportedURL
from .http.session import SessionOptions
from .providers import provider_for, recognise
from .providers.base import Exists, NotVisible, Provider
from .sync.config import SyncConfig
from .sync.engine import SyncReport, sync
from .sync.names import sanitize_component
from .sync.progress import NullProgress, Progress
from .sync.source import ListingLimits, Source
from .sync.store import Prestored, origin_for
from .targets import claim_target, visible_name

# A provider's link (frozen, hashable): what a URL names, not yet checked.
Link = Any

NOT_OURS = (
    "This link is not a Canvas files link or a Google Drive link that privatepuller can pull. "
    "Copy the address of a Canvas files folder or a Drive folder."
)


@dataclass(frozen=True)
class Resolved:
    """A link resolved with its provider's credentials: what the sync needs, so that it reads
    no credential again."""

    provider: Provider[Any, Any, Any] = field(repr=False)
    repo: Any  # the provider's repo (a checked folder or file)
    credentials: Any = field(repr=False)  # the provider's credentials, read once

    @property
    def name(self) -> str:
        return str(self.repo.name)


def parse_link(url: str) -> Link | None:
    """The link a URL names, when a provider pulls it; None for anything else (git URLs
    included). Raises `UnsupportedURL` for a provider's URL that names nothing pullable."""
    return recognise(url)


async def resolve_link(
    link: Link,
    credentials: CredentialSource,
    config: SyncConfig | None = None,
    progress: Progress | None = None,
) -> Resolved:
    """Check the link with its provider, reading the provider's credentials once; `NoAccess`
    or `NotFound` (a message for the student) when it cannot be pulled."""
    config = config or SyncConfig()
    provider = provider_for(link)
    found = await provider.credentials(credentials, link)
    answer = await provider.resolve(link, found, session_options(provider, config, progress))
    if isinstance(answer, Exists):
        return Resolved(provider, answer.repo, found)
    if isinstance(answer, NotVisible):
        raise NoAccess(answer.message)
    raise NotFound(answer.message)


def session_options(
    provider: Provider[Any, Any, Any], config: SyncConfig, progress: Progress | None
) -> SessionOptions:
    """A provider's session settings for this sync (backoff clock, stall timeout, waits)."""
    return SessionOptions(
        provider.policy.scaled(config.backoff_scale),
        concurrency=config.concurrency,
        read_timeout=config.read_timeout,
        on_wait=progress.waiting if progress else None,
        min_throughput=config.min_throughput,
        throughput_window=config.throughput_window,
    )


def listing_limits(config: SyncConfig) -> ListingLimits:
    return ListingLimits(max_pages=config.max_list_pages, max_entries=config.max_list_entries)


def default_target_name(resolved: Resolved) -> str:
    """The folder's own name (a course's name for its root; a file's without its extension),
    never an id or a query string, and visible: a course called `.ipython` lands in
    `ipython`."""
    return sanitize_component(visible_name(resolved.provider.folder_name(resolved.repo)))


def is_local_origin(remote: str, config: SyncConfig) -> bool:
    """Is `remote` (a clone's origin URL) one of privatepuller's local origins?"""
    path = os.path.realpath(remote.removeprefix("file://"))
    return path.startswith(os.path.realpath(config.origins_dir) + os.sep)


def is_origin_of(remote: str, source: Source[Any] | Prestored, config: SyncConfig) -> bool:
    """Is `remote` this source's local origin (a path; `file://` for clones made before)?"""
    origin = origin_for(config, source.source_id)
    return os.path.realpath(remote.removeprefix("file://")) == origin.location


@asynccontextmanager
async def open_source(
    resolved: Resolved, config: SyncConfig, progress: Progress | None = None
) -> AsyncIterator[Source[Any] | Prestored]:
    """The resolved folder's `Source`, with the credentials it was resolved with."""
    async with resolved.provider.open(
        resolved.repo,
        resolved.credentials,
        session_options(resolved.provider, config, progress),
        listing_limits(config),
    ) as source:
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
        raise UnsupportedURL(NOT_OURS)
    resolved = await resolve_link(link, credentials, config, progress)
    if target is None:
        target = (parent_dir or Path.cwd()) / default_target_name(resolved)
    return await pull_resolved(
        resolved,
        target,
        config=config,
        progress=progress,
        backup=backup,
        puller_parent=puller_parent,
    )


async def pull_resolved(
    resolved: Resolved,
    target: Path,
    *,
    config: SyncConfig,
    progress: Progress,
    backup: bool = False,
    puller_parent: Any = None,
) -> SyncReport:
    """Sync an already resolved folder or file into `target`: an absent folder, or a copy made
    by this same link (anything else is refused before a file is listed)."""
    async with open_source(resolved, config, progress) as source:
        claim_target(
            target.parent,
            target,
            lambda remote: is_origin_of(remote, source, config),
            link_name=resolved.name,
        )
        return await sync(
            source,
            target,
            name=resolved.name,
            config=config,
            progress=progress,
            backup=backup,
            puller_parent=puller_parent,
        )
