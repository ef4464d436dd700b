"""The fake Google Drive, driven by the real google-auth / google-api-python-client and by
plain aiohttp. The google clients are synchronous, so they run in a thread while the fake
serves on the test's event loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import time
import types
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import google.auth._exponential_backoff
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseDownload

from privatepuller.testing.drive.content import synthetic_chunks
from privatepuller.testing.drive.fake import (
    COLAB,
    DEFAULT_SA_EMAIL,
    DRIVE_READONLY,
    FOLDER,
    SHORTCUT,
    FakeDrive,
    FakeItem,
    QuotaPolicy,
    populate_demo,
)
from privatepuller.testing.drive.query import QueryError, parse_query

SA = DEFAULT_SA_EMAIL
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
DOC = "application/vnd.google-apps.document"


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
async def drive() -> AsyncIterator[FakeDrive]:
    async with FakeDrive() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def token(drive: FakeDrive) -> str:
    return drive.issue_token(SA)


@pytest.fixture
def creds(drive: FakeDrive) -> service_account.Credentials:
    key = drive.service_account_key()
    return service_account.Credentials.from_service_account_info(key, scopes=[DRIVE_READONLY])


@pytest.fixture
def service(drive: FakeDrive, creds: service_account.Credentials) -> Any:
    return build(
        "drive",
        "v3",
        credentials=creds,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": drive.api_url},
    )


@pytest.fixture
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """google-auth's token retries sleep ~1 s; skip the wait."""
    monkeypatch.setattr(
        google.auth._exponential_backoff, "time", types.SimpleNamespace(sleep=lambda s: None)
    )


class Reply:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def reason(self) -> str:
        return self.json()["error"]["errors"][0]["reason"]


