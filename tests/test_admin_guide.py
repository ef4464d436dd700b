"""docs/admin.md works as written: its complete `jupyterhub_config.py` (at most 15 lines) runs a
real JupyterHub, started the way the guide says (the environment's `bin` and
configurable-http-proxy on the PATH, the developer key in OAUTH_CLIENT_ID/OAUTH_CLIENT_SECRET),
a student logs in with Canvas and a link without `urlpath` pulls the course and sends them to
JupyterLab, and `jupyterhub token <admin>` gives the token the guide's checks use.

The guide's block is taken from the document itself; only what cannot work on a test machine is
changed: the hub's and Canvas's addresses (loopback, the fake Canvas), the TLS lines, the Drive
key (None), and the trial homes (under the test's directory, not /tmp).
"""

from __future__ import annotations

import html
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests

from leak_scan import secret
from privatepuller.testing.canvas.fake import FakeCanvas
from privatepuller.testing.canvas.model import FakeCourse, FakeUser
from server_helpers import VENV_BIN, CanvasThread, free_port
from test_e2e_hub import CHP, Browser, require_proxy, start_jupyterhub, stop_jupyterhub

pytestmark = pytest.mark.e2e

GUIDE = Path(__file__).resolve().parents[1] / "docs/admin.md"
CLIENT_ID = "170000000000777"
CLIENT_SECRET = "guide-dev-key-secret-" + secrets.token_hex(8)


