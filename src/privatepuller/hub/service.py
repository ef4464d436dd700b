"""The `privatepuller` JupyterHub service: Drive folders synced on the hub, once for everyone.

The service holds the Google service-account key (its tokens never leave it), syncs a Drive
folder or file into a bare origin on its own disk (`Snapshots`: single flight, re-listed at
most every `min_relist_seconds`), and hands students' servers the snapshot's git objects:

    GET {prefix}api/drive/{folder|file}/{id}
        newline-delimited JSON: {"output": "..."} progress lines while the hub syncs, then
        {"snapshot": {"name", "commit", "report"}} or {"error": {"code", "message"}}
    GET {prefix}api/drive/{folder|file}/{id}/bundle?commit=<sha>[&have=<sha>]
        a git bundle of `commit` beyond `have` (204 when `have` is `commit`)

Every request is authenticated with JupyterHub: the calling server's own token, in the
`Authorization` header, must carry `access:services!service=privatepuller` (granted to user
servers by `CanvasPassthrough.configure`). A Drive resource key travels in the
`X-Drive-Resource-Key` header, never in a URL. Only these reads exist: nothing lists what the
service account can see. A folder may be limited to JupyterHub groups (`folder_groups`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyterhub.services.auth import HubAuth
from tornado import web
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from yarl import URL

from ..errors import ConfigurationError, NotConfigured, PullError
from ..providers.gdrive.hub import RESOURCE_KEY_HEADER
from ..sync.bundle import create_bundle, has_commit
from ..sync.config import SyncConfig
from .drive import DriveSide, KeyFile
from .snapshots import Event, Listener, ServedSnapshot, SingleFlight, SnapshotRef

log = logging.getLogger("privatepuller.service")

SERVICE_NAME = "privatepuller"
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
ITEM_ID = r"[A-Za-z0-9_-]{10,200}"
KEEPALIVE_SECONDS = 10.0
LOG_REPEAT_SECONDS = 600.0  # one admin problem is logged at most this often
LOCK_WAIT = 600.0
# A snapshot's bundle is served from it for this long at least (a student's server asks for it
# right after the snapshot); later, Drive is asked again first (still shared?).
BUNDLE_GRACE_SECONDS = 300.0
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_RESOURCE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,200}$")

NOT_IN_GROUPS = (
    "This Drive folder is only for members of {groups} on this hub, and you are not one of "
    "them. If you should be (you are enrolled in the course), log out of the hub and log in "
    "again; otherwise ask your instructor."
)


@dataclass(frozen=True)
class ServiceSettings:
    """What the hub's configuration tells the service (`CanvasPassthrough.configure`)."""

    home: Path  # origins/ and locks/ on the service's disk
    min_relist_seconds: float = 30.0
    # Drive folder (or file) id -> JupyterHub groups whose members may pull it.
    folder_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> ServiceSettings:
        data = json.loads(text)
        return cls(
            home=Path(data["home"]),
            min_relist_seconds=float(data.get("min_relist_seconds", 30.0)),
            folder_groups={k: tuple(v) for k, v in data.get("folder_groups", {}).items()},
        )


def _token_of(handler: web.RequestHandler) -> str | None:
    header = handler.request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and token.strip():
        return token.strip()
    return None


class ServiceHandler(web.RequestHandler):
    """Authenticates the caller with JupyterHub before anything else happens."""

    user: dict[str, Any]

    @property
    def hub_auth(self) -> Any:
        return self.settings["hub_auth"]

    @property
    def service_settings(self) -> ServiceSettings:
        return self.settings["service_settings"]

    @property
    def snapshots(self) -> SingleFlight[ServedSnapshot]:
        return self.settings["snapshots"]

    @property
    def infos(self) -> SingleFlight[dict[str, Any]]:
        return self.settings["infos"]

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    async def prepare(self) -> None:
        token = _token_of(self)
        model = None
        if token is not None:
            model = await self.hub_auth.user_for_token(token, sync=False)
        if not model or model.get("kind", "user") != "user":
            raise web.HTTPError(403, "a JupyterHub user's token is required")
        if not self.hub_auth.check_scopes({ACCESS_SCOPE}, model):
            raise web.HTTPError(403, f"the token lacks {ACCESS_SCOPE}")
        self.user = model

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        reason = self._reason
        if "exc_info" in kwargs and isinstance(kwargs["exc_info"][1], web.HTTPError):
            reason = kwargs["exc_info"][1].log_message or reason
        self.finish(json.dumps({"error": {"code": "http", "message": reason}}))

    def ref(self, kind: str, item_id: str) -> SnapshotRef:
        key = self.request.headers.get(RESOURCE_KEY_HEADER) or None
        if key is not None and not _RESOURCE_KEY.match(key):
            raise web.HTTPError(400, "malformed resource key")
        return SnapshotRef(kind, item_id, key)

    async def check_groups(self, item_ids: tuple[str, ...]) -> None:
        """Refuse a student outside the groups a folder (or one above it) is limited to."""
        allowed: set[str] = set()
        for item_id in item_ids:
            allowed.update(self.service_settings.folder_groups.get(item_id, ()))
        if not allowed:
            return
        groups = await self._groups_of(self.user["name"])
        if not groups & allowed:
            shown = ", ".join(sorted(allowed))
            raise NotInGroups(NOT_IN_GROUPS.format(groups=shown))

    async def _groups_of(self, name: str) -> set[str]:
        # The service's own token reads group membership (read:users:groups); a server's
        # token may not.
        # Quoted: a name with "#" or "?" would otherwise ask for another user's groups.
        url = f"{self.hub_auth.api_url.rstrip('/')}/users/{quote(name, safe='')}"
        model = await self.hub_auth._api_request("GET", url)
        return set(model.get("groups") or [])


