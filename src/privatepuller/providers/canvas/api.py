"""The Canvas REST calls privatepuller makes (all GET), with Link pagination and clear errors.

Every endpoint here must be covered by a developer-key scope in `privatepuller.hub.canvas`
(a test checks `ENDPOINTS` against that list).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from yarl import URL

from ...credentials.sources import CanvasCredentials
from ...errors import (
    DownloadFailed,
    ListingFailed,
    LoginExpired,
    NoAccess,
    NotFound,
    PullError,
    under_hub,
)
from ...http.session import (
    HTTPStatusError,
    ReadOnlySession,
    SessionOptions,
)
from ...sync.source import ListingLimits

PER_PAGE = 100  # Canvas's maximum page size

TOKEN_REFUSED_ALONE = (
    "Canvas refused the access token in CANVAS_ACCESS_TOKEN: it has expired, was deleted, or "
    "is not a token of the Canvas in CANVAS_BASE_URL. Make a new one (in Canvas: Account, "
    "Settings, New access token), set it, then try again."
)

# (method, path template) of every Canvas API call below; the hub's scope list must cover them.
ENDPOINTS = (
    ("GET", "/api/v1/courses/:id"),
    ("GET", "/api/v1/groups/:id"),
    ("GET", "/api/v1/:context/:id/folders/root"),
    ("GET", "/api/v1/:context/:id/folders/by_path/*path"),
    ("GET", "/api/v1/:context/:id/folders"),
    ("GET", "/api/v1/:context/:id/files"),
    ("GET", "/api/v1/files/:id"),
    ("GET", "/files/:id/download"),  # the `url` of a file object; redirects to the file store
)


class CanvasAPI:
    def __init__(self, session: ReadOnlySession, limits: ListingLimits | None = None) -> None:
        self.session = session
        self.base = URL(str(session.origin))
        self.limits = limits or ListingLimits()

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        credentials: CanvasCredentials,
        options: SessionOptions,
        limits: ListingLimits | None = None,
    ) -> AsyncIterator[CanvasAPI]:
        async with options.session(credentials.origin, credentials.tokens) as session:
            try:
                yield cls(session, limits)
            except LoginExpired:
                # Anything done with this API (resolving, listing, downloading): outside a
                # hub, the token is the one the person set, and they can make a new one.
                if under_hub():
                    raise
                raise LoginExpired(TOKEN_REFUSED_ALONE) from None

    def url(self, *segments: str) -> URL:
        path = "/api/v1/" + "/".join(quote(s, safe="") for s in segments)
        return self.base.with_path(path, encoded=True)

    async def get(self, *segments: str, what: str) -> Any:
        data, _ = await self._get_json(self.url(*segments), what)
        return data

    async def _get_json(self, url: URL, what: str) -> tuple[Any, Mapping[str, str]]:
        try:
            return await self.session.get_json(url)
        except HTTPStatusError as error:
            raise http_error(error, what) from None
        except ValueError:  # not JSON: an HTML error or login page, a proxy's answer
            raise ListingFailed(f"Canvas returned something unexpected for {what}.") from None

    async def paginate(
        self, *segments: str, what: str, keep: frozenset[str] | None = None
    ) -> list[dict[str, Any]]:
        """All pages, following `Link: rel="next"` to the end (per_page=100), at most
        `limits.max_pages` pages and `limits.max_entries` items (else `TooBig`).

        With `keep`, only those fields of each item are kept: a course's whole file list is
        held at once, and a Canvas file object has some 25 fields.
        """
        items: list[dict[str, Any]] = []
        url: URL | None = self.url(*segments).update_query(per_page=PER_PAGE)
        seen: set[str] = set()
        in_canvas = f"Canvas's {what.removeprefix('the ')}"
        while url is not None:
            if str(url) in seen:  # a server whose "next" loops would otherwise never end
                raise ListingFailed(f"Canvas returned a looping page list for {what}.")
            if len(seen) >= self.limits.max_pages:  # ... and one whose "next" never repeats
                raise self.limits.too_many(in_canvas, self.limits.max_pages, "pages")
            seen.add(str(url))
            data, headers = await self._get_json(url, what)
            if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
                raise ListingFailed(f"Canvas returned something unexpected for {what}.")
            if len(items) + len(data) > self.limits.max_entries:
                raise self.limits.too_many(in_canvas, self.limits.max_entries, "entries")
            items.extend(
                data if keep is None else ({k: i[k] for k in keep if k in i} for i in data)
            )
            url = next_link(headers.get("Link", ""), self.base)
            if url is not None and url.origin() != self.base.origin():
                # Never silently truncate (that would delete files from the snapshot).
                raise ListingFailed(f"Canvas sent the next page of {what} to another host.")
        return items


def http_error(error: HTTPStatusError, what: str, *, download: bool = False) -> PullError:
    """Canvas statuses -> errors for people (throttling and expired tokens never get here);
    any other status fails the listing, or the `download`."""
    if error.status == 404:
        return NotFound(f"Canvas could not find {what}.")
    if error.status in (401, 403):
        return NoAccess(f"You do not have access to {what} in Canvas.")
    failed = DownloadFailed if download else ListingFailed
    return failed(f"Canvas answered {error.status} for {what}. Try again later.")


def next_link(header: str, base: URL) -> URL | None:
    """The `rel="next"` URL of a Link header, or None on the last page."""
    for part in header.split(","):
        section = part.split(";")
        if len(section) < 2:
            continue
        target = section[0].strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        rels = [s.strip() for s in section[1:]]
        if any(r.replace(" ", "") in ('rel="next"', "rel=next") for r in rels):
            return base.join(URL(target[1:-1], encoded=True))
    return None
