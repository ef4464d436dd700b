"""What the instructors' link builder says about a link (its handlers: `link_builder.py`).

An instructor, in their own server on the hub, pastes a Canvas files URL or a Google Drive
URL and sees what students will get, checked with the instructor's own access (the server's
credential sources: their Canvas login; the hub's service account for Drive): the folder's
name, how many files and how large, what students will not get and why, in the words the
progress page uses (each reason's `words`), and a link with `targetpath` set to the folder's
name and `urlpath` to JupyterLab's view of it (or of a notebook chosen from the listing).

Read-only: the URL is resolved and listed with the same read-only sessions as a sync (GET
only), and the sync's own limits are applied (`apply_limits`); nothing is downloaded or written.
A provider may see files with the instructor's access that students cannot have (Canvas:
unpublished, or locked by date); its `students_view` (`providers.base.InstructorView`) says
which, and its `instructor_notes` where a student's view can differ.

    GET {base_url}privatepuller/api/link?url=…[&hub=…&targetpath=…&urlpath=…&notebook=…&fresh=1]

answers (HTTP 200 whenever the user is logged in, whatever is wrong with the link)

    {"link": "https://hub…/hub/user-redirect/git-pull?…" | null, "name", "files", "bytes",
     "size", "unknown_sizes", "skipped": [{"path", "reason", "why"}…], "problems": […],
     "notes": […], "targetpath", "urlpath", "notebook", "notebooks": […], "hub"}

`link` is null when no working link can be made (an address privatepuller does not pull, a
folder the instructor or the hub cannot read, a targetpath the server refuses, no hub address);
`problems` says why, in words for the instructor, and also carries warnings that come with a
link (a urlpath that does not lead into the folder; nothing to copy). `hub` defaults to the
hub this server runs under. `notebook` (a path from `notebooks`) makes the urlpath open it; an
explicit `urlpath` wins. A successful listing is kept for two minutes, so that changing the
folder name or the notebook does not list again; `fresh=1` lists again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

from ..credentials.sources import CredentialSource
from ..errors import PullError
from ..link import HUB_EXAMPLE, hub_problem, make_link, targetpath_problem
from ..providers import provider_named
from ..providers.base import InstructorView
from ..pull import Link, default_target_name, open_source, resolve_link
from ..sizes import size_text
from ..sync.config import SyncConfig
from ..sync.plan import apply_limits, drop_unwritable
from ..sync.progress import NullProgress
from ..sync.source import RemoteFile, Skipped, SyncSkip
from ..targets import target_problem
from .config import PrivatePuller
from .events import printable

LIST_TIMEOUT = 120.0  # seconds resolving and listing may take before the page says so
CACHE_SECONDS = 120.0
CACHE_SIZE = 32
NOTEBOOK = ".ipynb"


@dataclass(frozen=True)
class Inspection:
    """What students would get from one link (as listed now)."""

    provider: str  # the provider's name: "canvas", "gdrive"
    name: str  # the folder's (or file's) own name
    folder: str  # its default folder name in a student's home (`default_target_name`)
    files: tuple[RemoteFile[Any], ...]  # what a sync would copy
    skipped: tuple[Skipped, ...]  # what it would leave out, by path
    single_file: bool = False  # a link to one file (it lands inside `folder`)
    checked_locks: bool = False  # the provider's students' view was made (`InstructorView`)

    @property
    def notebooks(self) -> list[str]:
        return sorted(f.path for f in self.files if f.path.lower().endswith(NOTEBOOK))

    @property
    def bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)

    @property
    def unknown_sizes(self) -> int:
        """Files whose size is known only once copied (Google Docs, Sheets... are converted)."""
        return sum(1 for f in self.files if f.size is None)


async def inspect_link(link: Link, credentials: CredentialSource, config: SyncConfig) -> Inspection:
    """Resolve and list `link` as a sync would, and apply the sync's limits. GET only."""
    progress = NullProgress()
    resolved = await resolve_link(link, credentials, config, progress)
    provider = resolved.provider
    async with open_source(resolved, config, progress) as source:
        listing = await source.list()
        files: tuple[RemoteFile[Any], ...] = listing.files
        locked: list[Skipped] = []
        checked = False
        if isinstance(provider, InstructorView):
            view = await provider.students_view(source, files)
            if view is not None:
                (files, locked), checked = view, True
    writable, unwritable = drop_unwritable(files)
    kept, excluded = apply_limits(writable, config)
    skipped = sorted(
        (*excluded, *listing.skipped, *locked, *unwritable), key=lambda s: (s.path, s.reason)
    )
    return Inspection(
        provider=provider.name,
        name=listing.name,
        folder=default_target_name(resolved),
        files=tuple(kept),
        skipped=tuple(skipped),
        single_file=provider.is_file(resolved.repo),
        checked_locks=checked,
    )


