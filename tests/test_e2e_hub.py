"""A real JupyterHub: students log in with Canvas (GenericOAuthenticator against the fake
Canvas), their servers start, and nbgitpuller links pull with the passed-through token, also
after Canvas expired it. The module's hub hands Google tokens to servers
(`drive_token_to_servers=True`, still supported); Drive through the hub's privatepuller
service, the default, is tests/test_e2e_hub_service.py.

Everything is real except Canvas and Google (the fakes): jupyterhub and oauthenticator from PyPI,
configurable-http-proxy from npm, SimpleLocalProcessSpawner running jupyterhub-singleuser
with the privatepuller server extension. The hub is configured exactly as docs/admin.md tells
an admin to (CanvasPassthrough.configure), plus test-only timings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from leak_scan import allow_file, observe, secret
from privatepuller.credentials.hub import AUTH_STATE_DISABLED
from privatepuller.testing.canvas.fake import AccessTokenRecord, FakeCanvas
from privatepuller.testing.canvas.model import FakeCourse, FakeUser
from privatepuller.testing.drive.fake import FakeDrive
from privatepuller.testing.drive.model import FakeItem
from server_helpers import VENV_BIN, CanvasThread, LoopThread, free_port

pytestmark = pytest.mark.e2e

CHP = Path(__file__).resolve().parents[1] / ".node/node_modules/.bin/configurable-http-proxy"
CLIENT_ID = "170000000000123"
CLIENT_SECRET = "canvas-dev-key-secret-" + secrets.token_hex(8)
SERVICE_TOKEN = secrets.token_hex(24)
REFRESH_MARGIN = 20.0  # the hub renews Canvas tokens when 20 s are left ...
SHORT_TTL = 26.0  # ... so tokens issued with this lifetime are due 6 s after issue
AUTH_REFRESH_AGE = 1  # the hub refreshes a user at most once a second

HUB_CONFIG = """
import sys
from privatepuller.hub import CanvasPassthrough

