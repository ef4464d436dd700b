"""The Drive v3 calls privatepuller makes (all GET), with paging, resource keys and clear errors.

Every call goes through the one `ReadOnlySession` (GET only, token only to the Drive API
origin, `GOOGLE_POLICY` backoff: 429, 403 `userRateLimitExceeded`/`rateLimitExceeded` and 5xx are
retried; 400, 404 and other 403s are not). Statuses the policy does not retry become errors a
student (or instructor, or admin) can act on; see `drive_error`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from yarl import URL

from ...credentials.sources import GoogleCredentials
from ...errors import (
    ConfigurationError,
    DownloadFailed,
    ListingFailed,
    LoginExpired,
    NoAccess,
    NotFound,
    PullError,
    RateLimited,
    hub_or_alone,
)
from ...http.session import (
    HTTPStatusError,
    ReadOnlySession,
    ResponseTooLarge,
    SessionOptions,
)
from ...sizes import size_text
from ...sync.source import EntryCount, ListingLimits, SkipFile, SyncSkip
from .links import ID_RE, RESOURCE_KEY_RE
from .policy import google_error_reason
from .skips import DriveSkip

PAGE_SIZE = 1000  # Drive's maximum
MAX_KEYS_PER_REQUEST = 20  # X-Goog-Drive-Resource-Keys: the item and its nearest ancestors
RESOURCE_KEYS_HEADER = "X-Goog-Drive-Resource-Keys"

# Enough of each File for syncing (change keys, exports, shortcuts, shared drives, keys).
FILE_FIELDS = (
    "id,name,mimeType,size,md5Checksum,version,modifiedTime,createdTime,trashed,driveId,"
    "resourceKey,capabilities(canDownload),shortcutDetails(targetId,targetMimeType,"
    "targetResourceKey)"
)
LIST_FIELDS = f"nextPageToken,incompleteSearch,files({FILE_FIELDS})"

# (method, path template) of every Drive call below: all reads.
ENDPOINTS = (
    ("GET", "/drive/v3/files"),  # list a folder's children
    ("GET", "/drive/v3/files/:id"),  # metadata (alt=json) and blob content (alt=media)
    ("GET", "/drive/v3/files/:id/export"),  # Docs, Sheets, Slides, Drawings
    ("GET", "/drive/v3/drives/:id"),  # a shared drive's name
    ("GET", "/drive/v3/about"),  # the service account's e-mail, for "share it with ..."
)


class DriveAPI:
    def __init__(
        self,
        session: ReadOnlySession,
        base: URL,
        account_email: str | None,
        limits: ListingLimits | None = None,
    ) -> None:
        self.session = session
        self.base = base
        self.account_email = account_email
        self.limits = limits or ListingLimits()
        self._resource_keys: dict[str, str] = {}  # item id -> resource key

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        credentials: GoogleCredentials,
        options: SessionOptions,
        limits: ListingLimits | None = None,
    ) -> AsyncIterator[DriveAPI]:
        async with options.session(credentials.origin, credentials.tokens) as session:
            yield cls(session, credentials.api_url, credentials.account_email, limits)

    # --- resource keys --------------------------------------------------------------------

    def remember_resource_key(self, item_id: str, resource_key: str | None) -> None:
        """Keep a resource key (from a link, `resourceKey` or `targetResourceKey`)."""
        if resource_key and RESOURCE_KEY_RE.match(resource_key) and ID_RE.match(item_id):
            self._resource_keys[item_id] = resource_key

    def resource_key(self, item_id: str) -> str | None:
        return self._resource_keys.get(item_id)

    def headers(self, chain: Iterable[str]) -> dict[str, str]:
        """`X-Goog-Drive-Resource-Keys` for an item and its ancestors (nearest first)."""
        pairs: list[str] = []
        for item_id in chain:
            resource_key = self._resource_keys.get(item_id)
            if resource_key is not None and f"{item_id}/{resource_key}" not in pairs:
                pairs.append(f"{item_id}/{resource_key}")
        if len(pairs) > MAX_KEYS_PER_REQUEST:  # keep the nearest ones and the link's root
            pairs = pairs[: MAX_KEYS_PER_REQUEST - 1] + pairs[-1:]
        return {RESOURCE_KEYS_HEADER: ",".join(pairs)} if pairs else {}

    # --- calls ----------------------------------------------------------------------------

    def files_url(self, *segments: str) -> URL:
        url = self.base / "files"
        for segment in segments:
            url = url / segment
        return url

    async def get_file(
        self, file_id: str, *, what: str, chain: Iterable[str] = ()
    ) -> dict[str, Any]:
        params = {"fields": FILE_FIELDS, "supportsAllDrives": "true"}
        data = await self._get_json(
            self.files_url(file_id), params, self.headers([file_id, *chain]), what
        )
        if not isinstance(data, dict) or data.get("id") != file_id:
            raise ListingFailed(f"Google Drive returned something unexpected for {what}.")
        return data

    async def parents(self, item_id: str, *, chain: Iterable[str] = ()) -> list[str]:
        """The folders an item is in (at most one since 2020), for checks on its ancestors."""
        params = {"fields": "id,parents", "supportsAllDrives": "true"}
        data = await self._get_json(
            self.files_url(item_id), params, self.headers([item_id, *chain]), "a folder above"
        )
        parents = data.get("parents") if isinstance(data, dict) else None
        return [p for p in parents if isinstance(p, str)] if isinstance(parents, list) else []

    async def list_children(
        self,
        folder_id: str,
        *,
        what: str,
        chain: Iterable[str] = (),
        drive_id: str | None = None,
        entries: EntryCount | None = None,
    ) -> list[dict[str, Any]]:
        """Every child of a folder that is not in the trash, following `nextPageToken` until it
        is absent (pages may be short or empty while a token is still present).

        At most `limits.max_pages` pages; the children are counted in `entries` (shared by a
        whole folder tree), else against `limits.max_entries` for this folder alone.
        """
        entries = entries or EntryCount(self.limits, f"Google Drive's list of {what}")
        params: dict[str, str] = {
            "q": f"'{folder_id}' in parents and trashed = false",
            "fields": LIST_FIELDS,
            "pageSize": str(PAGE_SIZE),
            "supportsAllDrives": "true",
            "includeItemsFromAllDrives": "true",
        }
        if drive_id is not None and ID_RE.match(drive_id):
            params |= {"corpora": "drive", "driveId": drive_id}
        headers = self.headers([folder_id, *chain])
        items: list[dict[str, Any]] = []
        seen_tokens: set[str] = set()
        token: str | None = None
        for _ in range(self.limits.max_pages):
            page_params = params if token is None else {**params, "pageToken": token}
            data = await self._get_json(self.files_url(), page_params, headers, what)
            if not isinstance(data, dict) or not isinstance(data.get("files", []), list):
                raise ListingFailed(f"Google Drive returned something unexpected for {what}.")
            if data.get("incompleteSearch"):
                # A partial listing would delete files from the snapshot: refuse it.
                raise ListingFailed(
                    f"Google Drive could list only part of {what}. Nothing was changed; try "
                    "again in a few minutes."
                )
            page = [f for f in data.get("files", []) if isinstance(f, dict)]
            entries.add(len(page))
            items.extend(page)
            token = data.get("nextPageToken") or None
            if token is None:
                return items
            if token in seen_tokens:
                raise ListingFailed(f"Google Drive returned a looping page list for {what}.")
            seen_tokens.add(token)
        raise self.limits.too_many(f"Google Drive's list of {what}", self.limits.max_pages, "pages")

    async def download_blob(
        self,
        file_id: str,
        dest: Path,
        *,
        what: str,
        chain: Iterable[str] = (),
        max_bytes: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        params = {"alt": "media", "supportsAllDrives": "true"}
        return await self._download(
            self.files_url(file_id), dest, params, [file_id, *chain], what, max_bytes, on_bytes
        )

    async def export(
        self,
        file_id: str,
        mime_type: str,
        dest: Path,
        *,
        what: str,
        chain: Iterable[str] = (),
        max_bytes: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        # As google-api-python-client's `export_media` sends it (alt=media).
        params = {"mimeType": mime_type, "alt": "media"}
        url = self.files_url(file_id, "export")
        return await self._download(url, dest, params, [file_id, *chain], what, max_bytes, on_bytes)

    async def shared_drive_name(self, drive_id: str) -> str | None:
        try:
            data = await self._get_json(
                self.base / "drives" / drive_id, {"fields": "id,name"}, {}, "the shared drive"
            )
        except (NotFound, NoAccess):
            return None
        return str(data["name"]) if isinstance(data, dict) and data.get("name") else None

    async def service_account_email(self) -> str | None:
        """The e-mail instructors must share with: from the key file, else from `about`."""
        if self.account_email:
            return self.account_email
        try:
            data = await self._get_json(
                self.base / "about", {"fields": "user(emailAddress)"}, {}, "the hub's account"
            )
            email = data.get("user", {}).get("emailAddress") if isinstance(data, dict) else None
        except PullError:
            return None
        if isinstance(email, str) and "@" in email:
            self.account_email = email
        return self.account_email

    async def share_with_text(self) -> str:
        email = await self.service_account_email()
        if email:
            return email
        return "the hub's Google service account (your hub administrator knows its address)"

    # --- plumbing -------------------------------------------------------------------------

    async def _get_json(
        self, url: URL, params: Mapping[str, str], headers: Mapping[str, str], what: str
    ) -> Any:
        try:
            data, _ = await self.session.get_json(url, params=params, headers=headers)
        except HTTPStatusError as error:
            raise drive_error(error, what, self.account_email, download=False) from None
        except (LoginExpired, RateLimited) as error:
            raise _session_error(error) from None
        except ValueError:
            raise ListingFailed(f"Google Drive returned something unexpected for {what}.") from None
        return data

    async def _download(
        self,
        url: URL,
        dest: Path,
        params: Mapping[str, str],
        chain: list[str],
        what: str,
        max_bytes: int | None,
        on_bytes: Callable[[int], None] | None,
    ) -> int:
        try:
            return await self.session.download(
                url,
                dest,
                params=params,
                headers=self.headers(chain),
                max_bytes=max_bytes,
                on_bytes=on_bytes,
            )
        except HTTPStatusError as error:
            # One file Drive will not send (malware, downloads turned off, its download
            # quota) is skipped and reported; a refusal of the whole account fails the sync.
            skip = file_refusal(error, what)
            raise skip or drive_error(error, what, self.account_email) from None
        except (LoginExpired, RateLimited) as error:
            raise _session_error(error) from None
        except ResponseTooLarge as error:
            # Larger than the listing said (exports have no size): excluded like any file
            # over the limit.
            raise SkipFile(SyncSkip.TOO_LARGE, f"more than {size_text(error.limit)}") from None


TOKEN_REFUSED = (
    "Google Drive refused the hub's access token: it has expired or was revoked. Stop and "
    "start your server from the hub's control panel to get a fresh one; if that does not "
    "help, tell your hub administrator."
)
TOKEN_REFUSED_ALONE = (
    "Google Drive refused the access token (GOOGLE_DRIVE_ACCESS_TOKEN, or the one made with "
    "the key in GOOGLE_APPLICATION_CREDENTIALS): it has expired or was revoked. Set a fresh "
    "token, or check that the service account and its key still exist, then try again."
)


def _session_error(error: LoginExpired | RateLimited) -> PullError:
    if isinstance(error, LoginExpired):
        return LoginExpired(hub_or_alone(hub=TOKEN_REFUSED, alone=TOKEN_REFUSED_ALONE))
    return RateLimited(
        "Google Drive is limiting how fast this hub can download (everyone on the hub shares "
        "one Drive quota), and it did not let up in time. Nothing was changed; try again in a "
        "few minutes."
    )


# 403 reasons about the hub's account or project, not one file: they fail the whole sync.
# (The rate limits are retried by the session first; `usageLimits` covers the other quotas.)
ACCOUNT_REASONS = frozenset(
    {
        "insufficientPermissions",  # the token lacks drive.readonly
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        "domainPolicy",  # the account's Workspace domain does not allow the app
        "dailyLimitExceeded",
        "quotaExceeded",
        "userRateLimitExceeded",
        "rateLimitExceeded",
    }
)
# One file's 403 on a download or export -> the reason it is reported under and what would
# help.
FILE_REFUSALS: dict[str, tuple[DriveSkip, str]] = {
    # Only the owner may download a flagged file, with acknowledgeAbuse=true: never sent.
    "cannotDownloadAbusiveFile": (
        DriveSkip.ABUSIVE,
        "ask your instructor to check it and replace it",
    ),
    "cannotDownloadFile": (
        DriveSkip.DOWNLOAD_DISABLED,
        "ask your instructor to allow downloading, or to share it as Editor",
    ),
    "insufficientFilePermissions": (
        DriveSkip.DOWNLOAD_DISABLED,
        "ask your instructor to allow downloading, or to share it as Editor",
    ),
    "downloadQuotaExceeded": (
        DriveSkip.DOWNLOAD_QUOTA,
        "it was downloaded too many times; this usually clears within 24 hours",
    ),
    "fileNotDownloadable": (DriveSkip.NOT_DOWNLOADABLE, "Google Drive cannot send it in this form"),
    "fileNotExportable": (DriveSkip.NOT_DOWNLOADABLE, "Google Drive cannot send it in this form"),
}


def file_refusal(error: HTTPStatusError, what: str) -> SkipFile | None:
    """A 403 on one file's download or export -> `SkipFile` (that file is skipped and
    reported, the others are synced); None for refusals of the whole account (scope, domain
    policy, quotas), which fail the sync like any listing error."""
    if error.status != 403:
        return None
    reason = google_error_reason(error.body) or ""
    if reason in ACCOUNT_REASONS or _error_domain(error.body) == "usageLimits":
        return None
    if reason == "exportSizeLimitExceeded":
        skip = drive_error(error, what)  # its own words: "too large for Google to convert"
        return skip if isinstance(skip, SkipFile) else None
    if reason in FILE_REFUSALS:
        return SkipFile(*FILE_REFUSALS[reason])
    return SkipFile(
        DriveSkip.REFUSED, f"Google Drive answered 403{f' ({reason})' if reason else ''}"
    )


def _error_domain(body: bytes) -> str | None:
    """`error.errors[0].domain` of a Drive error body, or None."""
    try:
        return str(json.loads(body)["error"]["errors"][0]["domain"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def drive_error(
    error: HTTPStatusError, what: str, email: str | None = None, *, download: bool = True
) -> PullError | SkipFile:
    """Drive statuses the policy does not retry -> errors for people (no token, no query);
    a status that says nothing more fails the listing, or the `download`."""
    failed = DownloadFailed if download else ListingFailed
    reason = google_error_reason(error.body) or ""
    share = email or "the hub's Google service account"
    if error.status == 404:
        return NotFound(
            f"Google Drive could not find {what}: it was deleted, or it is no longer shared "
            f"with {share}."
        )
    if error.status == 403:
        if reason == "downloadQuotaExceeded":
            return DownloadFailed(
                f"Google Drive will not let anyone download {what} for now: it was downloaded "
                "too many times and its download quota is used up (this usually clears within "
                "24 hours). Ask your instructor to put a fresh copy in the folder, or try again "
                "tomorrow."
            )
        if reason == "cannotDownloadAbusiveFile":
            return NoAccess(
                f"Google Drive flagged {what} as malware or spam and does not let anyone "
                "download it. Ask your instructor to check the file and replace it."
            )
        if reason == "insufficientFilePermissions":
            return NoAccess(
                f"The hub may see {what} but not download it: its owner turned off "
                "downloading for viewers. Ask your instructor to allow downloading, or to "
                "share it as Editor."
            )
        if reason == "exportSizeLimitExceeded":
            return SkipFile(
                DriveSkip.EXPORT_TOO_LARGE,
                f"{what} is too large for Google to convert (Google exports at most 10 MB). "
                "Ask your instructor to split it or to upload it as a file (File → Download).",
            )
        if reason in ("fileNotDownloadable", "fileNotExportable"):
            return DownloadFailed(f"Google Drive cannot download {what} in this form.")
        if reason in ("dailyLimitExceeded", "quotaExceeded"):
            return RateLimited(
                "Google Drive's daily limit for this hub's account is used up (everyone on the "
                "hub shares it). Nothing was changed; try again later, and tell your hub "
                "administrator if it keeps happening."
            )
        if reason in ("insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"):
            return ConfigurationError(
                "The hub's Google token does not carry the drive.readonly scope. Ask your hub "
                "administrator to mint it with https://www.googleapis.com/auth/drive.readonly."
            )
        if reason in ("domainPolicy", "appNotAuthorizedToFile"):
            return NoAccess(
                f"A Google Workspace policy of the owner's organisation does not let the hub "
                f"read {what}. Ask your instructor to share it from an account without that "
                "restriction."
            )
        return NoAccess(
            f"Google Drive refused access to {what}"
            + (f" ({reason})" if reason else "")
            + f". Ask your instructor to share it with {share}."
        )
    if error.status == 400:
        return failed(
            f"Google Drive rejected the request for {what}"
            + (f" ({reason})" if reason else "")
            + ". This is a bug in privatepuller; please report it."
        )
    return failed(
        f"Google Drive answered {error.status} for {what}. Nothing was changed; try again in a "
        "few minutes."
    )