# -- the answer --------------------------------------------------------------------------


@dataclass
class LinkRequest:
    url: str
    hub: str
    targetpath: str = ""
    urlpath: str = ""
    notebook: str | None = None  # None: the default (a lone notebook, else the folder)


@dataclass
class Limits:
    max_file_size: int
    max_total_size: int
    allowed_parents: Sequence[str] = ()
    parentpath: str = field(default_factory=lambda: os.getenv("NBGITPULLER_PARENTPATH", ""))

    @classmethod
    def of(cls, config: PrivatePuller) -> Limits:
        return cls(config.max_file_size, config.max_total_size, list(config.allowed_target_parents))


def default_hub(environ: Mapping[str, str], protocol: str, host: str) -> str:
    """The public address of the hub this server runs under ("" when not under a hub)."""
    public = environ.get("JUPYTERHUB_PUBLIC_HUB_URL", "").strip()  # JupyterHub.public_url
    if public:
        return public
    base = environ.get("JUPYTERHUB_BASE_URL")
    if base is None and not environ.get("JUPYTERHUB_SERVICE_PREFIX"):
        return ""
    # JUPYTERHUB_HOST: the hub's public origin when it uses subdomains; otherwise the hub
    # proxies this request, with the public host and (X-Forwarded-Proto) scheme.
    origin = environ.get("JUPYTERHUB_HOST", "").strip().rstrip("/") or f"{protocol}://{host}"
    path = (base or "/").strip("/")
    return f"{origin}/{path}/" if path else f"{origin}/"


def proposed_target(folder: str, allowed_parents: Sequence[str]) -> str:
    """The folder's own name, inside the first folder the hub allows links in (if it limits)."""
    if target_problem(folder, allowed_parents) is None or not allowed_parents:
        return folder
    parent = allowed_parents[0].strip("/")
    return f"{parent}/{folder}" if parent and parent != "." else folder


def _segment(name: str) -> str:
    # nbgitpuller's page sends the browser to base URL + urlpath: these would end the path.
    return name.replace("%", "%25").replace("#", "%23").replace("?", "%3F")


def lab_urlpath(folder: str, notebook: str | None = None) -> str:
    """JupyterLab's view of `folder` (a path from the server's root), or of a notebook in it."""
    parts = [*PurePosixPath(folder).parts, *(notebook.split("/") if notebook else ())]
    return "lab/tree/" + "/".join(_segment(part) for part in parts if part)


# Jupyter's apps whose paths after the prefix are paths from the server's root.
_APPS = ("lab/tree/", "doc/tree/", "tree/", "notebooks/", "edit/", "voila/render/")


def urlpath_problem(urlpath: str, folder: str) -> str | None:
    """A warning when `urlpath` opens a file browser or notebook outside `folder`."""
    path = unquote(urlpath.lstrip("/")).split("?", 1)[0]
    for app in _APPS:
        if path.startswith(app):
            rest = path[len(app) :]
            break
    else:
        return None  # another app: its paths are not ours to judge
    if rest.rstrip("/") == folder or rest.startswith(folder + "/"):
        return None
    return (
        f"urlpath “{printable(urlpath)[:200]}” does not lead into the folder “{folder}”, so "
        "students would land on “Could not find path”. Leave urlpath empty to get "
        f"“{lab_urlpath(folder)}”, or choose a notebook."
    )


def why_text(skipped: Skipped, limits: Limits) -> str:
    """Why a file is not copied, in the progress page's words, with the limit that applies."""
    words = skipped.reason.words
    if skipped.reason is SyncSkip.TOO_LARGE:
        return f"{words} ({skipped.detail}; the limit is {size_text(limits.max_file_size)})"
    if skipped.reason is SyncSkip.TOTAL_CAP:
        return f"{words} ({skipped.detail}; the limit is {size_text(limits.max_total_size)})"
    return f"{words} ({skipped.detail})" if skipped.detail else words


