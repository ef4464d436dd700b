"""Drive through the hub: a student's server asks the hub's `privatepuller` service.

The service (`privatepuller.hub.service`) holds the service-account key and syncs the folder
once for everyone; this server sends it its own JupyterHub token (in the `Authorization`
header), hears its progress, and fetches the snapshot's git objects (a bundle beyond the
commit it has) into its local origin. The merge then happens here, exactly as for any link.
No Google token is ever in this server.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yarl import URL

from ...credentials.tokens import StaticToken
from ...errors import (
    DownloadFailed,
    LoginExpired,
    NoAccess,
    NotConfigured,
    NotFound,
    PullError,
    RateLimited,
    SyncBusy,
    TooBig,
    UnsupportedURL,
)
from ...http.backoff import BackoffPolicy, Verdict
from ...http.origin import Origin
from ...http.session import JSON_BODY_LIMIT, TRANSFER_ERRORS, HTTPStatusError, SessionOptions
from ...sync.bundle import fetch_bundle, store_fetched
from ...sync.config import SyncConfig
from ...sync.progress import NullProgress, Progress
from ...sync.source import Listing, RemoteFile, Skipped, SkipReason, SyncSkip
from ...sync.store import Snapshot
from .links import DriveLink, GoogleDriveFolderLink
from .skips import DriveSkip

SERVICE_URL_ENV = "PRIVATEPULLER_SERVICE_URL"
RESOURCE_KEY_HEADER = "X-Drive-Resource-Key"
# The longest line of the service's progress stream: its last line is the snapshot's report,
# one row per file (a listing of 100,000 files is a few MiB).
MAX_LINE = JSON_BODY_LIMIT
# What a service that stops answering part way raises (a cut connection, a stalled stream).
CUT_OFF = (PullError, OSError, ValueError, *TRANSFER_ERRORS)

UNREACHABLE = (
    "The hub's file service (privatepuller) is not answering, so the Drive folder could not be "
    "copied. Nothing in your folder was changed. Try again in a few minutes; if it keeps "
    "happening, tell your hub administrator."
)
REFUSED = (
    "The hub's file service did not accept this server's login. Restart your server (File → "
    "Hub Control Panel → Stop My Server, then start it) and click the link again."
)

# Errors the service reports, by code: the message it sends is already for the student.
ERRORS: dict[str, type[PullError]] = {
    cls.code: cls
    for cls in (
        NoAccess,
        NotConfigured,
        NotFound,
        RateLimited,
        DownloadFailed,
        TooBig,
        UnsupportedURL,
        LoginExpired,
        SyncBusy,
    )
}


def classify_service(status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
    if status < 400:
        return Verdict.OK
    if status == 429:
        return Verdict.THROTTLED
    if status in (502, 503, 504):  # the proxy while the service (re)starts
        return Verdict.SERVER_ERROR
    return Verdict.FAIL


SERVICE_POLICY = BackoffPolicy("privatepuller service", classify_service, max_attempts=5)


@dataclass(frozen=True)
class HubService:
    """Where the hub's service is, and this server's JupyterHub token for it."""

    url: URL  # ends in "/"
    token: str = field(repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HubService | None:
        environ = os.environ if environ is None else environ
        url = environ.get(SERVICE_URL_ENV, "").strip()
        token = environ.get("JUPYTERHUB_API_TOKEN", "").strip()
        if not url or not token:
            return None
        return cls(URL(url.rstrip("/") + "/"), token)


@dataclass(frozen=True)
class HubDriveItem:
    """A Drive folder or file the hub's service can see: the repo of a Drive link resolved
    through the hub."""

    link: DriveLink = field(repr=False)  # carries the resource key
    name: str
    kind: str  # "folder" | "file"
    source_id: str

    immutable = False


@dataclass(frozen=True)
class HubSnapshot:
    """A snapshot of a Drive item on the hub: what this server fetches and merges."""

    link: DriveLink
    name: str
    commit: str
    source_id: str  # names this server's local origin (as a direct sync of the item would)
    report: dict[str, Any]


def _item_path(link: DriveLink) -> str:
    if isinstance(link, GoogleDriveFolderLink):
        return f"api/drive/folder/{link.folder_id}"
    return f"api/drive/file/{link.file_id}"


class HubClient:
    def __init__(self, service: HubService, options: SessionOptions | None = None) -> None:
        self.service = service
        # The service's progress stream pauses while Drive is slow: no minimum pace, but a
        # keepalive line at least every 10 s (the read timeout stays).
        base = options or SessionOptions(SERVICE_POLICY)
        self.options = SessionOptions(
            SERVICE_POLICY.scaled(base.policy.base_delay / SERVICE_POLICY.base_delay)
            if options
            else SERVICE_POLICY,
            read_timeout=max(base.read_timeout, 30.0),
            min_throughput=0.0,
        )

    def _headers(self, link: DriveLink) -> dict[str, str]:
        return {RESOURCE_KEY_HEADER: link.resource_key} if link.resource_key else {}

    def _session(self):  # -> ReadOnlySession
        return self.options.session(Origin.of(self.service.url), StaticToken(self.service.token))

    async def info(self, link: DriveLink) -> HubDriveItem:
        """The item's name as the hub sees it (the service checks the link with Drive, and
        whether this student may have it)."""
        url = self.service.url / _item_path(link) / "info"
        try:
            async with self._session() as session:
                data, _ = await session.get_json(url, headers=self._headers(link))
        except HTTPStatusError as error:
            raise _status_error(error) from None
        except CUT_OFF:
            raise DownloadFailed(UNREACHABLE) from None
        if not isinstance(data, dict) or "error" in data:
            raise _service_error((data or {}).get("error") or {})
        return HubDriveItem(link, str(data["name"]), str(data["kind"]), str(data["source_id"]))

    async def snapshot(self, link: DriveLink, progress: Progress) -> HubSnapshot:
        """Ask the service for the item's latest snapshot, relaying its progress."""
        url = self.service.url / _item_path(link)
        answer: Mapping[str, Any] | None = None
        try:
            async with (
                self._session() as session,
                session.request("GET", url, headers=self._headers(link)) as response,
            ):
                async for line in _lines(response.content):
                    event = json.loads(line) if line.strip() else {}
                    if "snapshot" in event or "error" in event:
                        answer = event
                        break
                    relay(event, progress)
        except HTTPStatusError as error:
            raise _status_error(error) from None
        except CUT_OFF:
            # The service did not answer (down, restarting, cut off): say so, not the URL.
            raise DownloadFailed(UNREACHABLE) from None
        if answer is None:
            raise DownloadFailed(UNREACHABLE)
        if "error" in answer:
            raise _service_error(answer["error"])
        data = answer["snapshot"]
        return HubSnapshot(
            link,
            str(data["name"]),
            str(data["commit"]),
            str(data["source_id"]),
            dict(data.get("report") or {}),
        )

    async def fetch(self, snapshot: HubSnapshot, origin: Path, have: str | None) -> None:
        """Fetch the snapshot's objects beyond `have` into the bare origin `origin`."""
        url = self.service.url / _item_path(snapshot.link) / "bundle"
        params = {"commit": snapshot.commit, **({"have": have} if have else {})}
        fd, name = tempfile.mkstemp(dir=origin, prefix="privatepuller-", suffix=".bundle")
        os.close(fd)
        bundle = Path(name)
        try:
            try:
                async with (
                    self._session() as session,
                    session.request(
                        "GET", url, params=params, headers=self._headers(snapshot.link)
                    ) as response,
                ):
                    if response.status == 204:
                        return  # this server has the snapshot already
                    with bundle.open("wb") as out:
                        async for chunk in response.content.iter_chunked(256 * 1024):
                            out.write(chunk)
            except HTTPStatusError as error:
                raise _status_error(error) from None
            except CUT_OFF:
                raise DownloadFailed(UNREACHABLE) from None
            fetch_bundle(origin, bundle, snapshot.commit)
        finally:
            bundle.unlink(missing_ok=True)