class NotInGroups(PullError):
    code = "no_access"


# What students read when the service cannot use its key (missing, unreadable, deleted at
# Google): the reason, which names files and Google's error, goes to the log.
NOT_SET_UP = (
    "Google Drive links do not work on this hub right now: the hub's Google service account "
    "is not set up correctly. Please tell your hub administrator (the hub log says why)."
)
FAILED = (
    "The hub could not copy this Drive folder. Try again in a few minutes; if it keeps "
    "failing, tell your instructor."
)
_logged: dict[str, float] = {}


def for_student(error: PullError) -> dict[str, str]:
    """An error as the student's server gets it: the admin's problems are logged instead."""
    if isinstance(error, ConfigurationError):
        now = time.monotonic()
        if now - _logged.get(error.message, -LOG_REPEAT_SECONDS) >= LOG_REPEAT_SECONDS:
            _logged[error.message] = now
            log.error("privatepuller service: Google Drive cannot be read: %s", error.message)
        return {"code": NotConfigured.code, "message": NOT_SET_UP}
    return {"code": error.code, "message": error.message}


class InfoHandler(ServiceHandler):
    """What a link names, as the hub sees it: resolving a link costs a Drive request, not a
    sync (the page a student opens names the folder before the sync starts)."""

    async def get(self, kind: str, item_id: str) -> None:
        ref = self.ref(kind, item_id)
        self.set_header("Content-Type", "application/json")
        try:
            await self.check_groups((item_id,))
            info = await self.infos.get(ref)
            await self.check_groups(tuple(info.get("ancestors", ())))
        except PullError as error:
            self.finish(json.dumps({"error": for_student(error)}))
            return
        except Exception:
            log.exception("privatepuller service: resolving %s failed", item_id)
            self.finish(json.dumps({"error": {"code": "unknown", "message": FAILED}}))
            return
        self.finish(json.dumps({k: v for k, v in info.items() if k != "ancestors"}))