async def get(
    http: aiohttp.ClientSession,
    drive: FakeDrive,
    path: str,
    token: str | None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Reply:
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    async with http.request(method, drive.api_url + path, params=params, headers=h) as r:
        return Reply(r.status, r.headers, await r.read())


async def list_all(
    http: aiohttp.ClientSession, drive: FakeDrive, token: str, params: dict[str, str]
) -> tuple[list[dict[str, Any]], int]:
    """Follow nextPageToken to the end; return the files and the number of pages."""
    files: list[dict[str, Any]] = []
    params = {"fields": "nextPageToken,files(id,name)", **params}
    pages = 0
    while True:
        reply = await get(http, drive, "files", token, params)
        assert reply.status == 200, reply.body
        pages += 1
        files += reply.json()["files"]
        if "nextPageToken" not in reply.json():
            return files, pages
        params = {**params, "pageToken": reply.json()["nextPageToken"]}


async def names_for(http: aiohttp.ClientSession, drive: FakeDrive, token: str, q: str) -> set[str]:
    files, _ = await list_all(http, drive, token, {"q": q})
    return {f["name"] for f in files}


def run(fn: Callable[[], Any]) -> Any:
    return asyncio.to_thread(fn)


# --- google-api-python-client + google-auth -------------------------------------------


async def test_client_lists_every_page_with_fields_mask(drive: FakeDrive, service: Any) -> None:
    folder = drive.add_folder("course", share_with=SA)
    for i in range(23):
        drive.add_file(f"f{i:02}.txt", folder.id, f"content {i}".encode())
    fields = (
        "nextPageToken, "
        "files(id,name,size,md5Checksum,version,modifiedTime,capabilities/canDownload)"
    )

    def list_everything() -> list[dict[str, Any]]:
        request = service.files().list(
            q=f"'{folder.id}' in parents and trashed = false", pageSize=7, fields=fields
        )
        found: list[dict[str, Any]] = []
        while request is not None:
            response = request.execute()
            assert set(response) <= {"nextPageToken", "files"}
            found += response["files"]
            request = service.files().list_next(request, response)
        return found

    files = await run(list_everything)
    assert sorted(f["name"] for f in files) == [f"f{i:02}.txt" for i in range(23)]
    assert len({f["id"] for f in files}) == 23
    sample = next(f for f in files if f["name"] == "f05.txt")
    assert sample["size"] == str(len(b"content 5"))
    assert sample["md5Checksum"] == hashlib.md5(b"content 5").hexdigest()
    assert sample["version"] == "1"
    assert RFC3339_MS.match(sample["modifiedTime"])
    assert sample["capabilities"] == {"canDownload": True}
    assert set(sample) == {
        "id",
        "name",
        "size",
        "md5Checksum",
        "version",
        "modifiedTime",
        "capabilities",
    }
    assert [r.status for r in drive.requests] == [200] * 4  # 7+7+7+2
    assert len(drive.token_requests) == 1
    assert drive.token_requests[0].scope == DRIVE_READONLY
    assert drive.requests[0].authorization == f"Bearer {next(iter(drive.tokens))}"


async def test_mask_without_next_page_token_ends_paging_early(
    drive: FakeDrive, service: Any
) -> None:
    folder = drive.add_folder("course", share_with=SA)
    for i in range(5):
        drive.add_file(f"{i}.txt", folder.id, b"x")
    response = await run(
        service.files().list(q=f"'{folder.id}' in parents", pageSize=2, fields="files(id)").execute
    )
    assert len(response["files"]) == 2
    assert "nextPageToken" not in response  # why callers must ask for it


async def test_client_get_default_and_masked_fields(drive: FakeDrive, service: Any) -> None:
    folder = drive.add_folder("course", share_with=SA)
    f = drive.add_file("a.csv", folder.id, b"1,2\n", mime_type="text/csv")
    default = await run(service.files().get(fileId=f.id).execute)
    assert default == {"kind": "drive#file", "id": f.id, "name": "a.csv", "mimeType": "text/csv"}
    masked = await run(
        service.files().get(fileId=f.id, fields="id,parents,capabilities(canDownload)").execute
    )
    assert masked == {"id": f.id, "parents": [folder.id], "capabilities": {"canDownload": True}}


async def test_client_chunked_download_uses_ranges(drive: FakeDrive, service: Any) -> None:
    folder = drive.add_folder("course", share_with=SA)
    content = bytes(range(256)) * 4 + b"tail"
    f = drive.add_file("blob.bin", folder.id, content)

    def download() -> bytes:
        buf = io.BytesIO()
        downloader = MediaIoBaseDownload(buf, service.files().get_media(fileId=f.id), chunksize=100)
        done = False
        while not done:
            _, done = downloader.next_chunk()
        return buf.getvalue()

    assert await run(download) == content
    media = [r for r in drive.requests if r.query.get("alt") == "media"]
    assert len(media) == 11
    assert media[0].range == "bytes=0-99"
    assert media[-1].range == "bytes=1000-1099"
    assert {r.status for r in media} == {206}


async def test_client_downloads_zero_byte_file_via_416(drive: FakeDrive, service: Any) -> None:
    folder = drive.add_folder("course", share_with=SA)
    f = drive.add_file("empty.txt", folder.id, b"")

    def download() -> bytes:
        buf = io.BytesIO()
        downloader = MediaIoBaseDownload(buf, service.files().get_media(fileId=f.id), chunksize=8)
        _, done = downloader.next_chunk()
        assert done
        return buf.getvalue()

    assert await run(download) == b""
    assert drive.requests[-1].status == 416


async def test_client_export_media(drive: FakeDrive, service: Any) -> None:
    folder = drive.add_folder("course", share_with=SA)
    doc = drive.add_google_doc("Notes", folder.id, "document", "# Notes\n\nhello\n")
    sheet = drive.add_google_doc("Grades", folder.id, "spreadsheet", "a,b\n1,2\n")
    md = await run(service.files().export_media(fileId=doc.id, mimeType="text/markdown").execute)
    assert md == b"# Notes\n\nhello\n"
    csv = await run(service.files().export_media(fileId=sheet.id, mimeType="text/csv").execute)
    assert csv == b"a,b\n1,2\n"
    assert drive.requests[-1].query == {"mimeType": "text/csv", "alt": "media"}


def _error_reason(call: Callable[[], Any]) -> tuple[int, str]:
    try:
        call()
    except HttpError as e:
        return e.resp.status, e.error_details[0]["reason"]
    raise AssertionError("no HttpError")


async def test_client_sees_drive_error_reasons(drive: FakeDrive, service: Any) -> None:
    folder = drive.add_folder("course", share_with=SA)
    secret = drive.add_folder("not shared")
    hidden = drive.add_file("hidden.txt", secret.id, b"x")
    doc = drive.add_google_doc("Doc", folder.id, "document", "hi")
    form = drive.add_google_doc("Form", folder.id, "form")
    big = drive.add_google_doc("Big", folder.id, "document", "x", export_too_large=True)
    blob = drive.add_file("b.bin", folder.id, b"x")
    abusive = drive.add_file("bad.exe", folder.id, b"x", abusive=True)
    over = drive.add_file("popular.zip", folder.id, b"x", download_quota_exceeded=True)
    locked = drive.add_file("locked.pdf", folder.id, b"x", can_download=False)
    files = service.files()
    cases = {
        (404, "notFound"): files.get(fileId=hidden.id).execute,
        (403, "fileNotDownloadable"): files.get_media(fileId=doc.id).execute,
        (403, "fileNotExportable"): files.export_media(fileId=blob.id, mimeType=DOC).execute,
        (400, "badRequest"): files.export_media(fileId=form.id, mimeType="application/pdf").execute,
        (403, "exportSizeLimitExceeded"): files.export_media(
            fileId=big.id, mimeType="text/markdown"
        ).execute,
        (403, "cannotDownloadAbusiveFile"): files.get_media(fileId=abusive.id).execute,
        (403, "downloadQuotaExceeded"): files.get_media(fileId=over.id).execute,
        (403, "insufficientFilePermissions"): files.get_media(fileId=locked.id).execute,
    }
    for expected, call in cases.items():
        assert await run(lambda call=call: _error_reason(call)) == expected


async def test_per_file_refusals_apply_to_exports_later_flags_and_injected_faults(
    drive: FakeDrive, service: Any
) -> None:
    folder = drive.add_folder("course", share_with=SA)
    doc = drive.add_google_doc("Doc", folder.id, "document", "hi", abusive=True)
    sheet = drive.add_google_doc("Sheet", folder.id, "spreadsheet", "a,b", can_download=False)
    blob = drive.add_file("b.bin", folder.id, b"x")
    files = service.files()

    def export(item: FakeItem) -> Any:
        return files.export_media(fileId=item.id, mimeType="application/pdf").execute

    assert await run(lambda: _error_reason(export(doc))) == (403, "cannotDownloadAbusiveFile")
    assert await run(lambda: _error_reason(export(sheet))) == (403, "insufficientFilePermissions")
    drive.restrict(blob.id, download_quota_exceeded=True)
    assert drive.item(blob.id).version == blob.version + 1
    media = files.get_media(fileId=blob.id).execute
    assert await run(lambda: _error_reason(media)) == (403, "downloadQuotaExceeded")
    drive.restrict(blob.id, download_quota_exceeded=False)
    for reason in ("cannotDownloadFile", "appNotAuthorizedToFile", "domainPolicy"):
        drive.inject_fault(rf"/files/{blob.id}\?", f"403_{reason}")  # type: ignore[arg-type]
        assert await run(lambda: _error_reason(media)) == (403, reason)
    drive.inject_fault(rf"/files/{blob.id}\?", "403_appNotAuthorizedToFile")
    body = json.loads(await run(lambda: _error_body(media)))
    assert body["error"]["code"] == 403 and blob.id in body["error"]["message"]
    assert body["error"]["errors"][0]["domain"] == "global"
    assert await run(lambda: files.get_media(fileId=blob.id).execute()) == b"x"


def _error_body(call: Any) -> bytes:
    try:
        call()
    except HttpError as e:
        return bytes(e.content)
    raise AssertionError("no HttpError")


@pytest.mark.parametrize(
    ("kind", "status", "retried"),
    [
        ("403_userRateLimitExceeded", 403, True),
        ("403_rateLimitExceeded", 403, True),
        ("429", 429, True),
        ("500", 500, True),
        ("503", 503, True),
        ("502_html", 502, True),
    ],
)
async def test_client_classifies_faults_as_retriable(
    drive: FakeDrive, service: Any, kind: str, status: int, retried: bool
) -> None:
    folder = drive.add_folder("course", share_with=SA)
    drive.inject_fault(r"^/drive/v3/files/", kind)  # type: ignore[arg-type]
    request = service.files().get(fileId=folder.id)
    request._sleep = lambda seconds: None
    result = await run(lambda: request.execute(num_retries=3))
    assert result["id"] == folder.id
    gets = [r for r in drive.requests if r.path.startswith("/drive/v3/files/")]
    assert [r.status for r in gets] == [status, 200]
    assert gets[0].fault == kind


async def test_client_does_not_retry_not_found_or_plain_403(drive: FakeDrive, service: Any) -> None:
    folder = drive.add_folder("course", share_with=SA)
    doc = drive.add_google_doc("Doc", folder.id, "document")
    for request in (
        service.files().get(fileId="1missing"),
        service.files().get_media(fileId=doc.id),
    ):
        request._sleep = lambda seconds: None
        with pytest.raises(HttpError):
            await run(lambda request=request: request.execute(num_retries=3))
    assert [r.status for r in drive.requests] == [404, 403]


async def test_user_rate_limit_reason_via_client(drive: FakeDrive, service: Any) -> None:
    drive.quota = QuotaPolicy(rate=0.001, burst=1)
    folder = drive.add_folder("course", share_with=SA)
    await run(service.files().get(fileId=folder.id).execute)
    status, reason = await run(lambda: _error_reason(service.files().get(fileId=folder.id).execute))
    assert (status, reason) == (403, "userRateLimitExceeded")
    assert drive.throttled_count == 1


async def test_revoked_token_is_refreshed_and_retried(drive: FakeDrive, service: Any) -> None:
    folder = drive.add_folder("course", share_with=SA)
    await run(service.files().get(fileId=folder.id).execute)
    first = next(iter(drive.tokens))
    drive.revoke_token(first)
    result = await run(service.files().get(fileId=folder.id, fields="id").execute)
    assert result == {"id": folder.id}
    assert [r.status for r in drive.requests] == [200, 401, 200]
    assert len(drive.token_requests) == 2
    assert drive.requests[-1].authorization not in (None, f"Bearer {first}")


async def test_injected_401_also_triggers_refresh(drive: FakeDrive, service: Any) -> None:
    folder = drive.add_folder("course", share_with=SA)
    drive.inject_fault(r"/files/", "401")
    await run(service.files().get(fileId=folder.id).execute)
    assert [r.status for r in drive.requests] == [401, 200]
    assert len(drive.token_requests) == 2


async def test_token_endpoint_invalid_grant_raises_refresh_error(
    drive: FakeDrive, creds: service_account.Credentials
) -> None:
    drive.inject_fault(r"^/token$", "invalid_grant")
    with pytest.raises(RefreshError, match="invalid_grant"):
        await run(lambda: creds.refresh(AuthRequest()))
    assert [r.status for r in drive.token_requests] == [400]
    assert drive.non_get_requests == []  # token POSTs are recorded separately


async def test_token_endpoint_5xx_is_retried_by_google_auth(
    drive: FakeDrive, creds: service_account.Credentials, no_backoff_sleep: None
) -> None:
    drive.inject_fault(r"^/token$", "503")
    await run(lambda: creds.refresh(AuthRequest()))
    assert creds.token in drive.tokens
    assert [r.status for r in drive.token_requests] == [503, 200]


async def test_token_endpoint_rejects_foreign_signature(
    drive: FakeDrive, http: aiohttp.ClientSession
) -> None:
    key = drive.service_account_key()
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": key["private_key_id"]}
    claims = {"iss": SA, "scope": DRIVE_READONLY, "aud": "x", "iat": now, "exp": now + 3600}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"

    async def post(signer: rsa.RSAPrivateKey) -> tuple[int, dict[str, Any]]:
        sig = signer.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": f"{signing_input}.{b64(sig)}",
        }
        async with http.post(drive.token_uri, data=form) as r:
            return r.status, await r.json()

    assert await post(other) == (
        400,
        {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
    )
    pem = key["private_key"].encode()
    ours = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(ours, rsa.RSAPrivateKey)
    status, body = await post(ours)  # aud "x" is fine: google-auth sends Google's own URL
    assert status == 200
    assert body["expires_in"] == 3599 and body["token_type"] == "Bearer"
    assert drive.tokens[body["access_token"]].scope == DRIVE_READONLY


async def test_a_rotated_key_mints_and_a_deleted_key_no_longer_does(
    drive: FakeDrive, http: aiohttp.ClientSession
) -> None:
    """A second key of the same account (rotation) has its own id and signs for itself; once
    the admin deletes the old key, Google refuses its assertions, and with `revoke_tokens`
    the access tokens minted with it stop working."""
    old = drive.service_account_key()
    new = drive.service_account_key(new_key=True)
    assert new["client_email"] == old["client_email"]
    assert new["private_key_id"] != old["private_key_id"]
    assert new["private_key"] != old["private_key"]

    def credentials(key: dict[str, str]) -> service_account.Credentials:
        return service_account.Credentials.from_service_account_info(key, scopes=[DRIVE_READONLY])

    minted = {}
    for name, key in (("old", old), ("new", new)):
        creds = credentials(key)
        await run(lambda creds=creds: creds.refresh(AuthRequest()))
        minted[name] = creds.token
        assert drive.tokens[creds.token].key_id == key["private_key_id"]

    drive.delete_key(old["private_key_id"], revoke_tokens=True)
    with pytest.raises(RefreshError, match="Invalid JWT Signature"):
        await run(lambda: credentials(old).refresh(AuthRequest()))
    folder = drive.add_folder("course", share_with=SA)
    statuses = []
    for name in ("old", "new"):
        headers = {"Authorization": f"Bearer {minted[name]}"}
        async with http.get(f"{drive.api_url}files/{folder.id}", headers=headers) as r:
            statuses.append(r.status)
    assert statuses == [401, 200]
    await run(lambda: credentials(new).refresh(AuthRequest()))  # the new key still mints


# --- authentication, recording ------------------------------------------------------------


async def test_requests_without_valid_bearer_get_401_auth_error(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    folder = drive.add_folder("course", share_with=SA)
    for bad in (None, "not-a-token"):
        reply = await get(http, drive, f"files/{folder.id}", bad)
        assert reply.status == 401
        assert reply.headers["Content-Type"] == "application/json; charset=UTF-8"
        err = reply.json()["error"]
        assert err["errors"][0]["reason"] == "authError"
        assert err["errors"][0]["location"] == "Authorization"
        assert err["status"] == "UNAUTHENTICATED"
    assert (await get(http, drive, f"files/{folder.id}", token)).status == 200
    drive.expire_token(token)
    assert (await get(http, drive, f"files/{folder.id}", token)).status == 401


async def test_writes_are_refused_and_recorded(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    reply = await get(http, drive, "files", token, method="POST")
    assert reply.status == 403
    assert reply.reason == "insufficientPermissions"
    async with http.put(drive.token_uri) as r:
        assert r.status == 404
    assert [(r.method, r.path) for r in drive.non_get_requests] == [
        ("POST", "/drive/v3/files"),
        ("PUT", "/token"),
    ]


async def test_recorded_headers_of_interest(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    folder = drive.add_folder("course", share_with=SA)
    f = drive.add_file("a.txt", folder.id, b"abcdef")
    headers = {"Range": "bytes=1-2", "X-Goog-Drive-Resource-Keys": f"{f.id}/0-abc"}
    reply = await get(http, drive, f"files/{f.id}", token, {"alt": "media"}, headers)
    assert reply.body == b"bc"
    rec = drive.requests[-1]
    assert (rec.range, rec.resource_keys, rec.status, rec.email) == (
        "bytes=1-2",
        f"{f.id}/0-abc",
        206,
        SA,
    )
    assert rec.path_qs == f"/drive/v3/files/{f.id}?alt=media"


# --- files.list: q, fields, paging ---------------------------------------------------------


@pytest.fixture
def q_folder(drive: FakeDrive) -> FakeItem:
    folder = drive.add_folder("q", share_with=SA)
    for name in ("it's.txt", "back\\slash.txt", "Data.csv", "data.CSV", "HelloWorld.md"):
        drive.add_file(name, folder.id, b"x")
    drive.add_file("gone.txt", folder.id, b"x", trashed=True)
    drive.add_folder("sub", folder.id)
    drive.add_google_doc("Doc", folder.id, "document")
    return folder


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (
            "{p}",
            {
                "it's.txt",
                "back\\slash.txt",
                "Data.csv",
                "data.CSV",
                "HelloWorld.md",
                "gone.txt",
                "sub",
                "Doc",
            },
        ),
        (
            "{p} and trashed = false",
            {"it's.txt", "back\\slash.txt", "Data.csv", "data.CSV", "HelloWorld.md", "sub", "Doc"},
        ),
        ("{p} and trashed=true", {"gone.txt"}),
        ("{p} and name = 'DATA.csv'", {"Data.csv", "data.CSV"}),
        ("{p} and name = 'it\\'s.txt'", {"it's.txt"}),
        ("{p} and name = 'back\\\\slash.txt'", {"back\\slash.txt"}),
        ("{p} and mimeType = 'application/vnd.google-apps.folder'", {"sub"}),
        (
            "{p} and mimeType != 'application/vnd.google-apps.folder' and not trashed = true "
            "and not mimeType contains 'google-apps'",
            {"it's.txt", "back\\slash.txt", "Data.csv", "data.CSV", "HelloWorld.md"},
        ),
        ("{p} and (name = 'sub' or name = 'Doc') and trashed = false", {"sub", "Doc"}),
        ("({p}) and not (name != 'sub')", {"sub"}),
        ("{p} and name contains 'hello'", {"HelloWorld.md"}),
        ("{p} and name contains 'world'", set()),  # contains = prefix match on words
        ("{p} AND name contains 'slash'", {"back\\slash.txt"}),
    ],
)
async def test_q_language(
    drive: FakeDrive,
    http: aiohttp.ClientSession,
    token: str,
    q_folder: FakeItem,
    q: str,
    expected: set[str],
) -> None:
    query = q.replace("{p}", f"'{q_folder.id}' in parents")
    assert await names_for(http, drive, token, query) == expected


@pytest.mark.parametrize(
    "q",
    [
        "name = 'unterminated",
        "name = 'a' and",
        "'x' in name",
        "trashed = 'false'",
        "name = 'bad \\n escape'",
        "bogus = 'x'",
        "(name = 'a'",
        "name < 'a'",
        "modifiedTime > 'yesterday'",
        "name = 'a' name = 'b'",
    ],
)
async def test_bad_q_is_400_invalid(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str, q: str
) -> None:
    reply = await get(http, drive, "files", token, {"q": q})
    assert reply.status == 400
    assert reply.json() == {
        "error": {
            "errors": [
                {
                    "domain": "global",
                    "reason": "invalid",
                    "message": "Invalid Value",
                    "locationType": "parameter",
                    "location": "q",
                }
            ],
            "code": 400,
            "message": "Invalid Value",
        }
    }


def test_q_parser_units() -> None:
    rec = {"name": "Report", "trashed": False, "parents": ["P"], "mimeType": "text/plain"}
    assert parse_query("'P' in parents and not trashed = true").matches(rec)
    assert parse_query('name = "report"').matches(rec)
    assert not parse_query("'Q' in parents or name = 'x'").matches(rec)
    assert parse_query("'P' in parents and name = 'x'").required_parents() == {"P"}
    assert parse_query("'P' in parents or 'Q' in parents").required_parents() == {"P", "Q"}
    assert parse_query("'P' in parents or name = 'x'").required_parents() is None
    assert parse_query(None).matches({})
    with pytest.raises(QueryError):
        parse_query("name = 'x' or or name = 'y'")


async def test_time_comparisons(drive: FakeDrive, http: aiohttp.ClientSession, token: str) -> None:
    folder = drive.add_folder("t", share_with=SA)
    old = drive.add_file("old.txt", folder.id, b"x")
    await asyncio.sleep(0.01)
    drive.add_file("new.txt", folder.id, b"y")
    stamp = old.modified_time.strftime("%Y-%m-%dT%H:%M:%S.%f")
    q = f"'{folder.id}' in parents and modifiedTime > '{stamp}'"
    assert await names_for(http, drive, token, q) == {"new.txt"}


async def test_fields_validation_and_nesting(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    folder = drive.add_folder("f", share_with=SA)
    drive.add_file("a.txt", folder.id, b"x")
    q = {"q": f"'{folder.id}' in parents"}
    for bad, name in (("files(id,bogus)", "bogus"), ("nope,files", "nope"), ("files/x/y", "x")):
        reply = await get(http, drive, "files", token, {**q, "fields": bad})
        assert reply.status == 400
        assert reply.reason == "invalidParameter"
        assert reply.json()["error"]["message"] == f"Invalid field selection {name}"
    reply = await get(
        http, drive, "files", token, {**q, "fields": "files(capabilities(canDownload),id)"}
    )
    assert reply.json() == {"files": [{"capabilities": {"canDownload": True}, "id": ANY_ID}]}
    default = (await get(http, drive, "files", token, q)).json()
    assert set(default) == {"kind", "incompleteSearch", "files"}
    assert set(default["files"][0]) == {"kind", "id", "name", "mimeType"}
    everything = (await get(http, drive, "files", token, {**q, "fields": "*"})).json()
    f = everything["files"][0]
    assert f["size"] == "1" and f["version"] == "1" and RFC3339_MS.match(f["createdTime"])
    assert f["md5Checksum"] == hashlib.md5(b"x").hexdigest()
    assert f["owners"][0]["emailAddress"] != SA


class _AnyId:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(r"[A-Za-z0-9_-]{33}", other) is not None


ANY_ID = _AnyId()


async def test_paging_parameters(drive: FakeDrive, http: aiohttp.ClientSession, token: str) -> None:
    folder = drive.add_folder("many", share_with=SA)
    for i in range(1005):
        drive.add_file(f"{i}.txt", folder.id, b"")
    q = {"q": f"'{folder.id}' in parents", "fields": "nextPageToken,files(id)"}
    first = await get(http, drive, "files", token, {**q, "pageSize": "5000"})
    assert len(first.json()["files"]) == 1000  # coerced to the maximum
    default = await get(http, drive, "files", token, q)
    assert len(default.json()["files"]) == 100
    for bad in ("0", "abc", "-3"):
        reply = await get(http, drive, "files", token, {**q, "pageSize": bad})
        assert (reply.status, reply.reason) == (400, "invalid")
    reply = await get(http, drive, "files", token, {**q, "pageToken": "garbage"})
    assert (reply.status, reply.json()["error"]["errors"][0]["location"]) == (400, "pageToken")
    other_q = {**q, "q": "trashed = false", "pageToken": first.json()["nextPageToken"]}
    assert (await get(http, drive, "files", token, other_q)).status == 400
    files, pages = await list_all(http, drive, token, {"q": q["q"], "pageSize": "400"})
    assert (len(files), pages) == (1005, 3)


async def test_short_pages_still_reach_the_end(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    drive.short_pages = True
    folder = drive.add_folder("short", share_with=SA)
    for i in range(20):
        drive.add_file(f"{i}.txt", folder.id, b"")
    sizes = []
    params = {
        "q": f"'{folder.id}' in parents",
        "pageSize": "6",
        "fields": "nextPageToken,files(name)",
    }
    while True:
        body = (await get(http, drive, "files", token, params)).json()
        sizes.append(len(body["files"]))
        if "nextPageToken" not in body:
            break
        params["pageToken"] = body["nextPageToken"]
    assert sum(sizes) == 20
    assert 0 in sizes[:-1]  # an empty page that still had a token
    assert any(0 < s < 6 for s in sizes[:-1])


async def test_order_by(drive: FakeDrive, http: aiohttp.ClientSession, token: str) -> None:
    folder = drive.add_folder("o", share_with=SA)
    for name in ("b10", "B2", "a1"):
        drive.add_file(name, folder.id, b"")
    drive.add_folder("zz", folder.id)
    params = {"q": f"'{folder.id}' in parents", "fields": "files(name)"}
    order = await get(http, drive, "files", token, {**params, "orderBy": "folder,name_natural"})
    assert [f["name"] for f in order.json()["files"]] == ["zz", "a1", "B2", "b10"]
    desc = await get(http, drive, "files", token, {**params, "orderBy": "name desc"})
    assert [f["name"] for f in desc.json()["files"]] == ["zz", "B2", "b10", "a1"]
    bad = await get(http, drive, "files", token, {**params, "orderBy": "size"})
    assert bad.status == 400


# --- visibility, shared drives, resource keys ---------------------------------------------


async def test_visibility_follows_sharing(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    top = drive.add_folder("top")
    course = drive.add_folder("course", top.id)
    f = drive.add_file("a.txt", course.id, b"x")
    reply = await get(http, drive, f"files/{f.id}", token)
    assert reply.status == 404
    assert reply.json() == {
        "error": {
            "errors": [
                {
                    "domain": "global",
                    "reason": "notFound",
                    "message": f"File not found: {f.id}.",
                    "locationType": "parameter",
                    "location": "fileId",
                }
            ],
            "code": 404,
            "message": f"File not found: {f.id}.",
        }
    }
    drive.share(course.id, SA)
    assert (await get(http, drive, f"files/{f.id}", token)).status == 200
    shown = (await get(http, drive, f"files/{course.id}", token, {"fields": "parents"})).json()
    assert shown == {}  # its parent is not visible to the caller
    other = drive.issue_token("someone@else.example")
    assert (await get(http, drive, f"files/{f.id}", other)).status == 404


async def test_shared_drive_needs_supports_all_drives(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    shared = drive.add_shared_drive("Dept", share_with=SA)
    assert re.fullmatch(r"0A[A-Za-z0-9_-]{17}", shared.id)
    folder = drive.add_folder("week1", drive_id=shared.id)
    f = drive.add_file("a.txt", folder.id, b"x")
    mine = drive.add_folder("mine", share_with=SA)
    drive.add_file("m.txt", mine.id, b"y")

    assert (await get(http, drive, f"files/{f.id}", token)).status == 404
    got = await get(
        http,
        drive,
        f"files/{f.id}",
        token,
        {"supportsAllDrives": "true", "fields": "driveId,parents"},
    )
    assert got.json() == {"driveId": shared.id, "parents": [folder.id]}
    q = f"'{folder.id}' in parents"
    assert await names_for(http, drive, token, q) == set()
    flags = {"supportsAllDrives": "true", "includeItemsFromAllDrives": "true"}
    files, _ = await list_all(http, drive, token, {"q": q, **flags})
    assert [x["name"] for x in files] == ["a.txt"]
    corpus = {"corpora": "drive", "driveId": shared.id, **flags}
    files, _ = await list_all(http, drive, token, {"q": "trashed = false", **corpus})
    assert {x["name"] for x in files} == {"week1", "a.txt"}
    mixed, _ = await list_all(http, drive, token, {"q": "trashed = false", **flags})
    assert {x["name"] for x in mixed} == {"week1", "a.txt", "mine", "m.txt"}

    assert (await get(http, drive, "files", token, {"corpora": "drive", **flags})).status == 400
    no_include = {"corpora": "drive", "driveId": shared.id, "supportsAllDrives": "true"}
    assert (await get(http, drive, "files", token, no_include)).status == 403
    drives = (await get(http, drive, "drives", token)).json()
    assert drives == {
        "kind": "drive#driveList",
        "drives": [meta_json := {"kind": "drive#drive", "id": shared.id, "name": "Dept"}],
    }
    meta = await get(http, drive, f"drives/{shared.id}", token)
    assert meta.json() == meta_json
    outsider = drive.issue_token("other@example.edu")
    missing = await get(http, drive, f"drives/{shared.id}", outsider)
    assert (missing.status, missing.reason) == (404, "notFound")


async def test_resource_keys(drive: FakeDrive, http: aiohttp.ClientSession, token: str) -> None:
    folder = drive.add_folder("linked", needs_resource_key=True)
    child = drive.add_file("c.txt", folder.id, b"child")
    assert folder.resource_key and child.resource_key and folder.resource_key != child.resource_key
    assert (await get(http, drive, f"files/{folder.id}", token)).status == 404
    wrong = {"X-Goog-Drive-Resource-Keys": f"{folder.id}/0-wrong"}
    assert (await get(http, drive, f"files/{folder.id}", token, headers=wrong)).status == 404
    key = {"X-Goog-Drive-Resource-Keys": f"1other/0-x, {folder.id}/{folder.resource_key}"}
    got = await get(http, drive, f"files/{folder.id}", token, {"fields": "id,resourceKey"}, key)
    assert got.json() == {"id": folder.id, "resourceKey": folder.resource_key}
    params = {"q": f"'{folder.id}' in parents", "fields": "files(id,resourceKey)"}
    assert (await get(http, drive, "files", token, params)).json() == {"files": []}
    listed = (await get(http, drive, "files", token, params, key)).json()["files"]
    assert listed == [{"id": child.id, "resourceKey": child.resource_key}]
    child_key = {"X-Goog-Drive-Resource-Keys": f"{child.id}/{child.resource_key}"}
    media = await get(http, drive, f"files/{child.id}", token, {"alt": "media"}, child_key)
    assert media.body == b"child"
    assert (await get(http, drive, f"files/{child.id}", token, {"alt": "media"})).status == 404
    drive.share(folder.id, SA)  # a direct grant needs no key
    assert (await get(http, drive, f"files/{child.id}", token, {"alt": "media"})).status == 200


async def test_shortcuts(drive: FakeDrive, http: aiohttp.ClientSession, token: str) -> None:
    course = populate_demo(drive, share_with=SA)
    fields = "files(id,name,mimeType,shortcutDetails)"
    params = {"q": f"'{course.id}' in parents and mimeType = '{SHORTCUT}'", "fields": fields}
    shortcut = (await get(http, drive, "files", token, params)).json()["files"][0]
    data = next(i for i in drive.children(course.id) if i.name == "data")
    assert shortcut["shortcutDetails"] == {"targetId": data.id, "targetMimeType": FOLDER}
    media = await get(http, drive, f"files/{shortcut['id']}", token, {"alt": "media"})
    assert (media.status, media.reason) == (403, "fileNotDownloadable")


# --- downloads and exports ---------------------------------------------------------------


async def test_ranges(drive: FakeDrive, http: aiohttp.ClientSession, token: str) -> None:
    folder = drive.add_folder("r", share_with=SA)
    f = drive.add_file("ten.bin", folder.id, b"0123456789")
    path, media = f"files/{f.id}", {"alt": "media"}
    cases = {
        "bytes=2-4": (206, b"234", "bytes 2-4/10"),
        "bytes=7-": (206, b"789", "bytes 7-9/10"),
        "bytes=-2": (206, b"89", "bytes 8-9/10"),
        "bytes=5-100": (206, b"56789", "bytes 5-9/10"),
        "bytes=10-20": (416, b"", "bytes */10"),
    }
    for header, (status, body, content_range) in cases.items():
        reply = await get(http, drive, path, token, media, {"Range": header})
        assert (reply.status, reply.headers["Content-Range"]) == (status, content_range)
        if status == 206:
            assert reply.body == body
    whole = await get(http, drive, path, token, media)
    assert (whole.status, whole.body, "Content-Range" in whole.headers) == (
        200,
        b"0123456789",
        False,
    )


async def test_synthetic_large_file_streams_and_hashes(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    folder = drive.add_folder("big", share_with=SA)
    size = 3 * 1024 * 1024 + 7
    f = drive.add_file("big.bin", folder.id, size=size)
    huge = drive.add_file("huge.bin", folder.id, size=1 << 30)
    meta = (await get(http, drive, f"files/{f.id}", token, {"fields": "size,md5Checksum"})).json()
    body = (await get(http, drive, f"files/{f.id}", token, {"alt": "media"})).body
    assert len(body) == size and meta["size"] == str(size)
    assert hashlib.md5(body).hexdigest() == meta["md5Checksum"]
    tail = await get(
        http, drive, f"files/{huge.id}", token, {"alt": "media"}, {"Range": "bytes=-5"}
    )
    expected = b"".join(synthetic_chunks(huge.id, huge.version, (1 << 30) - 5, (1 << 30) - 1))
    assert (tail.status, tail.body) == (206, expected)
    assert tail.headers["Content-Range"] == f"bytes {(1 << 30) - 5}-{(1 << 30) - 1}/{1 << 30}"


async def test_export_errors_and_formats(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    folder = drive.add_folder("e", share_with=SA)
    doc = drive.add_google_doc("D", folder.id, "document", "héllo")
    slides = drive.add_google_doc("S", folder.id, "presentation", "slide text")
    missing = await get(http, drive, f"files/{doc.id}/export", token)
    assert (missing.status, missing.reason) == (400, "required")
    bad = await get(http, drive, f"files/{doc.id}/export", token, {"mimeType": "text/csv"})
    assert bad.status == 400
    assert bad.json()["error"]["message"] == "The requested conversion is not supported."
    assert bad.json()["error"]["errors"][0]["location"] == "convertTo"
    plain = await get(http, drive, f"files/{doc.id}/export", token, {"mimeType": "text/plain"})
    assert plain.body == "\ufeffhéllo".encode()
    pdf = await get(
        http,
        drive,
        f"files/{slides.id}/export",
        token,
        {"mimeType": "application/pdf"},
        {"Range": "bytes=0-3"},
    )
    assert pdf.status == 200 and pdf.body.startswith(b"%PDF") and len(pdf.body) > 4
    about = await get(http, drive, "about", token, {"fields": "exportFormats"})
    formats = about.json()["exportFormats"]
    assert "text/markdown" in formats[DOC] and set(about.json()) == {"exportFormats"}
    assert (await get(http, drive, "about", token)).reason == "required"


async def test_updates_bump_version_checksum_and_time(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    folder = drive.add_folder("u", share_with=SA)
    f = drive.add_file("a.txt", folder.id, b"v1")
    doc = drive.add_google_doc("D", folder.id, "document", "one")
    fields = {"fields": "name,version,md5Checksum,modifiedTime,trashed"}
    before = (await get(http, drive, f"files/{f.id}", token, fields)).json()
    drive.update_file(f.id, b"v2")
    drive.update_file(doc.id, b"two")
    after = (await get(http, drive, f"files/{f.id}", token, fields)).json()
    assert int(after["version"]) == int(before["version"]) + 1
    assert after["md5Checksum"] == hashlib.md5(b"v2").hexdigest() != before["md5Checksum"]
    assert after["modifiedTime"] > before["modifiedTime"]
    exported = await get(
        http, drive, f"files/{doc.id}/export", token, {"mimeType": "text/markdown"}
    )
    assert exported.body == b"two"
    assert drive.item(doc.id).version == 2
    drive.rename(f.id, "b.txt")
    drive.trash(folder.id)
    renamed = (await get(http, drive, f"files/{f.id}", token, fields)).json()
    assert (renamed["name"], renamed["trashed"]) == ("b.txt", True)  # trashed via its parent
    drive.delete(folder.id)
    assert (await get(http, drive, f"files/{f.id}", token)).status == 404


# --- quota, latency, faults ---------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 429])
async def test_quota_is_one_shared_bucket(
    drive: FakeDrive, http: aiohttp.ClientSession, status: int
) -> None:
    drive.quota = QuotaPolicy(rate=0.01, burst=5, status=status, retry_after=1.5)
    folder = drive.add_folder("q", share_with=SA)
    tokens = [drive.issue_token(SA) for _ in range(4)]  # four "students", one account
    replies = [await get(http, drive, f"files/{folder.id}", tokens[i % 4]) for i in range(8)]
    assert [r.status for r in replies] == [200] * 5 + [status] * 3
    assert drive.throttled_count == 3
    limited = replies[-1]
    assert limited.headers["Retry-After"] == "2"
    expected_reason = "userRateLimitExceeded" if status == 403 else "rateLimitExceeded"
    assert limited.json()["error"]["errors"][0] == {
        "domain": "usageLimits",
        "reason": expected_reason,
        "message": "User Rate Limit Exceeded" if status == 403 else "Rate Limit Exceeded",
    }
    assert sum(r.throttled for r in drive.requests) == 3


async def test_quota_refills(drive: FakeDrive, http: aiohttp.ClientSession, token: str) -> None:
    drive.quota = QuotaPolicy(rate=20, burst=1)
    folder = drive.add_folder("q", share_with=SA)
    assert (await get(http, drive, f"files/{folder.id}", token)).status == 200
    assert (await get(http, drive, f"files/{folder.id}", token)).status == 403
    await asyncio.sleep(0.1)
    assert (await get(http, drive, f"files/{folder.id}", token)).status == 200


async def test_latency_applies_to_api_requests(http: aiohttp.ClientSession) -> None:
    async with FakeDrive(latency=0.2) as slow:
        token = slow.issue_token(SA)
        started = time.monotonic()
        await get(http, slow, "about", token, {"fields": "kind"})
        assert time.monotonic() - started >= 0.2


async def test_fault_bodies_counts_and_matching(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    folder = drive.add_folder("f", share_with=SA)
    drive.inject_fault(r"/files/" + re.escape(folder.id), "500", times=2)
    drive.inject_fault(r"/about", "502_html")
    path = f"files/{folder.id}"
    first, second, third = [await get(http, drive, path, token) for _ in range(3)]
    assert (first.status, first.reason, second.status, third.status) == (
        500,
        "backendError",
        500,
        200,
    )
    assert first.headers["Content-Type"] == "application/json; charset=UTF-8"
    html = await get(http, drive, "about", token, {"fields": "kind"})
    assert html.status == 502 and html.headers["Content-Type"].startswith("text/html")
    assert b"Error 502 (Server Error)" in html.body
    assert [r.fault for r in drive.requests] == ["500", "500", None, "502_html"]


async def test_reset_and_stall(drive: FakeDrive, http: aiohttp.ClientSession, token: str) -> None:
    drive.inject_fault(r"/about", "reset", times=2)  # aiohttp retries a GET once by itself
    with pytest.raises(aiohttp.ClientError):
        await get(http, drive, "about", token, {"fields": "kind"})
    drive.inject_fault(r"/about", "stall")
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.3):
            await get(http, drive, "about", token, {"fields": "kind"})
    assert (await get(http, drive, "about", token, {"fields": "kind"})).status == 200
    assert [r.fault for r in drive.requests] == ["reset", "reset", "stall", None]
    assert [r.status for r in drive.requests] == [0, 0, 0, 200]
    with pytest.raises(ValueError):
        drive.inject_fault(".", "teapot")  # type: ignore[arg-type]


async def test_truncate_resets_mid_body(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    folder = drive.add_folder("t", share_with=SA)
    small = drive.add_file("small.bin", folder.id, b"x" * 1000)
    big = drive.add_file("big.bin", folder.id, size=2 * 1024 * 1024)
    for f in (small, big):
        drive.inject_fault(re.escape(f.id) + r"\?alt=media", "truncate")
        with pytest.raises(aiohttp.ClientPayloadError):
            await get(http, drive, f"files/{f.id}", token, {"alt": "media"})
        assert len((await get(http, drive, f"files/{f.id}", token, {"alt": "media"})).body) == (
            f.size
        )
    assert [(r.fault, r.status) for r in drive.requests] == [("truncate", 200), (None, 200)] * 2


async def test_head_and_spaces(drive: FakeDrive, http: aiohttp.ClientSession, token: str) -> None:
    folder = drive.add_folder("h", share_with=SA)
    big = drive.add_file("big.bin", folder.id, size=300_000)
    head = await get(http, drive, f"files/{big.id}", token, {"alt": "media"}, method="HEAD")
    assert (head.status, head.headers["Content-Length"], head.body) == (200, "300000", b"")
    after = await get(http, drive, f"files/{big.id}", token, {"fields": "id"})
    assert after.json() == {"id": big.id}  # the connection was not corrupted
    q = f"'{folder.id}' in parents"
    assert await names_for(http, drive, token, q) == {"big.bin"}
    app_data, _ = await list_all(http, drive, token, {"q": q, "spaces": "appDataFolder"})
    assert app_data == []


# --- the demo fixture ------------------------------------------------------------------------


async def test_populate_demo_has_the_awkward_cases(
    drive: FakeDrive, http: aiohttp.ClientSession, token: str
) -> None:
    course = populate_demo(drive, share_with=SA)
    assert course.name == "Intro to Data"
    files, _ = await list_all(
        http,
        drive,
        token,
        {
            "q": "trashed = false",
            "fields": "nextPageToken,files(id,name,mimeType,parents,shortcutDetails)",
        },
    )
    names = [f["name"] for f in files]
    assert names.count("notes.txt") == 2
    assert {"Results.csv", "results.csv", "2024/25 schedule.txt"} <= set(names)
    assert any(f["mimeType"] == COLAB for f in files)
    assert "old.csv" not in names
    by_name = {f["name"]: f for f in files}
    loop = by_name["Back to course (loop)"]["shortcutDetails"]["targetId"]
    assert loop == course.id
    dangling = by_name["Link to removed file"]["shortcutDetails"]["targetId"]
    assert (await get(http, drive, f"files/{dangling}", token)).status == 404
    colab = next(f for f in files if f["mimeType"] == COLAB)
    nb = json.loads((await get(http, drive, f"files/{colab['id']}", token, {"alt": "media"})).body)
    assert nb["nbformat"] == 4