class HubDriveSource:
    """A Drive item synced by the hub's service: its snapshot is fetched, not listed here."""

    def __init__(self, client: HubClient, item: HubDriveItem) -> None:
        self.client = client
        self.item = item

    @property
    def source_id(self) -> str:
        return self.item.source_id

    async def list(self) -> Listing[None]:
        """The hub's snapshot as a listing: its files, and what it leaves out."""
        report = (await self.client.snapshot(self.item.link, NullProgress())).report
        rows = report.get("paths")
        files = tuple(
            RemoteFile(row[0], row[1], f"hub:{row[0]}", None)
            for row in (rows if isinstance(rows, list) else [])
            if isinstance(row, list)
            and len(row) == 2
            and isinstance(row[0], str)
            and isinstance(row[1], int)
        )
        left_out = (*_skipped(report.get("excluded")), *_skipped(report.get("skipped")))
        return Listing(self.item.name, files, left_out)

    async def store(self, config: SyncConfig, progress: Progress) -> Snapshot:
        snapshot = await self.client.snapshot(self.item.link, progress)
        report = snapshot.report

        async def fetch(origin: Path, have: str | None) -> None:
            await self.client.fetch(snapshot, origin, have)

        return await store_fetched(
            config,
            source_id=snapshot.source_id,
            name=snapshot.name,
            commit=snapshot.commit,
            fetch=fetch,
            excluded=_skipped(report.get("excluded")),
            skipped=_skipped(report.get("skipped")),
            kept=tuple(str(path) for path in report.get("kept") or ()),
        )


