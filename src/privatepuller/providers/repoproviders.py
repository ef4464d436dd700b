"""Put our resolvers and fetchers into repoproviders' registries, ahead of the built-ins.

repoproviders has no plugin mechanism: its registries are dicts built at import time from each
resolver's `question` annotation (and each fetcher's `repo` annotation). We add ours at the
front, so `repoproviders.resolve(url)` tries them first (before its public, rclone-based Drive
resolver) and `repoproviders.fetch(repo, dir)` uses our fetchers for our types.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from ..credentials.sources import CredentialSource


def _types_of(function: Any, parameter: str) -> tuple[type, ...]:
    hint = typing.get_type_hints(function)[parameter]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def our_resolvers(credentials: CredentialSource | None = None) -> list[Any]:
    from .canvas.links import CanvasResolver, CanvasURLResolver
    from .gdrive.links import GoogleDriveResolver, GoogleDriveURLResolver

    return [
        CanvasURLResolver(),
        CanvasResolver(credentials),
        GoogleDriveURLResolver(),
        GoogleDriveResolver(credentials),
    ]


def our_fetchers(credentials: CredentialSource | None = None) -> list[Any]:
    from .canvas.source import CanvasFetcher
    from .gdrive.source import GoogleDriveFetcher

    return [CanvasFetcher(credentials), GoogleDriveFetcher(credentials)]


def register(credentials: CredentialSource | None = None) -> None:
    """Idempotent: re-registering replaces our earlier instances."""
    from repoproviders.fetchers.fetcher import FETCHER_BY_TYPE
    from repoproviders.resolvers.resolver import RESOLVER_BY_TYPE

    for resolver in reversed(our_resolvers(credentials)):
        for question_type in _types_of(resolver.resolve, "question"):
            chain = RESOLVER_BY_TYPE.setdefault(question_type, [])
            chain[:] = [r for r in chain if type(r) is not type(resolver)]
            chain.insert(0, resolver)
    for fetcher in our_fetchers(credentials):
        for repo_type in _types_of(fetcher.fetch, "repo"):
            FETCHER_BY_TYPE[repo_type] = fetcher
