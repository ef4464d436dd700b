"""A fake Google Drive v3 API and OAuth token endpoint, served over real HTTP.

Runs in-process on the current asyncio loop (aiohttp.web on 127.0.0.1, free port). It is
used by tests, benchmarks and ``privatepuller demo --drive``, and is meant to be driven by
the real google-auth and google-api-python-client: where they and the fake disagree, the
fake is wrong. Behaviour and error bodies follow ``reference/google-drive-api.md``.

    async with FakeDrive() as drive:
        key = drive.service_account_key()            # token_uri points at the fake
        folder = populate_demo(drive, share_with=key["client_email"])
        ...  # GOOGLE_DRIVE_API_URL=drive.api_url

Access model: an item is visible to the token's e-mail when it or an ancestor is shared
with that e-mail (a shared drive is shared with its members). Items created with
``needs_resource_key`` (and everything below them) are also "shared by link": they are
visible to anyone who sends ``X-Goog-Drive-Resource-Keys: <id>/<key>`` for the item or for
a link-shared ancestor. Shared-drive items additionally need ``supportsAllDrives=true``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import secrets
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from .. import issued
from . import errors as err
from .auth import (
    JWT_BEARER,
    AssertionRejected,
    assertion_key_id,
    new_private_key,
    service_account_info,
    verify_assertion,
)
from .content import (
    COLAB,
    EXPORT_FORMATS,
    FOLDER,
    SHORTCUT,
    Unsatisfiable,
    doc_kind,
    export_bytes,
    parse_range,
    synthetic_chunks,
)
from .demo import populate_demo
from .fields import FieldsError, Mask, apply_mask, parse_fields, validate_mask
from .model import CHECKSUMS, Caller, DriveModel, FakeItem
from .query import QueryError, parse_query

__all__ = [
    "COLAB",
    "DEFAULT_SA_EMAIL",
    "DRIVE_READONLY",
    "FOLDER",
    "SHORTCUT",
    "FakeDrive",
    "FakeItem",
    "FaultKind",
    "QuotaPolicy",
    "RecordedRequest",
    "TokenInfo",
    "populate_demo",
]

DEFAULT_SA_EMAIL = "privatepuller-hub@course-project.iam.gserviceaccount.com"
DRIVE_READONLY = "https://www.googleapis.com/auth/drive.readonly"
_SCOPE_PREFIX = "https://www.googleapis.com/auth/"
_CONTENT_SCOPES = {f"{_SCOPE_PREFIX}{s}" for s in ("drive", "drive.readonly", "drive.file")}
_METADATA_SCOPES = _CONTENT_SCOPES | {f"{_SCOPE_PREFIX}drive.metadata.readonly"}

FaultKind = Literal[
    "429",
    "403_userRateLimitExceeded",
    "403_rateLimitExceeded",
    "500",
    "503",
    "502_html",
    "reset",
    "stall",
    "401",
    "invalid_grant",
    "truncate",
    "stall_body",
    # One file's refusals (exact bodies of errors.py), for a download or an export ...
    "403_cannotDownloadAbusiveFile",
    "403_cannotDownloadFile",
    "403_downloadQuotaExceeded",
    "403_insufficientFilePermissions",
    "403_appNotAuthorizedToFile",
    "403_exportSizeLimitExceeded",
    # ... and refusals of every request of the account (not about one file).
    "403_domainPolicy",
    "403_dailyLimitExceeded",
    "403_insufficientPermissions",
]
_FAULT_KINDS = frozenset(get_args(FaultKind))

_DEFAULT_FILE_MASK: Mask = {"kind": None, "id": None, "name": None, "mimeType": None}
_DEFAULT_LIST_MASK: Mask = {
    "kind": None,
    "nextPageToken": None,
    "incompleteSearch": None,
    "files": dict(_DEFAULT_FILE_MASK),
}
_DEFAULT_DRIVE_MASK: Mask = {"kind": None, "id": None, "name": None}


# --- public records ----------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaPolicy:
    """One token bucket shared by every API request the fake serves (the service account
    is a single Drive "user", so all students share it). Throttled requests get 403
    ``userRateLimitExceeded`` or 429 ``rateLimitExceeded`` and, if set, ``Retry-After``
    (whole seconds, rounded up)."""

    rate: float = 10.0
    burst: int = 100
    status: int = 403
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.status not in (403, 429):
            raise ValueError("QuotaPolicy.status must be 403 or 429")
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("QuotaPolicy needs rate > 0 and burst >= 1")


@dataclass
class RecordedRequest:
    """One request as the fake saw it; ``status`` is 0 until answered (or if the
    connection was reset or stalled)."""

    method: str
    path_qs: str
    authorization: str | None
    headers: dict[str, str]  # of interest: X-Goog-Drive-Resource-Keys, Range
    status: int = 0
    fault: str | None = None
    throttled: bool = False
    email: str | None = None
    scope: str | None = None  # token requests: the scope asked for in the JWT

    @property
    def path(self) -> str:
        return urlsplit(self.path_qs).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.path_qs).query, keep_blank_values=True))

    @property
    def resource_keys(self) -> str | None:
        return self.headers.get("X-Goog-Drive-Resource-Keys")

    @property
    def range(self) -> str | None:
        return self.headers.get("Range")


@dataclass
class TokenInfo:
    email: str
    scope: str
    expires_at: float  # time.time()
    revoked: bool = False
    key_id: str | None = None  # the service-account key it was minted with (None: by hand)

    @property
    def valid(self) -> bool:
        return not self.revoked and time.time() < self.expires_at


# --- internals -----------------------------------------------------------------------------


class _Reply(Exception):
    """Raised by helpers to answer the request with ``response`` right away."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    kind: str
    remaining: int