def notes(inspection: Inspection | None, limits: Limits) -> list[str]:
    """Where a student's view can differ from what the instructor sees here."""
    if inspection is None:
        return []
    found: list[str] = []
    provider = provider_named(inspection.provider)
    if isinstance(provider, InstructorView):
        found.extend(provider.instructor_notes(inspection.checked_locks))
    if inspection.unknown_sizes:
        found.append(
            f"{inspection.unknown_sizes} Google file(s) (Docs, Sheets, Slides…) are converted "
            "when copied; their size is known only then, and counts toward the limits then."
        )
    found.append(
        f"The limits are this hub's: files over {size_text(limits.max_file_size)} are left "
        f"out, and so are files past {size_text(limits.max_total_size)} in all."
    )
    return found


def build_answer(
    request: LinkRequest,
    inspection: Inspection | None,
    problems: Sequence[str],
    limits: Limits,
) -> dict[str, Any]:
    """The JSON answer for one request: the listing's figures, the link, and the problems."""
    problems = list(problems)
    can_link = inspection is not None and not problems
    hub = request.hub.strip()
    if not hub:
        problems.append(
            f"Fill in your hub's address (the one students use, like {HUB_EXAMPLE}): this "
            "server does not run under JupyterHub, so it cannot tell."
        )
        can_link = False
    elif problem := hub_problem(hub):
        problems.append(problem)
        can_link = False

    targetpath = request.targetpath.strip()
    target_ok = True
    if targetpath:
        if problem := targetpath_problem(targetpath, limits.allowed_parents):
            problems.append(problem)
            can_link = target_ok = False
    elif inspection is not None:
        targetpath = proposed_target(inspection.folder, limits.allowed_parents)
    folder = "/".join(p for p in (limits.parentpath.strip("/"), targetpath) if p)

    notebooks = inspection.notebooks if inspection is not None else []
    notebook = (request.notebook or "").strip().strip("/") or None
    if notebook is not None and notebook not in notebooks:
        problems.append(
            f"“{printable(notebook)[:200]}” is not one of the notebooks students get from "
            "this folder; the link opens the folder instead."
        )
        notebook = None
    if request.notebook is None and inspection is not None and inspection.single_file:
        notebook = notebooks[0] if len(notebooks) == 1 else None

    urlpath = request.urlpath.strip().lstrip("/")
    if urlpath:
        notebook = None
        if target_ok and folder and (problem := urlpath_problem(urlpath, folder)):
            problems.append(problem)
    elif target_ok and folder:
        urlpath = lab_urlpath(folder, notebook)

    if inspection is not None and not inspection.files:
        problems.append(
            "Students would get no files from this link: every file is left out (see the list "
            "of files not copied), and the sync would end with an error."
        )

    link = None
    if can_link:
        try:
            link = make_link(request.url, hub=hub, urlpath=urlpath or None, targetpath=targetpath)
        except PullError as error:
            problems.append(error.message)
    return {
        "link": link,
        "name": inspection.name if inspection is not None else None,
        "files": len(inspection.files) if inspection is not None else 0,
        "bytes": inspection.bytes if inspection is not None else 0,
        "size": size_text(inspection.bytes) if inspection is not None else "",
        "unknown_sizes": inspection.unknown_sizes if inspection is not None else 0,
        "skipped": [
            {"path": s.path, "reason": s.reason, "why": why_text(s, limits)}
            for s in (inspection.skipped if inspection is not None else ())
        ],
        "problems": problems,
        "notes": notes(inspection, limits),
        "targetpath": targetpath,
        "urlpath": urlpath,
        "notebook": notebook,
        "notebooks": notebooks,
        "hub": hub,
    }


class InspectionCache:
    """Recent successful listings by URL, so editing the folder name or notebook is instant."""

    def __init__(self, seconds: float = CACHE_SECONDS, size: int = CACHE_SIZE) -> None:
        self.seconds = seconds
        self.size = size
        self._items: dict[str, tuple[float, Inspection]] = {}

    def get(self, url: str) -> Inspection | None:
        item = self._items.get(url)
        if item is None or time.monotonic() - item[0] > self.seconds:
            self._items.pop(url, None)
            return None
        return item[1]

    def put(self, url: str, inspection: Inspection) -> None:
        self._items.pop(url, None)
        self._items[url] = (time.monotonic(), inspection)
        while len(self._items) > self.size:
            self._items.pop(next(iter(self._items)))


def not_ours(url: str) -> str:
    return (
        f"“{printable(url)[:200]}” is not a Canvas files address or a Google Drive address "
        "that privatepuller can pull. Copy the address of a Canvas files folder "
        "(…/courses/123/files/folder/Week%201) or of a Google Drive folder shared with the "
        "hub's service account."
    )