def guide_config() -> str:
    """The Python block under the guide's "`jupyterhub_config.py` (complete)" heading."""
    text = GUIDE.read_text()
    section = text[text.index("## `jupyterhub_config.py` (complete)") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no python block under the complete config's heading"
    return match.group(1)


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the guide's config no longer has {old!r}"
    return text.replace(old, new)


def test_the_guides_hub_configuration_is_at_most_15_lines() -> None:
    lines = guide_config().splitlines()
    assert len(lines) <= 15, "\n".join(lines)


@dataclass
class GuideHub:
    """A JupyterHub run from the guide's configuration, the way the guide starts it."""

    workdir: Path
    canvas_thread: CanvasThread
    port: int = field(default_factory=free_port)
    crypt_key: str = field(default_factory=lambda: secrets.token_hex(32))
    admin_token: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def canvas(self) -> FakeCanvas:
        return self.canvas_thread.canvas

    @property
    def config_path(self) -> Path:
        return self.workdir / "jupyterhub_config.py"

    def log(self) -> str:
        path = self.workdir / "jupyterhub.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def write_config(self) -> None:
        config = guide_config()
        config = replace_once(
            config, "https://hub.example.edu/hub/oauth_callback", f"{self.url}/hub/oauth_callback"
        )
        config = replace_once(config, '"https://hub.example.edu"', f'"{self.url}"')
        config = replace_once(config, '"https://canvas.example.edu"', repr(self.canvas.base_url))
        config = replace_once(config, '"/etc/jupyterhub/secrets/drive-sa.json"', "None")
        config = "".join(
            line for line in config.splitlines(keepends=True) if "c.JupyterHub.ssl_" not in line
        )
        # Test-only: free ports for the hub's API and the proxy's, homes under the test dir.
        homes = f"{self.workdir}/home/{{username}}"
        self.config_path.write_text(
            config
            + f'\nc.JupyterHub.hub_bind_url = "http://127.0.0.1:{free_port()}"\n'
            + f'c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"\n'
            + f"c.SimpleLocalProcessSpawner.home_dir_template = {homes!r}\n"
        )

    def env(self) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("JUPYTER", "CANVAS_", "GOOGLE_", "CONFIGPROXY", "OAUTH_"))
        }
        secret(self.crypt_key, "JUPYTERHUB_CRYPT_KEY")
        # As the guide says: the environment's bin first on the PATH (jupyterhub-singleuser),
        # configurable-http-proxy on it too, the developer key and the crypt key.
        path = f"{VENV_BIN}:{CHP.parent}:{os.environ.get('PATH', '')}"
        return {
            **keep,
            "PATH": path,
            "HOME": str(self.workdir),
            "OAUTH_CLIENT_ID": CLIENT_ID,
            "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "JUPYTERHUB_CRYPT_KEY": self.crypt_key,
        }

    def start(self, timeout: float = 60) -> None:
        self.write_config()
        self.process = start_jupyterhub(
            ["jupyterhub", "-f", str(self.config_path)],
            self.workdir,
            self.env(),
            self.workdir / "jupyterhub.log",
            self.url,
            timeout,
        )

    def stop(self) -> None:
        stop_jupyterhub(self.process)

    def token_command(self, user: str) -> str:
        """The guide's `jupyterhub token <admin>`, in the hub's directory and environment."""
        done = subprocess.run(
            ["jupyterhub", "token", user, "-f", str(self.config_path)],
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip().splitlines()[-1]

    # What tests/test_e2e_hub.py's Browser needs from a hub.
    def canvas_call(self, fn: Any, *args: Any) -> Any:
        return self.canvas_thread.call(fn, *args)

    def api(self, path: str) -> Any:
        response = requests.get(
            f"{self.url}/hub/api/{path}",
            headers={"Authorization": f"token {self.admin_token}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def wait_for_server(self, name: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api(f"users/{name}").get("servers", {}).get("")
            if server and server.get("ready"):
                return server
            time.sleep(0.3)
        raise RuntimeError(f"{name}'s server did not start:\n{self.log()[-5000:]}")


@dataclass
class World:
    hub: GuideHub
    course: FakeCourse
    ada: FakeUser


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_proxy()
    canvas_thread = CanvasThread()
    canvas = canvas_thread.canvas

    def populate() -> tuple[FakeCourse, FakeUser]:
        canvas.register_client(CLIENT_ID, CLIENT_SECRET, redirect_uri="http://127.0.0.1/")
        course = canvas.add_course("Data Science 101")
        ada = canvas.add_user("Ada Student", login_id="ada")
        canvas.add_user("Grace Admin", login_id="grace")
        course.enroll(ada)
        course.files.add_file("README.md", b"Welcome to Data Science 101\n")
        return course, ada

    course, ada = canvas_thread.call(populate)
    hub = GuideHub(tmp_path_factory.mktemp("guide-hub"), canvas_thread)
    try:
        hub.start()
        yield World(hub, course, ada)
    finally:
        hub.stop()
        canvas_thread.close()


def test_the_guides_hub_logs_a_student_in_and_a_link_lands_in_jupyterlab(world: World) -> None:
    hub, ada = world.hub, world.ada
    # The guide's way to get an admin token; the admin (admin_users) never logged in.
    hub.admin_token = hub.token_command("grace")
    assert hub.api("users/grace")["admin"] is True

    browser = Browser(hub, ada)  # type: ignore[arg-type]
    browser.login()
    # What check 2 of the guide looks at, read with that token.
    state = hub.api("users/ada")["auth_state"]
    assert state["privatepuller"]["canvas_base_url"] == hub.canvas.base_url
    assert state["privatepuller"]["canvas_expires_at"] > time.time()
    assert state["refresh_token"]
    browser.spawn()

    # Check 4: a link without urlpath. The page tells nbgitpuller's script where to go when
    # the pull has finished: JupyterLab's file browser, in the course's folder.
    repo = f"{hub.canvas.base_url}/courses/{world.course.id}/files"
    page = browser.http.get(
        f"{hub.url}/hub/user-redirect/git-pull", params={"repo": repo}, timeout=60
    )
    assert page.status_code == 200, page.text[:2000]
    match = re.search(r'data-path="([^"]*)"', page.text)
    assert match, page.text[:2000]
    assert unquote(html.unescape(match.group(1))) == "lab/tree/Data Science 101/."
    events = browser.pull(repo)
    assert events and events[-1]["phase"] == "finished", events[-3:]
    folder = hub.workdir / "home" / "ada" / "Data Science 101"
    assert (folder / "README.md").read_bytes() == b"Welcome to Data Science 101\n"
