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
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from nbgitpuller.handlers import SyncHandler, UIHandler
from tornado import web
from tornado.iostream import StreamClosedError
from yarl import URL

from ..errors import PullError
from ..pull import (
    Link,
    default_target_name,
    is_local_origin,
    parse_link,
    pull_resolved,
    resolve_link,
)
from ..sizes import size_text
from ..sync.engine import SyncReport
from ..sync.source import SyncSkip
from ..targets import claim_target, repo_parent_dir, safe_target, visible_name
from .config import PrivatePuller
from .events import (
    Event,
    SSEProgress,
    clean_event,
    finished,
    format_exception,
    printable,
    pull_error_event,
    report_lines,
    scrub,
    syncing,
    unexpected_error_event,
)


def _all_subclasses(cls: type[PullError]) -> set[type[PullError]]:
    found: set[type[PullError]] = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


# Every /git-pull page, git links included, is rendered by our template with autoescaping:
# nbgitpuller's Jinja environment does not escape, and a link's parameters are anyone's.
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
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


def click_of(handler: Any, link: Link) -> tuple[str, Link]:
    """Whose click on which link: what a page and its stream share a resolution by."""
    user = handler.current_user
    return (str(getattr(user, "username", user)), link)


def is_truthy_backup(value: str | None) -> bool:
    # nbgitpuller: any non-empty value asks for a backup.
    return bool(value)


