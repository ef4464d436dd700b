"""Real servers for the server-extension tests: a `jupyter server` subprocess and the fakes.

The fake Canvas (and fake Drive) are aiohttp servers; here they run on their own event loop in
a background thread, so synchronous tests (and a browser) can use them while a Jupyter server
subprocess talks to them over loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import requests

from leak_scan import observe
from privatepuller.testing.canvas.fake import FakeCanvas
from privatepuller.testing.drive.fake import DEFAULT_SA_EMAIL, FakeDrive

T = TypeVar("T")
VENV_BIN = Path(sys.executable).parent
# Inherited variables the server must not see (the test sets what it needs).
CLEARED_ENV = ("JUPYTER", "CANVAS_", "GOOGLE_", "PRIVATEPULLER_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopThread:
    """An asyncio loop in a daemon thread; `call` runs a function on it and returns the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async def wrapper() -> T:
            return fn(*args, **kwargs)

        return self.run(wrapper())  # type: ignore[no-any-return]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class ServiceThread(LoopThread):
    """A started fake (anything with async `start()`/`stop()`) on a background loop."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        super().__init__()

        async def make() -> Any:
            service = factory()  # created on the loop that will serve it
            await service.start()
            return service

        self.service = self.run(make())

    def close(self) -> None:
        self.run(self.service.stop())
        super().close()


class CanvasThread(ServiceThread):
    def __init__(self) -> None:
        super().__init__(FakeCanvas)

    @property
    def canvas(self) -> FakeCanvas:
        return self.service  # type: ignore[no-any-return]


class DriveThread(ServiceThread):
    def __init__(self) -> None:
        super().__init__(FakeDrive)

    @property
    def drive(self) -> FakeDrive:
        return self.service  # type: ignore[no-any-return]

    def env(self) -> dict[str, str]:
        """A Jupyter server's environment for the hub's service account on this fake."""
        token = self.call(self.drive.issue_token, DEFAULT_SA_EMAIL)
        return {
            "GOOGLE_DRIVE_ACCESS_TOKEN": token,
            "GOOGLE_DRIVE_API_URL": self.drive.api_url,
            "GOOGLE_SERVICE_ACCOUNT_EMAIL": DEFAULT_SA_EMAIL,
        }


class JupyterServer:
    """`jupyter server` in a subprocess, on a free loopback port, with its own HOME and config."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        extensions: dict[str, bool] | None = None,
        wait_for: str | None = "privatepuller | routes",
    ) -> None:
        self.wait_for = wait_for  # a log line that says the extensions have started
        self.workdir = workdir
        self.root = workdir / "home"
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = workdir / "jupyter-server.log"
        config_dir = workdir / "jupyter-config"
        config_dir.mkdir(exist_ok=True)
        if extensions is not None:
            (config_dir / "jupyter_server_config.json").write_text(
                json.dumps({"ServerApp": {"jpserver_extensions": extensions}})
            )
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("JUPYTER", "CANVAS_", "GOOGLE_"))
            },
            "HOME": str(self.root),
            "PRIVATEPULLER_HOME": str(workdir / "privatepuller-home"),
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
            "JUPYTER_DATA_DIR": str(workdir / "data"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "GIT_CONFIG_GLOBAL": str(workdir / "gitconfig"),
            **(env or {}),
        }
        self.args = [
            str(VENV_BIN / "jupyter"),
            "server",
            "--no-browser",
            f"--port={self.port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            "--allow-root",
            f"--ServerApp.root_dir={self.root}",
            *(args or []),
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> JupyterServer:
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            self.args, env=self.env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"jupyter server exited:\n{self.log()}")
            try:
                requests.get(
                    self.url + "api/status", headers=self.auth, timeout=1
                ).raise_for_status()
            except requests.RequestException:
                time.sleep(0.1)
                continue
            # The extensions' start hooks run just after the server starts listening.
            while self.wait_for and self.wait_for not in self.log() and time.monotonic() < deadline:
                time.sleep(0.05)
            return self
        self.stop()
        raise RuntimeError(f"jupyter server did not start:\n{self.log()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> JupyterServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def page(self, repo: str, **params: str) -> requests.Response:
        response = requests.get(
            self.url + "git-pull", params={"repo": repo, **params}, headers=self.auth, timeout=30
        )
        observe(f"the git-pull page for {repo}", response.content)
        return response

    def sync(self, repo: str, timeout: float = 60, **params: str) -> list[dict[str, Any]]:
        """Open `git-pull/api` like the page does; every event until the stream ends."""
        return list(self.iter_sync(repo, timeout=timeout, **params))

    def iter_sync(self, repo: str, timeout: float = 60, **params: str) -> Iterator[dict[str, Any]]:
        with requests.get(
            self.url + "git-pull/api",
            params={"repo": repo, **params},
            headers=self.auth,
            stream=True,
            timeout=timeout,
        ) as response:
            response.raise_for_status()
            assert response.headers["content-type"] == "text/event-stream"
            for line in response.iter_lines(decode_unicode=True):
                if line and line.startswith("data: "):
                    observe(f"an SSE event of git-pull/api?repo={repo}", line)
                    yield json.loads(line[len("data: ") :])


def outputs(events: list[dict[str, Any]]) -> str:
    return "".join(e.get("output", "") for e in events if e["phase"] == "syncing")


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` except git's own, as {relative path: content}."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(folder).parts
    }


def make_git_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", "--initial-branch=main", str(path)], check=True)
    for name, content in files.items():
        (path / name).write_text(content)
    subprocess.run([*git, "-C", str(path), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(path), "commit", "-q", "-m", "init"], check=True)
    return path


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HAVE_BROWSER = os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


@contextlib.contextmanager
def headless_chromium(
    *,
    window: str = "1100,760",
    on_new_document: str | None = None,
    console_log: bool = False,
    page_load_timeout: float = 30,
) -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Selenium, with a fresh profile; the flags keep it
    off this machine's closed network. `on_new_document`: a script run before each page's own
    (to record its events); `console_log`: keep the console's messages (CSP violations)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={window}",
    ):
        options.add_argument(argument)
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    if on_new_document is not None:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": on_new_document})
    driver.set_page_load_timeout(page_load_timeout)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
