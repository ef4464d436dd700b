"""The Jupyter server extension: our `/git-pull` routes, ahead of nbgitpuller's.

Route precedence. Tornado serves a request with the first rule that matches, and jupyter_server
loads extensions sorted by package name, so nbgitpuller's rules (added first) would win over
ours. We therefore move our rule group to the front of the router:

1. at load time, right after adding it (nbgitpuller, sorting first, is already loaded; later
   extensions' `add_handlers` insert behind us), so no request is ever served in between;
2. again in the start hook, which runs after every extension has loaded, and then we *check*
   with `find_handler` that `{base_url}git-pull` and `{base_url}git-pull/api` reach our
   handlers. If anything still shadows them, an ERROR line says so at start-up.

Our handlers delegate every non-Canvas/Drive `repo` to nbgitpuller's code, so being first never
changes what a git link does.
"""

from __future__ import annotations

import os
from typing import Any

import nbgitpuller
from jupyter_server.utils import url_path_join
from nbgitpuller._compat import get_base_handler
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from tornado.ioloop import IOLoop
from tornado.routing import Rule
from tornado.web import StaticFileHandler

from .config import PrivatePuller

NAME = "privatepuller"
# web_app.settings key of our /git-pull handler classes (set when the extension loads).
HANDLERS = "privatepuller_handlers"


def _our_classes(web_app: Any) -> tuple[type, ...]:
    return tuple(web_app.settings.get(HANDLERS, ()))


def _load_jupyter_server_extension(serverapp: Any) -> None:
    # As nbgitpuller does: pick the base handler class before importing the handlers (which
    # subclass it), so they are imported here and only here.
    get_base_handler(serverapp)
    from .handlers import PrivateSyncHandler, PrivateUIHandler
    from .link_builder import LinkAPIHandler, LinkBuilderHandler

    web_app = serverapp.web_app
    base_url = web_app.settings["base_url"]
    pull_url = url_path_join(base_url, "git-pull")
    builder_url = url_path_join(base_url, "privatepuller", "link")
    handlers: list[Any] = [
        (url_path_join(pull_url, "api"), PrivateSyncHandler),
        (pull_url, PrivateUIHandler),
        # The instructors' link builder and its JSON API (read-only: resolve and list).
        (builder_url, LinkBuilderHandler),
        (url_path_join(base_url, "privatepuller", "api", "link"), LinkAPIHandler),
    ]
    # nbgitpuller's page loads its script from its own static route; serve it if nbgitpuller's
    # extension is disabled, so git and private links keep working.
    static = url_path_join(pull_url, "static", "dist", "bundle.js")
    if _handler_class(web_app, static) is None:
        path = os.path.join(os.path.dirname(nbgitpuller.__file__), "static")
        handlers.append(
            (url_path_join(pull_url, "static", "(.*)"), StaticFileHandler, {"path": path})
        )

    web_app.settings.setdefault("nbapp", serverapp)  # GitPuller's traitlets parent
    web_app.settings["privatepuller"] = PrivatePuller(parent=serverapp)
    web_app.settings[HANDLERS] = (PrivateSyncHandler, PrivateUIHandler)
    web_app.add_handlers(".*", handlers)
    promote_our_rules(web_app)
    serverapp.log.info("privatepuller | Canvas and Google Drive links at %s", pull_url)
    serverapp.log.info("privatepuller | link builder for instructors at %s", builder_url)


async def _start_jupyter_server_extension(serverapp: Any) -> None:
    """After every extension has loaded: make sure our routes win, and say so loudly if not."""
    promote_our_rules(serverapp.web_app)
    log_route_check(serverapp)
    # Other extensions' start hooks run concurrently with this one; look once more when they
    # are done, in case one of them moved its own rules to the front after us.
    IOLoop.current().call_later(RECHECK_SECONDS, _recheck, serverapp)


RECHECK_SECONDS = 1.0


def _recheck(serverapp: Any) -> None:
    if promote_our_rules(serverapp.web_app):
        serverapp.log.warning(
            "privatepuller | another extension moved its rules ahead of privatepuller's "
            "after start-up; privatepuller moved its /git-pull rules back to the front"
        )
        log_route_check(serverapp)


def log_route_check(serverapp: Any) -> bool:
    """Check that our handlers serve /git-pull and /git-pull/api; log the verdict."""
    problems = check_routes(serverapp.web_app)
    if not problems:
        pull_url = url_path_join(serverapp.web_app.settings["base_url"], "git-pull")
        serverapp.log.info(
            "privatepuller | routes OK: %s and %s/api are served by privatepuller "
            "(git links are handed to nbgitpuller)",
            pull_url,
            pull_url,
        )
        return True
    for problem in problems:
        serverapp.log.error("privatepuller | routes CONFLICT: %s", problem)
    serverapp.log.error(
        "privatepuller | routes CONFLICT: Canvas and Google Drive nbgitpuller links will NOT "
        "work on this server, because another extension shadows privatepuller's /git-pull "
        "handlers. Disable that extension, or ask its authors to delegate unknown links."
    )
    return False


def _is_ours(rule: Rule, ours: tuple[type, ...]) -> bool:
    target = rule.target
    inner = getattr(target, "rules", None)
    if not inner:
        return False
    return any(getattr(r, "target", None) in ours for r in inner)


def promote_our_rules(web_app: Any) -> bool:
    """Move our rule group(s) to the front of the application's router; True if moved."""
    rules = web_app.default_router.rules
    ours = _our_classes(web_app)
    mine = [rule for rule in rules if _is_ours(rule, ours)]
    others = [rule for rule in rules if not _is_ours(rule, ours)]
    if rules[: len(mine)] == mine:
        return False
    rules[:] = mine + others
    return True


def _fake_request(path: str) -> HTTPServerRequest:
    return HTTPServerRequest(
        start_line=RequestStartLine("GET", path, "HTTP/1.1"),
        headers=HTTPHeaders({"Host": "127.0.0.1"}),
    )


def _handler_class(web_app: Any, path: str) -> type | None:
    """The handler class tornado would pick for GET `path` (None when only the 404 matches)."""
    delegate = web_app.default_router.find_handler(_fake_request(path))
    if delegate is None:
        return None
    cls = getattr(delegate, "handler_class", None)
    if cls is None or cls.__name__ in ("Template404", "ErrorHandler"):
        return None
    return cls


def check_routes(web_app: Any) -> list[str]:
    """Problems with our routes, [] when `git-pull` and `git-pull/api` reach our handlers."""
    base_url = web_app.settings["base_url"]
    ours = _our_classes(web_app)
    problems = []
    for path in (url_path_join(base_url, "git-pull"), url_path_join(base_url, "git-pull", "api")):
        cls = _handler_class(web_app, path)
        if cls not in ours:
            shown = f"{cls.__module__}.{cls.__qualname__}" if cls else "nothing (404)"
            problems.append(f"GET {path} is served by {shown}, not by privatepuller")
    return problems
