"""`{base_url}git-pull` and `{base_url}git-pull/api` for Canvas and Drive links.

The handlers subclass nbgitpuller's own, so authentication, XSRF and the login behaviour are
nbgitpuller's (and the server's) by construction. A `repo` that `parse_link` does not recognise
(any git URL) is handed to nbgitpuller's `get()` untouched.

Import this module only after `nbgitpuller._compat.get_base_handler(serverapp)` has run (the
extension's loader does that), exactly like `nbgitpuller.handlers`.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import jinja2
from nbgitpuller.handlers import SyncHandler, UIHandler, jinja_env
from nbgitpuller.version import __version__ as nbgitpuller_version
from tornado import web
from tornado.iostream import StreamClosedError

from ..errors import PullError
from ..pull import Link, default_target_name, parse_link, pull_resolved, resolve_link
from ..sync.engine import SyncReport
from .config import PrivatePuller
from .events import (
    Event,
    SSEProgress,
    finished,
    format_exception,
    pull_error_event,
    report_lines,
    scrub,
    size_text,
    syncing,
    unexpected_error_event,
)
from .targets import repo_parent_dir, safe_target


def _all_subclasses(cls: type[PullError]) -> set[type[PullError]]:
    found: set[type[PullError]] = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


# nbgitpuller's own templates, rendered with autoescaping: a link's `repo` is chosen by whoever
# wrote the link, and the template puts it into an href unfiltered.
# Our template extends nbgitpuller's status.html with a small script that shows our
# student-facing messages in its help box.
TEMPLATES = jinja2.Environment(
    loader=jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
            jinja_env.loader,
        ]
    ),
    autoescape=True,
)


# Error codes nbgitpuller's page has no help text for ("merge" keeps nbgitpuller's own).
def our_error_codes() -> list[str]:
    return sorted({cls.code for cls in _all_subclasses(PullError)} - {"merge", "unknown"})


# Seconds of silence after which an SSE comment keeps proxies from closing the stream
# (a long rate-limit wait sends nothing else).
KEEPALIVE_SECONDS = 15.0


class NothingCopied(PullError):
    """Every file of the link was excluded (too large, or past the total limit)."""

    code = "too_large"


def get_privatepuller(settings: dict[str, Any]) -> PrivatePuller:
    config = settings.get("privatepuller")
    if config is None:
        config = settings["privatepuller"] = PrivatePuller(parent=settings.get("nbapp"))
    return config


def recognise(repo: str | None) -> Link | PullError | None:
    """Our link for `repo`; a `PullError` for a URL of ours that names nothing pullable (a
    Drive page that is not a folder or file); None for everything else, which is nbgitpuller's.
    """
    if not repo:
        return None
    try:
        return parse_link(repo)
    except PullError as error:
        return error


def is_truthy_backup(value: str | None) -> bool:
    # nbgitpuller: any non-empty value asks for a backup.
    return bool(value)


class PrivateUIHandler(UIHandler):
    """The progress page: nbgitpuller's own template, with a better default target folder."""

    @web.authenticated
    async def get(self) -> None:
        repo = self.get_argument("repo", None)
        link = recognise(repo)
        if link is None:
            await super().get()
            return
        assert repo is not None
        targetpath = self.get_argument("targetpath", None) or self.get_argument("targetPath", None)
        if not targetpath:
            # The folder's own name; "" when it cannot be learnt quickly (or the link is
            # unusable): the sync then learns the name, or says what is wrong.
            targetpath = "" if isinstance(link, PullError) else await self._default_target(link)
        backup = self.get_argument("backup", None) or None
        self.write(
            TEMPLATES.get_template("privatepuller-status.html").render(
                our_codes=our_error_codes(),
                repo=repo,
                branch=None,  # git-only parameters (branch, depth) are ignored
                depth=None,
                path=self._redirect_path(targetpath, backup is not None),
                targetpath=targetpath,
                backup=backup,
                version=nbgitpuller_version,
                **self.template_namespace,
            )
        )
        await self.flush()

    async def _default_target(self, link: Link) -> str:
        config = get_privatepuller(self.settings)
        try:
            repo = await asyncio.wait_for(
                resolve_link(link, config.credentials(), config.sync_config()),
                config.resolve_timeout,
            )
        except (PullError, TimeoutError):
            return ""  # the sync reports the reason, with a message for the student
        except Exception as error:  # noqa: BLE001 - the page must render; the sync reports
            self.log.warning("privatepuller: resolving the link failed: %s", scrub(str(error)))
            return ""
        return default_target_name(repo)

    def _redirect_path(self, targetpath: str, backup: bool) -> str:
        """Where `finished` sends the student: nbgitpuller's rules (urlpath, or the folder)."""
        parent_reldir = os.getenv("NBGITPULLER_PARENTPATH", "")
        urlpath = self.get_argument("urlpath", None) or self.get_argument("urlPath", None)
        if backup:
            path = parent_reldir
            return path if urlpath else self._app_prefix(path)
        if urlpath:
            # Relative to the server's base URL; leading slashes would make it another host.
            return str(urlpath).lstrip("/\\")
        subpath = self.get_argument("subpath", None) or self.get_argument("subPath", ".")
        return self._app_prefix(os.path.join(parent_reldir, targetpath, subpath))

    def _app_prefix(self, path: str) -> str:
        app = self.get_argument("app", os.getenv("NBGITPULLER_APP", "notebook"))
        if app.lower() == "lab":
            return "lab/tree/" + path
        if path.lower().endswith(".ipynb"):
            return "notebooks/" + path
        return "tree/" + path