@dataclass(frozen=True)
class _PageState:
    signature: tuple[Any, ...]
    offset: int
    page: int


class _TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _parse_resource_keys(header: str | None) -> dict[str, str]:
    keys: dict[str, str] = {}
    for pair in (header or "").split(","):
        file_id, sep, key = pair.strip().partition("/")
        if sep and file_id and key:
            keys[file_id] = key
    return keys


def _natural_key(name: str) -> list[Any]:
    return [
        (0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name.casefold())
    ]


_ORDER_KEYS: dict[str, Callable[[FakeItem], Any]] = {
    "name": lambda i: i.name.casefold(),
    "name_natural": lambda i: _natural_key(i.name),
    "folder": lambda i: 0 if i.is_folder else 1,
    "modifiedTime": lambda i: i.modified_time,
    "modifiedByMeTime": lambda i: i.modified_time,
    "recency": lambda i: i.modified_time,
    "viewedByMeTime": lambda i: i.modified_time,
    "createdTime": lambda i: i.created_time,
    "sharedWithMeTime": lambda i: i.created_time,
    "quotaBytesUsed": lambda i: i.size or 0,
    "starred": lambda i: 0,
}


def _parse_order_by(text: str | None) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for part in (text or "").split(","):
        words = part.split()
        if not words:
            continue
        if words[0] not in _ORDER_KEYS or len(words) > 2:
            raise _Reply(err.invalid_value("orderBy", f"Invalid orderBy: {part.strip()}"))
        if len(words) == 2 and words[1].lower() not in ("asc", "desc"):
            raise _Reply(err.invalid_value("orderBy", f"Invalid orderBy: {part.strip()}"))
        keys.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return keys


def _bool_param(query: Mapping[str, str], *names: str) -> bool:
    for name in names:
        value = query.get(name)
        if value is None:
            continue
        if value.lower() not in ("true", "false"):
            raise _Reply(err.invalid_value(name, f"Invalid boolean value: '{value}'"))
        if value.lower() == "true":
            return True
    return False


def _selects(mask: Mask, name: str) -> tuple[bool, Mask | None]:
    """Whether ``mask`` selects field ``name``, and the sub-mask (None = all of it)."""
    if "*" in mask:
        return True, None
    if name in mask:
        return True, mask[name]
    return False, None


def _wanted_checksums(file_mask: Mask | None) -> list[str]:
    if file_mask is None or "*" in file_mask:
        return list(CHECKSUMS.values())
    return [algo for f, algo in CHECKSUMS.items() if f in file_mask]


_RECORD = web.RequestKey("privatepuller_record", RecordedRequest)
_CALLER = web.RequestKey("privatepuller_caller", Caller)


# --- the fake ------------------------------------------------------------------------------


