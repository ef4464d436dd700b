"""What a provider is, and the answers resolving gives (repoproviders' own types).

A provider is one package under `providers/` and one entry in `providers.PROVIDERS`. It has the
same small surface as every other provider:

- `recognise(url)`: the link a URL names (a frozen dataclass), without network; None for a URL
  that is not the provider's; `UnsupportedURL` for one of its URLs that names nothing pullable.
- `credentials(source, item)`: the provider's credentials for a link or repo, read once (per
  sync) from a `CredentialSource`; `NotConfigured` without any, `WrongHost` when they belong to
  another instance.
- `resolve(link, credentials, options)`: `Exists(repo)`, or `NotVisible`/`DoesNotExist` with a
  message that says what is wrong.
- `open(repo, credentials, options, limits)`: an async context manager of a `Source` (list,
  download) that carries the repo and its session, or of a `Prestored` whose snapshot is
  made elsewhere (Drive through the hub's service).
- `folder_name(repo)`: the default local folder name; `is_file(repo)`: a link to one file.

A provider may also speak to the instructor who checks a link in the link builder
(`InstructorView`).

Everything else a provider needs (API client, pagination, error classification, backoff
policy, skip reasons with their words, formats) lives in its package.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from repoproviders.resolvers.base import DoesNotExist, Exists, MaybeExists, Repo
from yarl import URL

from ..credentials.sources import CredentialSource
from ..http.backoff import BackoffPolicy
from ..http.session import SessionOptions
from ..sync.source import ListingLimits, RemoteFile, Skipped, Source
from ..sync.store import Prestored

__all__ = [
    "DoesNotExist",
    "Exists",
    "InstructorView",
    "MaybeExists",
    "NotVisible",
    "Provider",
    "Repo",
]


@dataclass(frozen=True)
class NotVisible[T: Repo](DoesNotExist[T]):
    """The credential may not see it (not enrolled, not shared): a `DoesNotExist` that says so."""


class Provider[L, R, C](Protocol):
    """L: its link types, R: its repo types, C: its credentials."""

    @property
    def name(self) -> str:
        """ "canvas", "gdrive": for logs and the progress page."""
        ...

    @property
    def title(self) -> str:
        """ "Canvas", "Google Drive": its name for people."""
        ...

    @property
    def policy(self) -> BackoffPolicy:
        """Its sessions' backoff (with the classifier of its statuses)."""
        ...

    @property
    def links(self) -> tuple[type[L], ...]:
        """What `recognise` returns."""
        ...

    @property
    def repos(self) -> tuple[type[R], ...]:
        """What `resolve` finds."""
        ...

    def recognise(self, url: URL) -> L | None: ...

    async def credentials(self, source: CredentialSource, item: L | R) -> C: ...

    async def resolve(
        self, link: L, credentials: C, options: SessionOptions
    ) -> Exists[Any] | DoesNotExist[Any]: ...

    def open(
        self,
        repo: R,
        credentials: C,
        options: SessionOptions | None = None,
        limits: ListingLimits | None = None,
    ) -> AbstractAsyncContextManager[Source[Any] | Prestored]: ...

    def folder_name(self, repo: R) -> str: ...

    def is_file(self, repo: R) -> bool: ...


@runtime_checkable
class InstructorView(Protocol):
    """What a provider tells the instructor who checks a link (the link builder)."""

    async def students_view(
        self, source: Any, files: tuple[RemoteFile[Any], ...]
    ) -> tuple[tuple[RemoteFile[Any], ...], list[Skipped]] | None:
        """`files` (listed with the instructor's access, by this provider's `source`) split
        into what students can have and what they cannot, or None when they get the same."""
        ...

    def instructor_notes(self, checked: bool) -> list[str]:
        """Where a student's view can differ from the instructor's (`checked`: a
        `students_view` was made)."""
        ...