REASONS: dict[str, SkipReason] = {reason.value: reason for reason in (*SyncSkip, *DriveSkip)}


def _skipped(rows: object) -> tuple[Skipped, ...]:
    """The service's report of files left out (JSON), as the engine's `Skipped`."""
    found: list[Skipped] = []
    for row in rows if isinstance(rows, list) else ():
        if isinstance(row, dict) and isinstance(row.get("path"), str):
            reason = REASONS.get(str(row.get("reason")), DriveSkip.REFUSED)
            found.append(Skipped(row["path"], reason, str(row.get("detail") or "")))
    return tuple(found)


def skipped_rows(skipped: Iterable[Skipped]) -> list[dict[str, str]]:
    """`Skipped` as the service reports them (JSON)."""
    return [{"path": s.path, "reason": s.reason.value, "detail": s.detail} for s in skipped]


async def _lines(content: Any) -> AsyncIterator[bytes]:
    """The lines of the service's stream (an aiohttp `StreamReader`), each at most `MAX_LINE`
    bytes (aiohttp's own `readline` stops at twice its read buffer)."""
    pending = bytearray()
    async for chunk in content.iter_any():
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            yield bytes(pending[:end])
            del pending[: end + 1]
        if len(pending) > MAX_LINE:
            raise ValueError("a line of the service's stream is too long")
    if pending:
        yield bytes(pending)


def relay(event: Mapping[str, Any], progress: Progress) -> None:
    """The service's progress, shown as if this server listed and downloaded itself."""
    if "listed" in event:
        files, nbytes = event["listed"]
        progress.listed(int(files), int(nbytes))
    elif "file" in event:
        path, size = event["file"]
        progress.file_done(str(path), int(size))
    elif "waiting" in event:
        seconds, provider = event["waiting"]
        progress.waiting(float(seconds), str(provider))
    elif "note" in event:
        progress.note(str(event["note"]))
    elif "output" in event:
        progress.git_output(str(event["output"]))


def _service_error(error: Mapping[str, Any]) -> PullError:
    cls = ERRORS.get(str(error.get("code")), DownloadFailed)
    return cls(str(error.get("message") or UNREACHABLE))


def _status_error(error: HTTPStatusError) -> PullError:
    if error.status in (401, 403):
        try:
            message = json.loads(error.body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = ""
        if error.status == 403 and message and "token" not in message:
            return NoAccess(message)
        return LoginExpired(REFUSED)
    return DownloadFailed(UNREACHABLE)
