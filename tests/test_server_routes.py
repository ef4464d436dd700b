"""Route precedence: our /git-pull handlers win whatever the extension load order.

A real `ServerApp` is built in-process (no port) with nbgitpuller, privatepuller and dummy
extensions that register their own `/git-pull` handlers, named to load before or after ours;
tornado's own `find_handler` says who would serve a request.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.serverapp import ServerApp
from traitlets.config import Config

from privatepuller.server import extension

BASE_URL = "/user/ada/"

SHADOW = """
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.routing import Rule


class Shadow(JupyterHandler):
    @web.authenticated
    def get(self):
        self.finish("shadow")


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(app):
    base = url_path_join(app.web_app.settings["base_url"], "git-pull")
    app.web_app.add_handlers(".*", [(url_path_join(base, "api"), Shadow), (base, Shadow)])


def move_to_front(app):
    rules = app.web_app.default_router.rules
    mine = [r for r in rules if any(getattr(x, "target", None) is Shadow
                                    for x in getattr(r.target, "rules", []))]
    for rule in mine:
        rules.remove(rule)
        rules.insert(0, rule)
"""

GREEDY_START = """
async def _start_jupyter_server_extension(app):
    move_to_front(app)
"""


@pytest.fixture(scope="module")
def shadow_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Extensions that sort before everything (aaa_), after us (zzz_), and a greedy one."""
    folder = tmp_path_factory.mktemp("extensions")
    (folder / "aaa_shadow.py").write_text(SHADOW)
    (folder / "zzz_shadow.py").write_text(SHADOW)
    (folder / "zzz_greedy.py").write_text(SHADOW + textwrap.dedent(GREEDY_START))
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self, level: int) -> str:
        return "\n".join(r.getMessage() for r in self.records if r.levelno == level)


def make_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: list[str]
) -> tuple[ServerApp, ListHandler]:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("PRIVATEPULLER_HOME", str(tmp_path / "pp"))
    config = Config()
    config.ServerApp.jpserver_extensions = dict.fromkeys(names, True)
    config.ServerApp.root_dir = str(tmp_path)
    config.ServerApp.base_url = BASE_URL
    app = ServerApp(config=config)
    logs = ListHandler()
    app.log.addHandler(logs)
    app.initialize(argv=[], new_httpserver=False, find_extensions=False)
    return app, logs


def served_by(app: ServerApp, path: str) -> str:
    cls: Any = extension._handler_class(app.web_app, BASE_URL + path)
    return f"{cls.__module__}.{cls.__name__}" if cls else "404"


OURS = {
    "git-pull": "privatepuller.server.handlers.PrivateUIHandler",
    "git-pull/api": "privatepuller.server.handlers.PrivateSyncHandler",
}


@pytest.mark.parametrize(
    "names",
    [
        ["nbgitpuller", "privatepuller"],  # the real order: nbgitpuller sorts first
        ["aaa_shadow", "nbgitpuller", "privatepuller"],  # one more, even earlier
        ["nbgitpuller", "privatepuller", "zzz_shadow"],  # one after us
        ["privatepuller"],  # nbgitpuller's extension disabled
    ],
)
async def test_our_handlers_serve_git_pull_whatever_the_load_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shadow_modules: Path, names: list[str]
) -> None:
    app, logs = make_app(tmp_path, monkeypatch, names)
    assert [served_by(app, p) for p in OURS] == list(OURS.values())  # already after loading
    await app.extension_manager.start_all_extensions()
    assert [served_by(app, p) for p in OURS] == list(OURS.values())
    assert "routes OK" in logs.text(logging.INFO)
    assert logs.text(logging.ERROR) == ""
    # nbgitpuller's page script is reachable either way (its own route, or ours)
    assert served_by(app, "git-pull/static/dist/bundle.js") == "tornado.web.StaticFileHandler"


async def test_without_promotion_nbgitpuller_would_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The promotion is what makes the difference (so the test above can fail)."""
    monkeypatch.setattr(extension, "promote_our_rules", lambda web_app: False)
    app, logs = make_app(tmp_path, monkeypatch, ["nbgitpuller", "privatepuller"])
    await app.extension_manager.start_all_extensions()
    assert served_by(app, "git-pull/api") == "nbgitpuller.handlers.SyncHandler"
    assert served_by(app, "git-pull") == "nbgitpuller.handlers.UIHandler"
    errors = logs.text(logging.ERROR)
    assert "routes CONFLICT: GET /user/ada/git-pull/api is served by nbgitpuller" in errors
    assert "links will NOT work" in errors


async def test_an_extension_that_jumps_ahead_after_start_is_caught_and_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shadow_modules: Path
) -> None:
    app, logs = make_app(tmp_path, monkeypatch, ["nbgitpuller", "privatepuller", "zzz_greedy"])
    await app.extension_manager.start_all_extensions()
    # zzz_greedy's start hook ran after ours and moved its rules to the very front...
    assert served_by(app, "git-pull/api") == "zzz_greedy.Shadow"
    assert not extension.log_route_check(app)
    assert "routes CONFLICT: GET /user/ada/git-pull/api is served by zzz_greedy.Shadow" in (
        logs.text(logging.ERROR)
    )
    # ...and the delayed re-check scheduled by our start hook puts ours back, saying so.
    extension._recheck(app)
    assert [served_by(app, p) for p in OURS] == list(OURS.values())
    assert "moved its /git-pull rules back to the front" in logs.text(logging.WARNING)


def test_extension_point_is_declared_lazily() -> None:
    import privatepuller

    assert privatepuller._jupyter_server_extension_points() == [
        {"module": "privatepuller.server.extension"}
    ]
    assert callable(extension._load_jupyter_server_extension)
    assert callable(extension._start_jupyter_server_extension)
