"""`c.PrivatePuller.*`: the server extension's settings (jupyter_server_config.py or JSON).

c.PrivatePuller.max_file_size = 200 * 1024 * 1024
c.PrivatePuller.credential_sources = [
    "privatepuller.credentials.hub.HubCredentialSource",    # the user's fresh auth_state
    "privatepuller.credentials.sources.EnvCredentialSource",
]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from traitlets import Float, Int, List, Type, Unicode, default
from traitlets.config import Configurable

from ..credentials.hub import DEFAULT_SOURCES
from ..credentials.sources import CredentialSource, chained
from ..http.session import DEFAULT_CONCURRENCY, DEFAULT_MIN_THROUGHPUT, DEFAULT_THROUGHPUT_WINDOW
from ..sizes import MiB
from ..sync.config import SyncConfig, default_home
from ..sync.source import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_PAGES
from .resolutions import Resolutions


class PrivatePuller(Configurable):
    """Settings of the privatepuller Jupyter server extension."""

    max_file_size = Int(
        100 * MiB,
        config=True,
        help="Files larger than this (bytes) are not copied; the student is told which ones.",
    )
    max_total_size = Int(
        1024 * MiB,
        config=True,
        help="Files past this running total (bytes) are not copied; the student is told.",
    )
    concurrency = Int(
        DEFAULT_CONCURRENCY,
        config=True,
        help="Requests (and downloads) at once to a provider (lowered when throttled).",
    )
    lock_wait = Float(
        0.0,
        config=True,
        help="""Seconds a second click waits for a running sync of the same folder before it is
        told the folder is busy. The default (0) answers at once, like nbgitpuller.""",
    )
    home = Unicode(
        "",
        config=True,
        help="""Where local origins and locks live. Default: $PRIVATEPULLER_HOME or
        ~/.privatepuller.""",
    )
    read_timeout = Float(
        60.0, config=True, help="Seconds without a byte before a download counts as stalled."
    )
    deadline = Float(
        3600.0,
        config=True,
        help="""Seconds one sync may spend listing and downloading before it stops with "took
        longer than this hub allows" and nothing changed (0: no deadline). The merge into the
        student's folder is never cut short.""",
    )
    min_throughput = Float(
        DEFAULT_MIN_THROUGHPUT,
        config=True,
        help="""Bytes a second a download (or a listing page) must average over
        `throughput_window` seconds; slower counts as stalled (retried, then the sync stops), so
        a server that trickles data cannot hold a folder's lock for ever (0: no minimum).""",
    )
    throughput_window = Float(
        DEFAULT_THROUGHPUT_WINDOW,
        config=True,
        help="Seconds over which `min_throughput` is averaged.",
    )
    max_list_pages = Int(
        DEFAULT_MAX_PAGES,
        config=True,
        help="""Pages one listing may have (a Canvas course's file or folder list, a Drive
        folder's children) before the sync stops with "too big to copy".""",
    )
    max_list_entries = Int(
        DEFAULT_MAX_ENTRIES,
        config=True,
        help="""Entries one listing may have (a Canvas course's file or folder list; every file
        and folder of a Drive folder tree) before the sync stops with "too big to copy".""",
    )
    backoff_scale = Float(
        1.0,
        config=True,
        help="Below 1, the providers' backoff schedules run faster (tests and demos only).",
    )
    resolve_timeout = Float(
        10.0,
        config=True,
        help="""Seconds the progress page waits to learn the folder's name (the default target
        folder) before it renders anyway; the sync then finds the name itself.""",
    )
    allowed_target_parents = List(
        Unicode(),
        config=True,
        help="""Folders (relative to the server's root) that links may put their folders in,
        e.g. ["courses"]; empty (the default) allows any visible folder in the root. This only
        narrows the rule every link follows (a relative path, no part starting with ".", no
        symbolic links, never another project's folder); it cannot widen it.""",
    )
    credential_sources = List(
        Type(klass=object),
        config=True,
        help="""Credential source classes (or import strings), tried in order; the first that
        has a credential for a provider wins. Each is constructed with no arguments, or with
        `parent=` when it is a traitlets Configurable (so it reads its own config). Default:
        the user's auth_state from JupyterHub (when running under a hub), then the
        environment (CANVAS_ACCESS_TOKEN, GOOGLE_DRIVE_ACCESS_TOKEN, ...).""",
    )

    @default("credential_sources")
    def _credential_sources_default(self) -> list[type]:
        return list(DEFAULT_SOURCES)

    _credentials: CredentialSource | None = None
    _resolutions: Resolutions | None = None

    @default("home")
    def _home_default(self) -> str:
        return str(default_home())

    def sync_config(self) -> SyncConfig:
        return SyncConfig(
            home=Path(os.path.expanduser(self.home)),
            max_file_size=self.max_file_size,
            max_total_size=self.max_total_size,
            concurrency=self.concurrency,
            lock_wait=self.lock_wait,
            backoff_scale=self.backoff_scale,
            read_timeout=self.read_timeout,
            deadline=self.deadline,
            min_throughput=self.min_throughput,
            throughput_window=self.throughput_window,
            max_list_pages=self.max_list_pages,
            max_list_entries=self.max_list_entries,
        )

    def credentials(self) -> CredentialSource:
        """One credential source for the server's lifetime (sources may cache tokens)."""
        if self._credentials is None:
            sources = [self._instantiate(cls) for cls in self.credential_sources]
            self._credentials = chained(*sources)
        return self._credentials

    def resolutions(self) -> Resolutions:
        """The clicks' resolutions, shared by each page and its stream."""
        if self._resolutions is None:
            self._resolutions = Resolutions()
        return self._resolutions

    def _instantiate(self, cls: Any) -> CredentialSource:
        source: CredentialSource
        if isinstance(cls, type) and issubclass(cls, Configurable):
            source = cls(parent=self)  # type: ignore[assignment]
        else:
            source = cls()
        return source