c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{workdir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{workdir}/jupyterhub_cookie_secret"
c.JupyterHub.log_level = "DEBUG"
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{workdir}/home/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--allow-root"]
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.environment = {{
    "GIT_CONFIG_GLOBAL": "{workdir}/gitconfig",
    "JUPYTER_PLATFORM_DIRS": "1",
    "GOOGLE_DRIVE_API_URL": {drive_api_url!r},  # the fake Drive instead of Google's
}}
c.Authenticator.allow_all = {allow_all}
c.Authenticator.auth_refresh_age = {auth_refresh_age}

# A service the test uses to look at the hub's side (it never triggers a refresh).
c.JupyterHub.services = [{{"name": "e2e-check", "api_token": {service_token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "e2e-check",
    "scopes": [
        "read:users", "read:servers", "read:groups", "admin:auth_state", "admin:server_state"
    ],
    "services": ["e2e-check"],
}}]

CanvasPassthrough(
    {canvas_url!r},
    google_service_account_key={key_path!r},
    refresh_margin={refresh_margin},{passthrough_args}
).configure(
    c,
    client_id={client_id!r},
    client_secret={client_secret!r},
    oauth_callback_url="http://127.0.0.1:{port}/hub/oauth_callback",
)
"""


def require_proxy() -> None:
    if CHP.exists():
        return
    message = (
        f"configurable-http-proxy is not installed at {CHP}; `./dev test` installs it with npm "
        "(npm install --prefix .node configurable-http-proxy@4)."
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


class DriveThread(LoopThread):
    """A started `FakeDrive` on a background loop, with a service account's key file."""

    def __init__(self, key_path: Path) -> None:
        super().__init__()

        async def make() -> FakeDrive:
            drive = FakeDrive()
            await drive.start()
            return drive

        self.drive: FakeDrive = self.run(make())
        self.key = self.call(self.drive.service_account_key)
        self.key_path = key_path
        key_path.write_text(json.dumps(self.key))

    def close(self) -> None:
        self.run(self.drive.stop())
        super().close()


def start_jupyterhub(
    command: list[str], workdir: Path, env: dict[str, str], log_path: Path, url: str, timeout: float
) -> subprocess.Popen[bytes]:
    """`jupyterhub` in its own session, logging to `log_path`; returns once its API answers."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def tail() -> str:
        return log_path.read_text(errors="replace")[-5000:]

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyterhub exited:\n{tail()}")
        try:
            if requests.get(f"{url}/hub/api/", timeout=1).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"jupyterhub did not start:\n{tail()}")


def stop_jupyterhub(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM (the hub stops its servers and proxy), then SIGKILL to its session after 30 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class Hub:
    workdir: Path
    canvas_thread: CanvasThread
    drive_thread: DriveThread
    port: int = field(default_factory=free_port)
    crypt_key: str = field(default_factory=lambda: secrets.token_hex(32))
    extra_config: str = ""  # appended after CanvasPassthrough(...).configure(c)
    passthrough_args: str = ""  # more CanvasPassthrough(...) arguments, e.g. "canvas_groups=True"
    allow_all: bool = True  # c.Authenticator.allow_all (allowed_courses refuses it)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def canvas(self) -> FakeCanvas:
        return self.canvas_thread.canvas

    @property
    def log_path(self) -> Path:
        return self.workdir / "jupyterhub.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def write_config(self) -> Path:
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(
            HUB_CONFIG.format(
                port=self.port,
                hub_port=free_port(),
                proxy_api_port=free_port(),
                chp=str(CHP),
                workdir=self.workdir,
                singleuser=str(VENV_BIN / "jupyterhub-singleuser"),
                auth_refresh_age=AUTH_REFRESH_AGE,
                service_token=SERVICE_TOKEN,
                canvas_url=self.canvas.base_url,
                refresh_margin=REFRESH_MARGIN,
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                key_path=str(self.drive_thread.key_path),
                drive_api_url=self.drive_thread.drive.api_url,
                allow_all=self.allow_all,
                passthrough_args=f"\n    {self.passthrough_args}," if self.passthrough_args else "",
            )
            + self.extra_config
        )
        allow_file(config, "the hub admin's config holds the Canvas developer key's secret")
        secret(self.crypt_key, "JUPYTERHUB_CRYPT_KEY")
        (self.workdir / "gitconfig").write_text("")
        return config

    def env(self, **extra: str) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("JUPYTER", "CANVAS_", "GOOGLE_", "CONFIGPROXY"))
        }
        return {**keep, "HOME": str(self.workdir), "JUPYTERHUB_CRYPT_KEY": self.crypt_key, **extra}

    def start(self, timeout: float = 60) -> None:
        config = self.write_config()
        self.process = start_jupyterhub(
            [str(VENV_BIN / "jupyterhub"), "-f", str(config)],
            self.workdir,
            self.env(),
            self.log_path,
            self.url,
            timeout,
        )

    def stop(self) -> None:
        stop_jupyterhub(self.process)  # the hub stops the servers and the proxy

    # -- the test's view of the hub (a service token; never refreshes anyone) -------------

    def api(self, path: str) -> Any:
        response = requests.get(
            f"{self.url}/hub/api/{path}",
            headers={"Authorization": f"token {SERVICE_TOKEN}"},
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

    # -- the fake Canvas ----------------------------------------------------------------

    def canvas_call(self, fn: Any, *args: Any) -> Any:
        return self.canvas_thread.call(fn, *args)

    def hub_token_of(self, user: FakeUser) -> AccessTokenRecord:
        """A snapshot of the live token Canvas issued to the hub for `user` (a refresh
        changes the record in place, as Canvas's regenerate_access_token does)."""

        def find() -> AccessTokenRecord:
            live = [
                r
                for r in self.canvas.tokens.values()
                if r.user_id == user.id and r.client_id == CLIENT_ID and not r.revoked
            ]
            assert len(live) == 1, live
            return dataclasses.replace(live[0])

        return self.canvas_call(find)

    def token_requests(self) -> int:
        return self.canvas_call(
            lambda: sum(1 for r in self.canvas.requests if r.is_oauth_token_request)
        )

    def canvas_secrets(self) -> list[str]:
        """Every credential in play: Canvas tokens, Google tokens, keys and secrets."""

        def collect() -> list[str]:
            values = [CLIENT_SECRET, self.crypt_key]
            for record in self.canvas.tokens.values():
                values += [record.token, record.refresh_token or ""]
            values += list(self.canvas.refresh_tokens)
            return [v for v in values if v]

        private_key_lines = self.drive_thread.key["private_key"].splitlines()[1:-1]
        drive_tokens = self.drive_thread.call(lambda: list(self.drive_thread.drive.tokens))
        return self.canvas_call(collect) + drive_tokens + private_key_lines


class Browser:
    """A student's browser: cookies, redirects followed one by one (so we see them)."""

    def __init__(self, hub: Hub, student: FakeUser) -> None:
        self.hub = hub
        self.student = student
        self.http = requests.Session()

    def login(self, expect: int = 302) -> requests.Response:
        """Log in with Canvas: hub -> Canvas authorize -> hub callback (cookie set); returns
        the callback's answer, whose status must be `expect` (403: the hub refused)."""
        self.hub.canvas_call(setattr, self.hub.canvas, "oauth_login_user", self.student)
        url = f"{self.hub.url}/hub/oauth_login"
        visited = []
        for _ in range(10):
            response = self.http.get(url, allow_redirects=False, timeout=30)
            visited.append(urlsplit(url).path)
            if urlsplit(url).path == "/hub/oauth_callback":
                assert response.status_code == expect, response.text[:2000]
                break
            assert response.status_code == 302, (url, response.status_code, response.text[:500])
            url = urljoin(url, response.headers["Location"])
        assert visited == ["/hub/oauth_login", "/login/oauth2/auth", "/hub/oauth_callback"]
        return response

    def spawn(self) -> dict[str, Any]:
        response = self.http.get(f"{self.hub.url}/hub/spawn", allow_redirects=False, timeout=30)
        assert response.status_code == 302, response.text[:2000]
        return self.hub.wait_for_server(self.student.login_id)

    def pull(self, repo: str, *, via_hub: bool = True) -> list[dict[str, Any]]:
        """Click the link (through the hub's user-redirect, as nbgitpuller links go; or
        straight at the server, so only the server talks to the hub), then open the event
        stream the page opens."""
        name = self.student.login_id
        server = f"{self.hub.url}/user/{name}"
        start = f"{self.hub.url}/hub/user-redirect" if via_hub else server
        page = self.http.get(f"{start}/git-pull", params={"repo": repo}, timeout=60)
        assert page.status_code == 200, page.text[:2000]
        assert urlsplit(page.url).path == f"/user/{name}/git-pull"
        events = []
        with self.http.get(
            f"{server}/git-pull/api", params={"repo": repo}, stream=True, timeout=120
        ) as response:
            assert response.status_code == 200, response.text[:2000]
            for line in response.iter_lines(decode_unicode=True):
                text = str(line)
                if text.startswith("data: "):
                    observe("an SSE event of the student's sync", text)
                    events.append(json.loads(text[len("data: ") :]))
        return events


@dataclass
class World:
    hub: Hub
    course: FakeCourse
    ada: FakeUser
    bo: FakeUser
    drive_folder: FakeItem  # shared with the hub's service account

    def drive_url(self) -> str:
        return f"https://drive.google.com/drive/folders/{self.drive_folder.id}"

    def course_url(self) -> str:
        return f"{self.hub.canvas.base_url}/courses/{self.course.id}/files"

    def home(self, user: FakeUser) -> Path:
        return self.hub.workdir / "home" / user.login_id


def start_world(
    workdir: Path,
    extra_config: str = "",
    *,
    passthrough: Callable[[FakeCanvas, FakeCourse], str] | None = None,
    allow_all: bool = True,
) -> World:
    """`passthrough` adds Canvas content before the hub starts (on the fake's loop) and returns
    more CanvasPassthrough(...) arguments."""
    canvas_thread = CanvasThread()
    canvas = canvas_thread.canvas
    (workdir / "hub-secrets").mkdir()
    drive_thread = DriveThread(workdir / "hub-secrets" / "drive-sa.json")
    drive = drive_thread.drive

    def populate_drive() -> FakeItem:
        folder = drive.add_folder("Drive Lab", share_with=drive_thread.key["client_email"])
        drive.add_file("lab.txt", folder.id, b"from Drive\n", mime_type="text/plain")
        return folder

    def populate() -> tuple[FakeCourse, FakeUser, FakeUser]:
        canvas.register_client(CLIENT_ID, CLIENT_SECRET, redirect_uri="http://127.0.0.1/")
        course = canvas.add_course("Data Science 101")
        ada = canvas.add_user("Ada Student", login_id="ada")
        bo = canvas.add_user("Bo Outsider", login_id="bo")
        course.enroll(ada)
        course.files.add_file("Week 1/intro.ipynb", b'{"cells": [], "secret": "course-only"}\n')
        course.files.add_file("README.md", b"Welcome to Data Science 101 (course-only)\n")
        return course, ada, bo

    course, ada, bo = canvas_thread.call(populate)
    drive_folder = drive_thread.call(populate_drive)
    args = canvas_thread.call(passthrough, canvas, course) if passthrough else ""
    # The privatepuller service (registered with the key) on a port of its own: hubs of other
    # tests may run at the same time.
    service_url = f"service_url='http://127.0.0.1:{free_port()}'"
    args = f"{args},\n    {service_url}" if args else service_url
    hub = Hub(
        workdir,
        canvas_thread,
        drive_thread,
        extra_config=extra_config,
        passthrough_args=args,
        allow_all=allow_all,
    )
    try:
        hub.start()
    except BaseException:
        hub.stop()
        canvas_thread.close()
        drive_thread.close()
        raise
    return World(hub, course, ada, bo, drive_folder)


def stop_world(world: World) -> None:
    world.hub.stop()
    world.hub.canvas_thread.close()
    world.hub.drive_thread.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_proxy()
    started = start_world(
        tmp_path_factory.mktemp("hub"), passthrough=lambda *_: "drive_token_to_servers=True"
    )
    yield started
    stop_world(started)


def assert_finished(events: list[dict[str, Any]]) -> None:
    assert events, "no events"
    assert events[-1]["phase"] == "finished", json.dumps(events, indent=1)[-3000:]


def assert_no_secrets_logged(world: World) -> None:
    log = world.hub.log()
    leaked = [s[:6] + "..." for s in world.hub.canvas_secrets() if s in log]
    assert leaked == [], f"secrets in the hub log: {leaked}"


def test_student_pulls_with_the_passed_through_token_also_after_it_expires(world: World) -> None:
    hub, ada = world.hub, world.ada
    browser = Browser(hub, ada)
    browser.login()
    first_token = hub.hub_token_of(ada)

    # The hub keeps the Canvas token, its issue time and the Canvas URL in auth_state.
    state = hub.api("users/ada")["auth_state"]
    assert state["access_token"] == first_token.token
    section = state["privatepuller"]
    assert section["canvas_base_url"] == hub.canvas.base_url
    assert section["canvas_expires_at"] - section["canvas_obtained_at"] == 3600
    assert first_token.scopes  # the developer-key scopes were requested at login

    # Its server starts with the token in its environment (auth_state_hook).
    server = browser.spawn()
    environ = Path(f"/proc/{server['state']['pid']}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
    assert env["CANVAS_BASE_URL"] == hub.canvas.base_url
    assert env["CANVAS_ACCESS_TOKEN"] == first_token.token
    google = section["google"]
    assert env["GOOGLE_DRIVE_ACCESS_TOKEN"] == google["access_token"]
    assert env["GOOGLE_SERVICE_ACCOUNT_EMAIL"] == hub.drive_thread.key["client_email"]
    # The service-account key stays on the hub: no path to it, no part of it, in the server.
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env
    everything = "".join(env.values())
    assert "hub-secrets" not in everything and "PRIVATE KEY" not in everything
    assert "JUPYTERHUB_CRYPT_KEY" not in env and CLIENT_SECRET not in everything

    # 1. The link pulls the course folder.
    assert_finished(browser.pull(world.course_url()))
    target = world.home(ada) / "Data Science 101"
    assert (target / "Week 1/intro.ipynb").read_bytes().startswith(b'{"cells"')
    assert (target / "README.md").exists()
    # The server asked the hub for the user's auth_state (GET /users/ada, not /user).
    assert re.search(r"200 GET /hub/api/users/ada \S* ?\(ada@", hub.log())

    # A Drive folder shared with the hub's service account pulls with the hub-minted token.
    assert_finished(browser.pull(world.drive_url()))
    assert (world.home(ada) / "Drive Lab" / "lab.txt").read_bytes() == b"from Drive\n"
    drive_requests = hub.drive_thread.call(lambda: list(hub.drive_thread.drive.requests))
    assert drive_requests
    assert all(r.authorization == f"Bearer {google['access_token']}" for r in drive_requests)
    assert len(hub.drive_thread.call(lambda: list(hub.drive_thread.drive.token_requests))) == 1
    # The admin was told, once, what every student can now read with that token.
    assert hub.log().count("drive_token_to_servers = True: every student's server gets") == 1

    # 2. Canvas expires the token early. Clicking the link again makes the hub refresh the
    #    user (OAuthenticator: userdata refused, refresh_token grant); the pull then gets the
    #    new token from the hub.
    used_tokens = {first_token.token}
    token_posts = hub.token_requests()
    hub.canvas_call(hub.canvas.expire_token, first_token.token)
    time.sleep(AUTH_REFRESH_AGE + 0.5)
    hub.canvas_call(world.course.files.add_file, "Week 2/new.csv", b"a,b\n")
    assert_finished(browser.pull(world.course_url()))
    assert (target / "Week 2/new.csv").read_bytes() == b"a,b\n"
    second_token = hub.hub_token_of(ada)
    assert second_token.token not in used_tokens
    assert hub.token_requests() == token_posts + 1  # one refresh_token grant
    used_tokens.add(second_token.token)

    # 3. Canvas expires that one too, and the student re-opens the link on the server itself
    #    (no hub page in between). The server still holds the dead token: Canvas answers 401
    #    with WWW-Authenticate, the server asks the hub once more, the hub refreshes, and the
    #    pull goes on with the new token.
    before = hub.canvas_call(lambda: len(hub.canvas.requests))
    hub.canvas_call(setattr, hub.canvas, "access_token_ttl", SHORT_TTL)  # for step 4
    hub.canvas_call(hub.canvas.expire_token, second_token.token)
    hub.canvas_call(world.course.files.add_file, "Week 3/more.csv", b"c,d\n")
    assert_finished(browser.pull(world.course_url(), via_hub=False))
    assert (target / "Week 3/more.csv").read_bytes() == b"c,d\n"
    third_token = hub.hub_token_of(ada)
    assert third_token.token not in used_tokens
    since = hub.canvas_call(lambda: list(hub.canvas.requests[before:]))
    refused = [r for r in since if r.status == 401]
    assert refused and all(r.authorization == f"Bearer {second_token.token}" for r in refused)
    assert since[-1].status == 200
    used_tokens.add(third_token.token)

    # 4. The server has run for a while: the token nears its natural expiry. When the
    #    server asks the hub at the next sync, the hub renews it before Canvas would refuse
    #    it (refresh_user_hook), so the pull never meets a 401.
    assert third_token.expires_at is not None
    wait = third_token.expires_at - REFRESH_MARGIN - time.time() + 0.5
    time.sleep(max(0.0, wait))
    before = hub.canvas_call(lambda: len(hub.canvas.requests))
    hub.canvas_call(world.course.files.update_file, "README.md", b"Updated welcome\n")
    assert_finished(browser.pull(world.course_url(), via_hub=False))
    assert (target / "README.md").read_bytes() == b"Updated welcome\n"
    fourth_token = hub.hub_token_of(ada)
    assert fourth_token.token not in used_tokens
    since = hub.canvas_call(lambda: list(hub.canvas.requests[before:]))
    assert [r for r in since if r.status == 401] == []
    api_calls = [r for r in since if r.path_qs.startswith("/api/v1/courses")]
    assert api_calls and all(r.authorization == f"Bearer {fourth_token.token}" for r in api_calls)
    assert "privatepuller: renewing ada's Canvas token (expires in" in hub.log()
    state = hub.api("users/ada")["auth_state"]
    assert state["access_token"] == fourth_token.token
    assert state["privatepuller"]["canvas_obtained_at"] > section["canvas_obtained_at"]

    assert_no_secrets_logged(world)


def test_student_not_enrolled_gets_no_access_and_sees_nothing(world: World) -> None:
    hub, bo = world.hub, world.bo
    browser = Browser(hub, bo)
    browser.login()
    browser.spawn()
    events = browser.pull(world.course_url())
    assert events[-1]["phase"] == "error", events
    assert events[-1]["error"]["code"] == "no_access"
    assert "do not have access" in events[-1]["message"]
    assert "enrolled" in events[-1]["message"]
    home = world.home(bo)
    seen = [p for p in home.rglob("*") if p.is_file() and b"course-only" in p.read_bytes()]
    assert seen == []
    assert not (home / "Data Science 101").exists()
    assert_no_secrets_logged(world)


def test_canvas_enrollments_become_jupyterhub_groups(tmp_path: Path) -> None:
    """canvas_groups with allowed_courses on a real hub: a student's login gives her the
    groups of her active courses and Canvas groups (JupyterHub's API shows them); a student
    outside the listed courses is refused with the message; after the instructor removes her
    from one course and its group, her next login drops those groups (manage_groups)."""
    require_proxy()

    def prepare(canvas: FakeCanvas, course: FakeCourse) -> str:
        stats = canvas.add_course("Statistics 102")
        ada = next(u for u in canvas.users.values() if u.login_id == "ada")
        stats.enroll(ada, "ta")
        team = canvas.add_group("Project team 3", course)
        team.add_member(ada)
        return f"allowed_courses=[{course.id}, {stats.id}]"

    world = start_world(tmp_path, passthrough=prepare, allow_all=False)
    try:
        hub, ada = world.hub, world.ada
        course = world.course
        stats = next(c for c in hub.canvas.courses.values() if c.name == "Statistics 102")
        team = next(iter(hub.canvas.groups.values()))

        Browser(hub, ada).login()
        model = hub.api("users/ada")
        assert sorted(model["groups"]) == [
            f"canvas:course:{course.id}",
            f"canvas:course:{course.id}:student",
            f"canvas:course:{stats.id}",
            f"canvas:course:{stats.id}:ta",
            f"canvas:group:{team.id}",
        ]
        assert model["auth_state"]["privatepuller"]["groups"] == sorted(model["groups"])
        assert hub.hub_token_of(ada).scopes >= {
            "url:GET|/api/v1/courses",
            "url:GET|/api/v1/users/self/groups",
        }
        members = hub.api(f"groups/canvas:course:{course.id}:student")["users"]
        assert members == ["ada"]

        # Bo is enrolled in no listed course: the hub refuses him, and says why.
        refused = Browser(hub, world.bo).login(expect=403)
        assert "no active enrollment" in refused.text
        assert "accept the course invitation" in refused.text
        assert "User 'bo' not allowed." in hub.log()
        no_user = requests.get(
            f"{hub.url}/hub/api/users/bo",
            headers={"Authorization": f"token {SERVICE_TOKEN}"},
            timeout=10,
        )
        assert no_user.status_code == 404  # a refused login creates no hub user

        # The instructor removes Ada from the course and its project group. Her next login
        # (still in Statistics 102, so still allowed) drops those groups.
        def remove() -> None:
            course.unenroll(ada)
            team.remove_member(ada)

        hub.canvas_call(remove)
        Browser(hub, ada).login()
        assert sorted(hub.api("users/ada")["groups"]) == [
            f"canvas:course:{stats.id}",
            f"canvas:course:{stats.id}:ta",
        ]
        assert hub.api(f"groups/canvas:course:{course.id}:student")["users"] == []
        assert "Removing user ada from group(s)" in hub.log()
        reads = hub.canvas_call(
            lambda: [r for r in hub.canvas.requests if "/courses?" in r.path_qs]
        )
        assert reads and {(r.method, r.status) for r in reads} == {("GET", 200)}
        log = hub.log()
        secrets_ = hub.canvas_secrets()
    finally:
        stop_world(world)
    assert [s for s in secrets_ if s in log] == []


def test_with_internal_ssl_the_server_still_gets_renewed_tokens_from_the_hub(
    tmp_path: Path,
) -> None:
    """internal_ssl: the hub's API is https with the hub's own CA and wants the server's client
    certificate. The server's token expired after it started; the pull works only if the
    server asked the hub (over TLS, with that certificate) and got the renewed one."""
    require_proxy()
    config = (
        "c.JupyterHub.internal_ssl = True\n"
        f"c.JupyterHub.internal_certs_location = {str(tmp_path / 'internal-ssl')!r}\n"
        f'c.ConfigurableHTTPProxy.api_url = "https://127.0.0.1:{free_port()}"\n'
    )
    world = start_world(tmp_path, config)
    try:
        hub = world.hub
        browser = Browser(hub, world.ada)
        browser.login()
        first = hub.hub_token_of(world.ada)
        server = browser.spawn()
        environ = Path(f"/proc/{server['state']['pid']}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        assert env["JUPYTERHUB_API_URL"].startswith("https://")
        assert env["JUPYTERHUB_SSL_CERTFILE"] and env["CANVAS_ACCESS_TOKEN"] == first.token

        hub.canvas_call(hub.canvas.expire_token, first.token)
        time.sleep(AUTH_REFRESH_AGE + 0.5)
        events = browser.pull(world.course_url(), via_hub=False)
        renewed = hub.hub_token_of(world.ada)
        log = hub.log()
        secrets_ = hub.canvas_secrets()
    finally:
        stop_world(world)
    assert_finished(events)
    assert (world.home(world.ada) / "Data Science 101" / "README.md").exists()
    assert renewed.token != first.token
    assert re.search(r"200 GET /hub/api/users/ada \S* ?\(ada@", log)
    assert [s for s in secrets_ if s in log] == []


def test_auth_state_disabled_is_explained_to_the_admin_and_the_student(tmp_path: Path) -> None:
    """An admin who turned auth_state off: logins work, but no token reaches servers. The hub
    log says what to change; the student's page says to ask the admin."""
    require_proxy()
    world = start_world(tmp_path, "c.GenericOAuthenticator.enable_auth_state = False\n")
    try:
        browser = Browser(world.hub, world.ada)
        browser.login()
        browser.spawn()
        events = browser.pull(world.course_url())
        log = world.hub.log()
        secrets_ = world.hub.canvas_secrets()
    finally:
        stop_world(world)
    assert events[-1]["phase"] == "error", events
    assert events[-1]["error"]["code"] == "not_configured"
    assert events[-1]["message"] == AUTH_STATE_DISABLED
    assert "privatepuller: auth_state is disabled, so ada's server gets no Canvas token" in log
    assert not (world.home(world.ada) / "Data Science 101").exists()
    assert [s for s in secrets_ if s in log] == []


def test_hub_refuses_to_start_without_a_crypt_key_and_says_why(tmp_path: Path) -> None:
    """auth_state needs JUPYTERHUB_CRYPT_KEY: the hub exits, and the log says what to do."""
    require_proxy()
    canvas_thread = CanvasThread()
    drive_thread = DriveThread(tmp_path / "drive-sa.json")
    try:
        hub = Hub(tmp_path, canvas_thread, drive_thread)
        config = hub.write_config()
        env = hub.env()
        del env["JUPYTERHUB_CRYPT_KEY"]
        result = subprocess.run(
            [str(VENV_BIN / "jupyterhub"), "-f", str(config)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=60,
        )
    finally:
        canvas_thread.close()
        drive_thread.close()
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode != 0
    assert "privatepuller: JUPYTERHUB_CRYPT_KEY is not set" in output
    assert "openssl rand -hex 32" in output
    assert "auth_state is enabled, but encryption is not available" in output  # JupyterHub's
    assert CLIENT_SECRET not in output
