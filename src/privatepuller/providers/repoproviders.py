"""The providers in repoproviders' registries: one thin adapter over `PROVIDERS`.

repoproviders has no plugin mechanism: its registries are dicts from a question type (a URL, a
link type) to resolvers, and from a repo type to its fetcher. `register()` puts one `Resolver`
first for URLs and for every provider's link types, and one `Fetcher` for every provider's repo
types, so `repoproviders.resolve(url)` and `repoproviders.fetch(repo, dir)` use them.

A URL is claimed only when a provider recognises it *and* has credentials for it (Canvas:
credentials for the Canvas the URL is on). Any other URL is left to repoproviders' own
resolvers (a public Drive folder to its rclone resolver, `https://example.com/files` to
whichever knows it). Nothing raises out of `repoproviders.resolve()`: a link that cannot be
resolved is a `DoesNotExist` that says why.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from repoproviders.fetchers.fetcher import FETCHER_BY_TYPE
from repoproviders.resolvers.resolver import RESOLVER_BY_TYPE
from yarl import URL

from ..credentials.hub import default_credential_source
from ..credentials.sources import CredentialSource
from ..errors import NotConfigured, PullError, UnsupportedURL, WrongHost
from ..pull import Resolved, open_source, resolve_link
from ..sync.config import SyncConfig
from ..sync.progress import NullProgress
from ..sync.store import Prestored, download_tree
from . import PROVIDERS, provider_for
from .base import DoesNotExist, Exists, MaybeExists


class Resolver:
    """URL -> one of our links (no network but the credential check); link -> repo."""

    def __init__(
        self, credentials: CredentialSource | None = None, config: SyncConfig | None = None
    ) -> None:
        self.credentials = credentials or default_credential_source()
        self.config = config or SyncConfig()

    async def resolve(
        self, question: Any, log: Any = None
    ) -> Exists[Any] | MaybeExists[Any] | DoesNotExist[Any] | None:
        if isinstance(question, URL):
            return await self._recognise(question)
        try:
            resolved = await resolve_link(question, self.credentials, self.config)
        except KeyError:
            return None  # not one of our links
        except PullError as error:
            kind = provider_for(question).repos[0]
            return DoesNotExist(kind, error.message)
        return Exists(resolved.repo)

    async def _recognise(self, url: URL) -> MaybeExists[Any] | DoesNotExist[Any] | None:
        for provider in PROVIDERS:
            try:
                link = provider.recognise(url)
            except UnsupportedURL as refused:
                return DoesNotExist(provider.links[0], refused.message)
            if link is None:
                continue
            try:
                await provider.credentials(self.credentials, link)
            except (NotConfigured, WrongHost):
                return None  # not ours to serve: repoproviders' own resolvers may
            except PullError as error:  # ours, but misconfigured: say so
                return DoesNotExist(provider.links[0], error.message)
            return MaybeExists(link)
        return None


class Fetcher:
    """A resolved repo -> its files in a folder (no git, no merge)."""

    def __init__(
        self, credentials: CredentialSource | None = None, config: SyncConfig | None = None
    ) -> None:
        self.credentials = credentials or default_credential_source()
        self.config = config or SyncConfig()

    async def fetch(self, repo: Any, output_dir: Path, log: Any = None) -> None:
        provider = provider_for(repo)
        credentials = await provider.credentials(self.credentials, repo)
        resolved = Resolved(provider, repo, credentials)
        async with open_source(resolved, self.config) as source:
            if isinstance(source, Prestored):  # Drive through the hub: the snapshot's files
                snapshot = await source.store(self.config, NullProgress())
                await asyncio.to_thread(snapshot.origin.export, snapshot.head, output_dir)
            else:
                await download_tree(source, output_dir, self.config)


def register(credentials: CredentialSource | None = None, config: SyncConfig | None = None) -> None:
    """Put our resolver and fetcher first. Idempotent: registering again replaces ours."""
    resolver = Resolver(credentials, config)
    fetcher = Fetcher(credentials, config)
    question_types: list[type] = [URL, *(link for p in PROVIDERS for link in p.links)]
    for question_type in question_types:
        chain = RESOLVER_BY_TYPE.setdefault(question_type, [])
        chain[:] = [r for r in chain if not isinstance(r, Resolver)]
        chain.insert(0, resolver)
    for provider in PROVIDERS:
        for repo_type in provider.repos:
            FETCHER_BY_TYPE[repo_type] = fetcher