class PrivateSyncHandler(SyncHandler):
    """The SSE stream the progress page opens: our sync for our links, nbgitpuller's otherwise."""

    _stream_closed = False

    @web.authenticated
    async def get(self) -> None:
        repo = self.get_argument("repo", None)
        link = recognise(repo)
        if link is None:
            await super().get()
            return
        assert repo is not None
        self.set_header("content-type", "text/event-stream")
        self.set_header("cache-control", "no-cache")
        if isinstance(link, PullError):
            await self._send(pull_error_event(link))
            return
        targetpath = self.get_argument("targetpath", None) or self.get_argument("targetPath", "")
        backup = is_truthy_backup(self.get_argument("backup", None))

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        progress = SSEProgress(loop, queue)
        # Never cancelled, even if the student closes the page: a merge stopped half-way (or
        # a lock released while git still runs) is exactly what must not happen.
        task = asyncio.ensure_future(self._sync(repo, link, targetpath, backup, progress))
        await self._stream(task, queue)

        try:
            report = task.result()
        except PullError as error:
            self.log.warning("privatepuller: sync of %s failed: %s", scrub(repo), error.code)
            await self._send(pull_error_event(error, progress.git_lines))
            return
        except Exception as error:
            self.log.error("privatepuller: sync failed:\n%s", scrub(format_exception(error)))
            await self._send(unexpected_error_event(error))
            return
        for line in report_lines(report):
            await self._send(syncing(line))
        if report.excluded and not _has_files(report):
            await self._send(pull_error_event(self._nothing_copied(report)))
            return
        await self._send(finished())

    def _nothing_copied(self, report: SyncReport) -> NothingCopied:
        config = get_privatepuller(self.settings)
        count = len(report.excluded)
        if all(skipped.reason == "too_large" for skipped in report.excluded):
            limit = f"limit of {size_text(config.max_file_size)} per file"
        else:
            limit = (
                f"limits ({size_text(config.max_file_size)} per file, "
                f"{size_text(config.max_total_size)} in all)"
            )
        return NothingCopied(
            f"Nothing was copied: the {count} file(s) behind this link are larger than this "
            f"hub's {limit}. Ask your instructor for a smaller version of the data."
        )

    async def _sync(
        self, repo: str, link: Link, targetpath: str, backup: bool, progress: SSEProgress
    ) -> SyncReport:
        config = get_privatepuller(self.settings)
        credentials = config.credentials()
        sync_config = config.sync_config()
        parent = repo_parent_dir(self.settings)
        # Validate a given targetpath before any request to the provider.
        target = safe_target(parent, targetpath) if targetpath else None
        resolved = await resolve_link(link, credentials, sync_config, progress)
        if target is None:
            target = safe_target(parent, default_target_name(resolved))
        return await pull_resolved(
            resolved,
            target,
            credentials=credentials,
            config=sync_config,
            progress=progress,
            backup=backup,
            puller_parent=self.settings.get("nbapp"),
        )

    async def _stream(self, task: asyncio.Future[Any], queue: asyncio.Queue[Event]) -> None:
        """Send progress events until the sync is over (and every queued event is sent)."""
        getter: asyncio.Future[Event] | None = None
        while True:
            if getter is None:
                getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {getter, task}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if getter in done:
                await self._send(getter.result())
                getter = None
            elif task in done:
                getter.cancel()
                while not queue.empty():
                    await self._send(queue.get_nowait())
                return
            else:
                await self._write(": keepalive\n\n")

    async def _send(self, event: Event) -> None:
        if "output" in event:
            self.log.info("privatepuller: %s", event["output"].rstrip())
        await self._write(f"data: {json.dumps(event)}\n\n")

    async def _write(self, chunk: str) -> None:
        if self._stream_closed:
            return
        try:
            self.write(chunk)
            await self.flush()
        except StreamClosedError:
            self._stream_closed = True  # the page was closed; the sync still finishes


def _has_files(report: SyncReport) -> bool:
    return bool(report.added or report.updated or report.unchanged)