class SnapshotHandler(ServiceHandler):
    """Sync (or reuse) a Drive item's snapshot; progress while it runs."""

    _closed = False

    async def get(self, kind: str, item_id: str) -> None:
        ref = self.ref(kind, item_id)
        self.set_header("Content-Type", "application/x-ndjson")
        queue: asyncio.Queue[Event] = asyncio.Queue()
        try:
            await self.check_groups((item_id,))
            task = asyncio.ensure_future(self.snapshots.get(ref, queue.put_nowait))
            await self._stream(task, queue)
            snapshot = task.result()
            await self.check_groups(tuple(snapshot.report.get("ancestors", ())))
        except PullError as error:
            log.info("privatepuller service: %s for %s: %s", item_id, self.user["name"], error.code)
            await self._send({"error": for_student(error)})
            return
        except Exception:
            log.exception("privatepuller service: syncing %s failed", item_id)
            await self._send({"error": {"code": "unknown", "message": FAILED}})
            return
        await self._send({"snapshot": _public(snapshot)})

    async def _stream(
        self, task: asyncio.Future[ServedSnapshot], queue: asyncio.Queue[Event]
    ) -> None:
        while True:
            getter: asyncio.Future[Any] = asyncio.ensure_future(queue.get())
            waiting: set[asyncio.Future[Any]] = {getter, task}
            done, _ = await asyncio.wait(
                waiting, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if getter in done:
                await self._send(getter.result())
                continue
            getter.cancel()
            if task in done:
                while not queue.empty():
                    await self._send(queue.get_nowait())
                return
            await self._send({})  # keepalive: the server's read timeout, proxies

    async def _send(self, event: Event) -> None:
        if self._closed:
            return
        try:
            self.write(json.dumps(event) + "\n")
            await self.flush()
        except StreamClosedError:
            self._closed = True  # the student's server went away; the sync goes on


def _public(snapshot: ServedSnapshot) -> dict[str, Any]:
    report = {k: v for k, v in snapshot.report.items() if k != "ancestors"}
    return {
        "name": snapshot.name,
        "commit": snapshot.commit,
        "source_id": snapshot.source_id,
        "report": report,
    }


class BundleHandler(ServiceHandler):
    """The git objects of a snapshot the caller may have, beyond what it already has."""

    async def get(self, kind: str, item_id: str) -> None:
        ref = self.ref(kind, item_id)
        commit = self.get_argument("commit", "")
        have = self.get_argument("have", "") or None
        if not _COMMIT.match(commit) or (have is not None and not _COMMIT.match(have)):
            raise web.HTTPError(400, "commit and have must be commit ids")
        try:
            await self.check_groups((item_id,))
            # The snapshot the caller was just given (or one since): no new listing for a
            # bundle, unless this process has none that recent (it restarted since).
            recent = max(self.snapshots.min_relist_seconds, BUNDLE_GRACE_SECONDS)
            snapshot = self.snapshots.latest(ref, recent) or await self.snapshots.get(ref)
            await self.check_groups(tuple(snapshot.report.get("ancestors", ())))
        except PullError as error:
            raise web.HTTPError(403, for_student(error)["message"]) from None
        if not has_commit(snapshot.origin, commit):
            raise web.HTTPError(404, "no such snapshot of this item")
        workdir = Path(tempfile.mkdtemp(dir=self.service_settings.home, prefix="bundles-"))
        try:
            bundle = await asyncio.to_thread(create_bundle, snapshot.origin, commit, have, workdir)
            if bundle is None:
                self.set_status(204)
                return
            self.set_header("Content-Type", "application/x-git-bundle")
            self.set_header("Content-Length", str(bundle.stat().st_size))
            with bundle.open("rb") as data:
                while chunk := data.read(256 * 1024):
                    self.write(chunk)
                    await self.flush()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


Make = Callable[[SnapshotRef, Listener], Awaitable[Any]]


def make_app(
    settings: ServiceSettings, refresh: Make, info: Make, hub_auth: Any, prefix: str
) -> web.Application:
    """`refresh(ref, emit)`: a `ServedSnapshot` of the item; `info(ref, emit)`: its name,
    kind, source id and ancestors (`hub/drive.py` in the service; stand-ins in tests)."""
    relist = settings.min_relist_seconds
    item = rf"(folder|file)/({ITEM_ID})"
    prefix = re.escape(prefix.rstrip("/") + "/")
    return web.Application(
        [
            (rf"{prefix}api/drive/{item}", SnapshotHandler),
            (rf"{prefix}api/drive/{item}/info", InfoHandler),
            (rf"{prefix}api/drive/{item}/bundle", BundleHandler),
        ],
        hub_auth=hub_auth,
        service_settings=settings,
        snapshots=SingleFlight(refresh, min_relist_seconds=relist),
        infos=SingleFlight(info, min_relist_seconds=max(relist, 60.0)),
    )


def listen_address(url: URL) -> tuple[str, int]:
    """Where the service listens, from the URL servers reach it at (`service_url`): that
    address when it is an IP address or localhost; otherwise every interface, since a name
    such as Kubernetes' `hub` names a Service in front of the hub's pod, not an address of
    the pod."""
    host = url.host or "127.0.0.1"
    port = url.port or 80
    if host == "localhost":
        return host, port
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "", port
    return host, port


def main() -> None:
    """`python -m privatepuller.hub.service`: run as the hub's managed service `privatepuller`
    (JupyterHub sets JUPYTERHUB_SERVICE_URL, _PREFIX and _API_TOKEN; `CanvasPassthrough`
    sets PRIVATEPULLER_SERVICE_SETTINGS and GOOGLE_APPLICATION_CREDENTIALS)."""

    logging.basicConfig(
        level=logging.INFO, format="[%(levelname)s %(asctime)s %(name)s] %(message)s"
    )
    settings = ServiceSettings.from_json(os.environ["PRIVATEPULLER_SERVICE_SETTINGS"])
    # One sync of an item at a time (single flight); the lock waits only when two flights
    # share an origin (the same folder linked with two resource keys, or as folder and file).
    config = SyncConfig(home=settings.home, lock_wait=LOCK_WAIT)
    drive = DriveSide(config, KeyFile(), find_ancestors=bool(settings.folder_groups))
    url = URL(os.environ["JUPYTERHUB_SERVICE_URL"])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
    app = make_app(settings, drive.refresh, drive.info, HubAuth(), prefix)
    host, port = listen_address(url)
    app.listen(port, host)
    log.info("privatepuller service: Drive through the hub at %s%s", url, prefix)
    IOLoop.current().start()


if __name__ == "__main__":
    main()