# No inline script runs but ours (each carries the page's nonce); nothing is loaded from
# elsewhere; the page cannot be framed by other sites. Styles may be inline: nbgitpuller's
# script adds its terminal's styles at run time.
CSP = (
    "default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)


class PageMixin:
    """A restrictive Content-Security-Policy with a nonce for this response's scripts."""

    @property
    def csp_nonce(self) -> str:
        nonce = getattr(self, "_csp_nonce", None)
        if nonce is None:
            nonce = self._csp_nonce = secrets.token_urlsafe(16)
        return nonce

    @property
    def content_security_policy(self) -> str:
        return CSP.format(nonce=self.csp_nonce)


def git_link_target(repo: str, targetpath: str | None) -> str:
    """A git link's folder: its targetpath, or (as nbgitpuller) the URL's last segment, made
    visible (a repository called `.ipython` lands in `ipython`)."""
    return targetpath or visible_name(repo.rstrip("/").split("/")[-1])


def repo_shown(repo: str) -> tuple[str | None, str]:
    """(href, label) of the page's "Synchronizing …": only http(s) URLs become links, and the
    label never carries user info or a query (a Drive resource key is a credential)."""
    label = scrub(printable(repo))
    try:
        url = URL(repo)
        if url.scheme in ("http", "https") and url.host:
            safe = str(url.with_user(None).with_query(None).with_fragment(None))
            return safe, safe
    except ValueError:
        pass
    return None, label


def default_app(environ: Mapping[str, str], extensions: Mapping[str, bool]) -> str:
    """Where a link without `urlpath` lands: $NBGITPULLER_APP, else the classic file browser
    (`tree/`, nbgitpuller's default) when Notebook serves it, else JupyterLab, where `tree/`
    would be a 404."""
    if environ.get("NBGITPULLER_APP"):
        return environ["NBGITPULLER_APP"]
    if extensions.get("jupyterlab") and not extensions.get("notebook"):
        return "lab"
    return "notebook"


class PrivateUIHandler(PageMixin, UIHandler):
    """The progress page, for every link: nbgitpuller's page from our escaping template, with
    the folder's own name as the default target of Canvas and Drive links."""

    @web.authenticated
    async def get(self) -> None:
        repo = self.get_argument("repo")
        link = recognise(repo)
        targetpath = self.get_argument("targetpath", None) or self.get_argument("targetPath", None)
        if link is None:
            targetpath = git_link_target(repo, targetpath)
            branch, depth = self.get_argument("branch", None), self.get_argument("depth", None)
        elif not targetpath:
            # The folder's own name; "" when it cannot be learnt quickly (or the link is
            # unusable): the sync then learns the name, or says what is wrong.
            targetpath = "" if isinstance(link, PullError) else await self._default_target(link)
            branch = depth = None  # git-only parameters are ignored for our links
        else:
            branch = depth = None
        backup = self.get_argument("backup", None) or None
        href, label = repo_shown(repo)
        self.write(
            TEMPLATES.get_template("privatepuller-status.html").render(
                our_codes=our_error_codes(),
                repo=repo,
                repo_href=href,
                repo_label=label,
                branch=branch,
                depth=depth,
                path=self._redirect_path(targetpath, backup is not None),
                targetpath=targetpath,
                backup=backup,
                csp_nonce=self.csp_nonce,
                **self.template_namespace,
            )
        )
        await self.flush()

    async def _default_target(self, link: Link) -> str:
        """Resolve the link (the stream of this click takes the resolution: `Resolutions`)."""
        config = get_privatepuller(self.settings)
        resolution = config.resolutions().start(
            click_of(self, link),
            lambda: resolve_link(link, config.credentials(), config.sync_config()),
        )
        try:
            # Shielded: a slow resolution goes on for the stream after the page has rendered.
            resolved = await asyncio.wait_for(asyncio.shield(resolution), config.resolve_timeout)
        except (PullError, TimeoutError):
            return ""  # the sync reports the reason, with a message for the student
        except Exception as error:  # noqa: BLE001 - the page must render; the sync reports
            self.log.warning("privatepuller: resolving the link failed: %s", scrub(str(error)))
            return ""
        return default_target_name(resolved)

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
        nbapp = self.settings.get("nbapp")
        extensions = getattr(nbapp, "jpserver_extensions", None) or {}
        app = self.get_argument("app", None) or default_app(os.environ, extensions)
        if app.lower() == "lab":
            return "lab/tree/" + path
        if path.lower().endswith(".ipynb"):
            return "notebooks/" + path
        return "tree/" + path


class PrivateSyncHandler(PageMixin, SyncHandler):
    """The SSE stream the progress page opens: our sync for our links, nbgitpuller's otherwise
    (after the same target-folder rule)."""

    _stream_closed = False

    @web.authenticated
    async def get(self) -> None:
        repo = self.get_argument("repo", None)
        link = recognise(repo)
        if link is None:
            await self._git_link(repo)
            return
        assert repo is not None
        self._event_stream()
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

    def _event_stream(self) -> None:
        self.set_header("content-type", "text/event-stream")
        self.set_header("cache-control", "no-cache")

    async def _git_link(self, repo: str | None) -> None:
        """nbgitpuller's sync, into a folder checked by the rule our links follow, before git
        contacts anything."""
        if repo:
            parent = repo_parent_dir(self.settings)
            given = self.get_argument("targetpath", None) or self.get_argument("targetPath", None)
            targetpath = git_link_target(repo, given)
            try:
                target = safe_target(parent, targetpath, self._allowed_parents())
                claim_target(parent, target, lambda remote: remote == repo, link_name=repo)
            except PullError as error:
                self._event_stream()
                await self._send(pull_error_event(error))
                return
            self.request.arguments.pop("targetPath", None)
            self.request.arguments["targetpath"] = [targetpath.encode()]
        await super().get()

    async def emit(self, data: Any) -> None:
        """nbgitpuller's events (git links): no control characters from a remote's output."""
        await super().emit(clean_event(data) if isinstance(data, dict) else printable(data))

    def _allowed_parents(self) -> list[str]:
        return list(get_privatepuller(self.settings).allowed_target_parents)

    def _nothing_copied(self, report: SyncReport) -> NothingCopied:
        config = get_privatepuller(self.settings)
        count = len(report.excluded)
        if all(skipped.reason is SyncSkip.TOO_LARGE for skipped in report.excluded):
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
        sync_config = config.sync_config()
        parent = repo_parent_dir(self.settings)

        def checked(targetpath: str, name: str) -> Path:
            target = safe_target(parent, targetpath, self._allowed_parents())
            claim_target(
                parent, target, lambda remote: is_local_origin(remote, sync_config), link_name=name
            )
            return target

        # A given targetpath is checked before any request to the provider; a folder that
        # exists must be one of privatepuller's copies (pull_resolved checks it is this link's).
        target = checked(targetpath, printable(repo)) if targetpath else None
        # This click's page resolved the link already (or is resolving it): use that.
        resolution = config.resolutions().take(click_of(self, link))
        if resolution is not None:
            resolved = await resolution
        else:
            resolved = await resolve_link(link, config.credentials(), sync_config, progress)
        if target is None:
            target = checked(default_target_name(resolved), resolved.name)
        return await pull_resolved(
            resolved,
            target,
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
        event = clean_event(event)
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
    # `kept`: earlier copies of files excluded this time stay in the folder.
    return bool(report.added or report.updated or report.unchanged or report.kept)