class FakeDrive(DriveModel):
    """Fake Drive v3 + token endpoint. See the module docstring."""

    def __init__(
        self, *, latency: float = 0.0, quota: QuotaPolicy | None = None, port: int = 0
    ) -> None:
        super().__init__()
        self.latency = latency
        self._quota = quota
        self.short_pages = False  # some list pages come back short or empty (with a token)
        self.requests: list[RecordedRequest] = []  # all but those to the token endpoint
        self.non_get_requests: list[RecordedRequest] = []  # not GET/HEAD, except POST /token
        self.token_requests: list[RecordedRequest] = []  # /token
        self.throttled_count = 0
        self.tokens: dict[str, TokenInfo] = {}
        self._port = port
        self._sa_emails: dict[str, str] = {}  # private_key_id -> client_email
        self._public_keys: dict[str, Any] = {}  # private_key_id -> RSA public key (rotated)
        self._faults: list[_Fault] = []
        self._page_tokens: dict[str, _PageState] = {}
        self._bucket: _TokenBucket | None = None
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._stopping: asyncio.Event | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._stopping = asyncio.Event()

        @web.middleware
        async def middleware(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            return await self._middleware(request, handler)

        app = web.Application(middlewares=[middleware], client_max_size=1024**2)
        api = "/drive/v3"
        app.router.add_route("*", "/token", self._handle_token)
        app.router.add_route("*", f"{api}/files", self._handle_list)
        app.router.add_route("*", f"{api}/files/{{file_id}}", self._handle_get)
        app.router.add_route("*", f"{api}/files/{{file_id}}/export", self._handle_export)
        app.router.add_route("*", f"{api}/drives", self._handle_drives_list)
        app.router.add_route("*", f"{api}/drives/{{drive_id}}", self._handle_drive)
        app.router.add_route("*", f"{api}/about", self._handle_about)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port)
        await site.start()
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._base_url = f"http://{host}:{port}"
        issued.running(self, True)

    async def stop(self) -> None:
        if self._runner is None:
            return
        assert self._stopping is not None
        self._stopping.set()  # releases stalled requests
        runner, self._runner = self._runner, None
        await runner.cleanup()
        issued.running(self, False)

    async def __aenter__(self) -> FakeDrive:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeDrive is not started")
        return self._base_url

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/drive/v3/"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def quota(self) -> QuotaPolicy | None:
        return self._quota

    @quota.setter
    def quota(self, policy: QuotaPolicy | None) -> None:
        """Replace the policy; the bucket starts full again."""
        self._quota, self._bucket = policy, None

    # --- credentials ----------------------------------------------------------------------

    def service_account_key(
        self, *, email: str = DEFAULT_SA_EMAIL, new_key: bool = False
    ) -> dict[str, str]:
        """A service-account key file's JSON (real RSA key) whose token_uri is this fake.
        `new_key`: another key of the account (a rotation), with its own `private_key_id`."""
        key = new_private_key() if new_key else None
        info = service_account_info(email, self.token_uri, key)
        self._sa_emails[info["private_key_id"]] = email
        if key is not None:
            self._public_keys[info["private_key_id"]] = key.public_key()
        return info

    def delete_key(self, key_id: str, *, revoke_tokens: bool = False) -> None:
        """The admin deletes a key: assertions signed with it are refused ("Invalid JWT
        Signature."); `revoke_tokens` also ends the access tokens minted with it."""
        self._sa_emails.pop(key_id, None)
        self._public_keys.pop(key_id, None)
        if revoke_tokens:
            for info in self.tokens.values():
                if info.key_id == key_id:
                    info.revoked = True

    def issue_token(
        self,
        email: str,
        *,
        expires_in: int = 3599,
        scope: str = DRIVE_READONLY,
        key_id: str | None = None,
    ) -> str:
        """Mint an access token directly, as the hub would hand one to a user server."""
        token = "ya29.c." + secrets.token_urlsafe(48)
        self.tokens[token] = TokenInfo(email, scope, time.time() + expires_in, key_id=key_id)
        issued.record(self, "Google access token", token)
        return token

    def expire_token(self, token: str) -> None:
        self.tokens[token].expires_at = time.time() - 1

    def revoke_token(self, token: str) -> None:
        self.tokens[token].revoked = True

    # --- faults -------------------------------------------------------------------------

    def inject_fault(self, path_regex: str, kind: FaultKind, times: int = 1) -> None:
        """The next ``times`` requests whose path+query matches ``path_regex`` (re.search)
        fail with ``kind``. Faults apply before authentication and quota, also on /token
        (where error bodies take the OAuth shape). ``reset`` drops the connection (RST);
        ``stall`` never answers (until ``stop()``); ``truncate`` serves the request normally
        but resets the connection after half the body; ``stall_body`` serves half the body of a
        download, then nothing until ``stop()``; ``invalid_grant`` is for /token. The
        ``403_<reason>`` kinds answer with Drive's exact body for that reason: one file's
        refusals (malware, downloads turned off, download quota, ...) and the account-wide ones
        (``domainPolicy``, ``dailyLimitExceeded``, ``insufficientPermissions``)."""
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(_FAULT_KINDS)}")
        self._faults.append(_Fault(re.compile(path_regex), kind, times))

    def clear_faults(self) -> None:
        self._faults.clear()

    # --- HTTP plumbing ------------------------------------------------------------------

    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        is_token = request.path == "/token"
        interesting = ("X-Goog-Drive-Resource-Keys", "Range")
        record = RecordedRequest(
            method=request.method,
            path_qs=request.path_qs,
            authorization=request.headers.get("Authorization"),
            headers={h: request.headers[h] for h in interesting if h in request.headers},
        )
        (self.token_requests if is_token else self.requests).append(record)
        if request.method not in ("GET", "HEAD") and not (is_token and request.method == "POST"):
            self.non_get_requests.append(record)
        request[_RECORD] = record
        try:
            response = await self._dispatch(request, handler, record, is_token)
        except _Reply as reply:
            response = reply.response
        except web.HTTPException as e:
            record.status = e.status
            raise
        if record.status == 0 and record.fault not in ("reset", "stall"):
            record.status = response.status
        return response

    async def _dispatch(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        record: RecordedRequest,
        is_token: bool,
    ) -> web.StreamResponse:
        is_api = request.path.startswith("/drive/")
        if is_api and self.latency > 0:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(request.path_qs)
        record.fault = fault
        if fault is not None and fault not in ("truncate", "stall_body"):
            return await self._fault_response(request, fault, is_token)
        if is_api:
            ctx = self._authenticate(request)
            record.email = ctx.email
            if request.method not in ("GET", "HEAD"):
                return err.insufficient_scopes()
            if not set(ctx.scope.split()) & _METADATA_SCOPES:
                return err.insufficient_scopes()
            if self.quota is not None and not self._take_quota():
                record.throttled = True
                return self._throttled_response()
            request[_CALLER] = ctx
        response = await handler(request)
        if fault in ("truncate", "stall_body") and isinstance(response, web.Response):
            stall = self._stopping if fault == "stall_body" else None
            return await _truncated(request, response, stall)
        return response

    def _take_fault(self, path_qs: str) -> str | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.pattern.search(path_qs):
                fault.remaining -= 1
                return fault.kind
        return None

    async def _fault_response(
        self, request: web.Request, kind: str, is_token: bool
    ) -> web.StreamResponse:
        if kind == "stall":
            assert self._stopping is not None
            await self._stopping.wait()
            kind = "reset"
        if kind == "reset":
            _abort(request)
            return web.Response(status=500)  # never sent
        if kind == "502_html":
            return err.html_502()
        if is_token:
            return _token_fault(kind)
        return {
            "429": lambda: err.rate_limit(429),
            "403_userRateLimitExceeded": err.user_rate_limit,
            "403_rateLimitExceeded": lambda: err.rate_limit(403),
            "500": lambda: err.backend_error(500),
            "503": lambda: err.backend_error(503),
            "401": err.auth_error,
            "invalid_grant": lambda: err.oauth_error(400, "invalid_grant", "Bad Request"),
            "403_cannotDownloadAbusiveFile": err.abusive_file,
            "403_cannotDownloadFile": err.cannot_download_file,
            "403_downloadQuotaExceeded": err.download_quota_exceeded,
            "403_insufficientFilePermissions": err.insufficient_file_permissions,
            "403_appNotAuthorizedToFile": lambda: err.app_not_authorized_to_file(
                request.match_info.get("file_id", "")
            ),
            "403_exportSizeLimitExceeded": err.export_too_large,
            "403_domainPolicy": err.domain_policy,
            "403_dailyLimitExceeded": err.daily_limit,
            "403_insufficientPermissions": err.insufficient_scopes,
        }[kind]()

    def _authenticate(self, request: web.Request) -> Caller:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        info = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if info is None or not info.valid:
            raise _Reply(err.auth_error())
        keys = _parse_resource_keys(request.headers.get("X-Goog-Drive-Resource-Keys"))
        return Caller(info.email, info.scope, keys)

    def _take_quota(self) -> bool:
        assert self._quota is not None
        if self._bucket is None:
            self._bucket = _TokenBucket(self._quota.rate, self._quota.burst)
        return self._bucket.take()

    def _throttled_response(self) -> web.Response:
        assert self.quota is not None
        self.throttled_count += 1
        headers = None
        if self.quota.retry_after is not None:
            headers = {"Retry-After": str(math.ceil(self.quota.retry_after))}
        if self.quota.status == 429:
            return err.rate_limit(429, headers)
        return err.user_rate_limit(headers)

    @staticmethod
    def _ctx(request: web.Request) -> Caller:
        return request[_CALLER]

    def _find(self, file_id: str, ctx: Caller, all_drives: bool) -> FakeItem:
        item = self._lookup(file_id, ctx, all_drives)
        if item is None:
            raise _Reply(err.not_found(file_id))
        return item

    def _mask(self, query: Mapping[str, str], schema: str, default: Mask) -> Mask:
        raw = query.get("fields")
        if raw is None or not raw.strip():
            return default
        try:
            mask = parse_fields(raw)
            validate_mask(mask, schema)
        except FieldsError as e:
            raise _Reply(err.invalid_fields(str(e))) from e
        return mask

    @staticmethod
    def _alt(query: Mapping[str, str]) -> str:
        alt = query.get("alt", "json")
        if alt not in ("json", "media"):
            raise _Reply(err.invalid_value("alt", f"Invalid value '{alt}' for alt"))
        return alt

    # --- handlers -------------------------------------------------------------------------

    async def _handle_list(self, request: web.Request) -> web.StreamResponse:
        ctx, query = self._ctx(request), request.query
        try:
            parsed = parse_query(query.get("q"))
        except QueryError as e:
            raise _Reply(err.invalid_value("q")) from e
        supports = _bool_param(query, "supportsAllDrives", "supportsTeamDrives")
        include = _bool_param(query, "includeItemsFromAllDrives", "includeTeamDriveItems")
        corpora = query.get("corpora", "user")
        drive_id = query.get("driveId") or query.get("teamDriveId")
        self._check_corpora(corpora, drive_id, include)
        page_size = self._page_size(query.get("pageSize"))
        order = _parse_order_by(query.get("orderBy"))
        mask = self._mask(query, "FileList", _DEFAULT_LIST_MASK)
        all_drives = supports and include

        signature = (ctx.email, query.get("q"), corpora, drive_id, all_drives, query.get("orderBy"))
        token = query.get("pageToken")
        if token:
            state = self._page_tokens.get(token)
            if state is None or state.signature != signature:
                raise _Reply(err.invalid_value("pageToken"))
        else:
            state = _PageState(signature, 0, 0)

        spaces = query.get("spaces", "drive").split(",")
        results = self._search(parsed, ctx, all_drives, corpora, drive_id)
        if "drive" not in (space.strip() for space in spaces):
            results = []  # appDataFolder/photos: the fake has nothing there
        results.sort(key=lambda i: i.id)
        for key, desc in reversed(order):
            results.sort(key=_ORDER_KEYS[key], reverse=desc)

        size = page_size
        if self.short_pages:
            size = (page_size, 0, max(1, page_size // 2))[state.page % 3]
        offset = min(state.offset, len(results))
        page = results[offset : offset + size]
        end = offset + len(page)
        body: dict[str, Any] = {"kind": "drive#fileList"}
        if end < len(results) or (self.short_pages and page and end == len(results)):
            next_token = "~!!~" + secrets.token_urlsafe(96)
            self._page_tokens[next_token] = _PageState(signature, end, state.page + 1)
            body["nextPageToken"] = next_token
        body["incompleteSearch"] = False
        wants_files, file_mask = _selects(mask, "files")
        if wants_files:
            await self._ensure_digests(page, _wanted_checksums(file_mask))
            body["files"] = [self._file_json(item, ctx, all_drives) for item in page]
        return err.json_response(apply_mask(body, mask))

    @staticmethod
    def _check_corpora(corpora: str, drive_id: str | None, include: bool) -> None:
        if corpora not in ("user", "domain", "drive", "allDrives"):
            allowed = "[allDrives, domain, drive, user]"
            msg = f"Invalid string value: '{corpora}'. Allowed values: {allowed}"
            raise _Reply(err.invalid_value("corpora", msg))
        if (corpora == "drive") != (drive_id is not None):
            msg = "The driveId parameter must be specified if and only if corpora is set to drive."
            raise _Reply(err.error_response(400, "teamDriveIdRequiresTeamDriveCorpora", msg))
        if corpora in ("drive", "allDrives") and not include:
            msg = (
                "The includeItemsFromAllDrives parameter must be set to true when driveId "
                "is specified or corpora contains drive or allDrives."
            )
            raise _Reply(err.error_response(403, "teamDriveInclusionRequired", msg))

    @staticmethod
    def _page_size(raw: str | None) -> int:
        if raw is None:
            return 100
        try:
            size = int(raw)
        except ValueError:
            raise _Reply(err.invalid_value("pageSize", f"Invalid value '{raw}'")) from None
        if size < 1:
            msg = f"Invalid value '{raw}'. Values must be within the range: [1, 1000]"
            raise _Reply(err.invalid_value("pageSize", msg))
        return min(size, 1000)

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        ctx, query = self._ctx(request), request.query
        all_drives = _bool_param(query, "supportsAllDrives", "supportsTeamDrives")
        alt = self._alt(query)
        mask = self._mask(query, "File", _DEFAULT_FILE_MASK) if alt == "json" else {}
        item = self._find(request.match_info["file_id"], ctx, all_drives)
        if alt == "media":
            return await self._download(request, item, ctx)
        await self._ensure_digests([item], _wanted_checksums(mask))
        return err.json_response(apply_mask(self._file_json(item, ctx, all_drives), mask))

    async def _download(
        self, request: web.Request, item: FakeItem, ctx: Caller
    ) -> web.StreamResponse:
        if not set(ctx.scope.split()) & _CONTENT_SCOPES:
            return err.insufficient_scopes()
        if not item.is_blob:
            return err.file_not_downloadable()
        refused = _refusal(item)
        if refused is not None:
            return refused
        size = item.size or 0
        try:
            span = parse_range(request.headers.get("Range"), size)
        except Unsatisfiable:
            return web.Response(
                status=416, headers={"Content-Range": f"bytes */{size}"}, content_type="text/plain"
            )
        start, end = span if span is not None else (0, size - 1)
        headers = {"Content-Type": item.mime_type}
        status = 200
        if span is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if item.content is not None:
            return web.Response(status=status, body=item.content[start : end + 1], headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = max(0, end - start + 1)
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        cut = request[_RECORD].fault in ("truncate", "stall_body")
        if cut:
            end = start + (end - start + 1) // 2 - 1
        try:
            for chunk in synthetic_chunks(item.id, item.version, start, end):
                await response.write(chunk)
        except ConnectionError:
            return response  # the client went away
        if request[_RECORD].fault == "stall_body":
            assert self._stopping is not None
            await self._stopping.wait()
        if cut:
            _abort(request)
        return response

    async def _handle_export(self, request: web.Request) -> web.StreamResponse:
        ctx, query = self._ctx(request), request.query
        target = query.get("mimeType")
        if not target:
            raise _Reply(err.required("mimeType"))
        item = self._find(request.match_info["file_id"], ctx, all_drives=True)
        if not set(ctx.scope.split()) & _CONTENT_SCOPES:
            return err.insufficient_scopes()
        if item.mime_type not in EXPORT_FORMATS and doc_kind(item.mime_type) is None:
            return err.file_not_exportable()
        if target not in EXPORT_FORMATS.get(item.mime_type, ()):
            return err.conversion_not_supported()
        refused = _refusal(item)
        if refused is not None:
            return refused
        if item.export_too_large:
            return err.export_too_large()
        body = export_bytes(item.id, item.version, item.mime_type, item.text, target)
        return web.Response(body=body, headers={"Content-Type": target})

    async def _handle_drive(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx(request)
        mask = self._mask(request.query, "Drive", _DEFAULT_DRIVE_MASK)
        drive_id = request.match_info["drive_id"]
        item = self._items.get(drive_id)
        if item is None or not item.is_shared_drive or ctx.email not in item.shared_with:
            return err.drive_not_found(drive_id)
        return err.json_response(apply_mask(self._drive_json(item), mask))

    async def _handle_drives_list(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx(request)
        default: Mask = {"kind": None, "nextPageToken": None, "drives": dict(_DEFAULT_DRIVE_MASK)}
        mask = self._mask(request.query, "DriveList", default)
        drives = [
            self._drive_json(i)
            for i in self._items.values()
            if i.is_shared_drive and ctx.email in i.shared_with
        ]
        return err.json_response(apply_mask({"kind": "drive#driveList", "drives": drives}, mask))

    async def _handle_about(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx(request)
        if not request.query.get("fields", "").strip():
            raise _Reply(
                err.required("fields", "The 'fields' parameter is required for this method.")
            )
        mask = self._mask(request.query, "About", {})
        about = {
            "kind": "drive#about",
            "user": {
                "kind": "drive#user",
                "displayName": ctx.email.partition("@")[0],
                "me": True,
                "permissionId": hashlib.md5(ctx.email.encode()).hexdigest()[:20],
                "emailAddress": ctx.email,
            },
            "storageQuota": {"limit": "16106127360", "usage": "0", "usageInDrive": "0"},
            "importFormats": {},
            "exportFormats": {src: list(targets) for src, targets in EXPORT_FORMATS.items()},
            "maxImportSizes": {},
            "maxUploadSize": "5242880000000",
            "appInstalled": False,
            "canCreateDrives": False,
        }
        return err.json_response(apply_mask(about, mask))

    async def _handle_unknown(self, request: web.Request) -> web.StreamResponse:
        return err.html_404(request.path)

    # --- token endpoint -------------------------------------------------------------------

    async def _handle_token(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return err.html_404(request.path)  # Google answers 404 to a GET on /token
        form = await request.post()
        grant_type = str(form.get("grant_type", ""))
        if grant_type != JWT_BEARER:
            msg = f"Invalid grant_type: {grant_type}"
            return err.oauth_error(400, "unsupported_grant_type", msg)
        try:
            assertion = str(form.get("assertion", ""))
            claims = verify_assertion(assertion, self._sa_emails, self._public_keys)
        except AssertionRejected as e:
            return err.oauth_error(400, e.error, e.description)
        email, scope = str(claims["iss"]), str(claims["scope"]).strip()
        record = request[_RECORD]
        record.email, record.scope = email, scope
        token = self.issue_token(email, scope=scope, key_id=assertion_key_id(assertion))
        body = {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        return err.json_response(body)


def _abort(request: web.Request) -> None:
    """Drop the connection with a TCP RST (a "connection reset by peer" for the client)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _truncated(
    request: web.Request, response: web.Response, stall: asyncio.Event | None = None
) -> web.StreamResponse:
    """Send ``response``'s headers (full Content-Length) and half its body, then reset (after
    ``stall`` is set, if given)."""
    body = response.body if isinstance(response.body, bytes) else b""
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    try:
        await stream.write(body[: len(body) // 2])
    except ConnectionError:
        return stream
    if stall is not None:
        await stall.wait()
    _abort(request)
    return stream


def _refusal(item: FakeItem) -> web.Response | None:
    """A per-file refusal of a download or an export, if the item has one."""
    if not item.can_download:
        return err.insufficient_file_permissions()
    if item.abusive:  # acknowledgeAbuse is ignored: a reader can't override it
        return err.abusive_file()
    if item.download_quota_exceeded:
        return err.download_quota_exceeded()
    return None


def _token_fault(kind: str) -> web.Response:
    """Faults on the token endpoint, in the OAuth error shape google-auth parses."""
    if kind == "invalid_grant":
        return err.oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
    if kind == "401":
        return err.oauth_error(401, "invalid_client", "The OAuth client was not found.")
    if kind in ("429", "403_userRateLimitExceeded", "403_rateLimitExceeded"):
        status = 429 if kind == "429" else 403
        return err.oauth_error(status, "rate_limit_exceeded", "Rate Limit Exceeded")
    if kind.startswith("403_"):  # Drive API refusals have no token-endpoint form
        return err.oauth_error(403, "access_denied", "Forbidden")
    return err.oauth_error(int(kind), "internal_failure", "Backend Error")
