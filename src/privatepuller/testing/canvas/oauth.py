"""Canvas's OAuth2 provider: GET /login/oauth2/auth and POST /login/oauth2/token.

Follows canvas-lms `lib/canvas/oauth/` (grant types, `RequestError::ERROR_MAP`,
`Token#as_json`) and the "OAuth2 Endpoints" page of the Canvas API docs: codes are
single-use and live 10 minutes; a refresh replaces the access token string (the old one
stops working) and its response carries no new refresh_token; `replace_tokens` deletes
the user's other tokens from the same developer key.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from .. import issued
from .model import FakeUser, random_alnum
from .routes import canvas_json
from .shapes import token_user_json

if TYPE_CHECKING:
    from .fake import AccessTokenRecord, FakeCanvas

CODE_TTL_SECONDS = 600.0  # Setting "oath_token_request_timeout" (sic), 10 minutes
_ERRORS: dict[str, tuple[str, str, int]] = {
    "invalid_client_id": ("invalid_client", "unknown client", 401),
    "invalid_client_secret": ("invalid_client", "invalid client", 401),
    "invalid_redirect": ("invalid_request", "redirect_uri does not match client settings", 400),
    "invalid_refresh_token": ("invalid_request", "refresh_token not found", 400),
    "invalid_authorization_code": ("invalid_grant", "authorization_code not found", 400),
    "incorrect_client": ("invalid_grant", "incorrect client", 400),
    "authorization_code_not_supplied": (
        "invalid_request",
        "You must provide the code parameter when using the authorization_code grant type",
        400,
    ),
    "refresh_token_not_supplied": (
        "invalid_request",
        "You must provide the refresh_token parameter when using the refresh_token grant type",
        400,
    ),
    "unsupported_grant_type": (
        "unsupported_grant_type",
        "The grant_type you requested is not currently supported",
        400,
    ),
    "unsupported_response_type": (
        "unsupported_response_type",
        "The response_type you requested is not currently supported",
        400,
    ),
}


@dataclass(frozen=True)
class _Code:
    user_id: int
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    expires_at: float


def oauth_error(key: str) -> web.Response:
    error, description, status = _ERRORS[key]
    return canvas_json({"error": error, "error_description": description}, status)


def _truthy(value: str | None) -> bool:
    # Canvas::Plugin.value_to_boolean
    return (value or "").lower() in ("1", "true", "t", "yes", "y", "on")


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)


class OAuthProvider:
    def __init__(self, canvas: FakeCanvas) -> None:
        self.canvas = canvas
        self.codes: dict[str, _Code] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/login/oauth2/auth", self.authorize)
        router.add_post("/login/oauth2/token", self.token)
        router.add_get("/login/canvas", self.login_page)

    def _redirect_ok(self, client_id: str, redirect_uri: str) -> bool:
        # The redirect_uri's host must be the developer key's, or a subdomain of it.
        registered = self.canvas.clients.redirect_uris.get(client_id)
        if not redirect_uri:
            return False
        if registered is None:
            return True
        want = urllib.parse.urlsplit(registered).hostname or ""
        got = urllib.parse.urlsplit(redirect_uri).hostname or ""
        return got == want or got.endswith("." + want)

    def _login_user(self, request: web.Request) -> FakeUser | None:
        if self.canvas.oauth_login_user is not None:
            return self.canvas.oauth_login_user
        hint = request.query.get("unique_id") or request.query.get("login_hint")
        return next((u for u in self.canvas.users.values() if u.login_id == hint), None)

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        client_id = query.get("client_id", "")
        if client_id not in self.canvas.clients.secrets:
            return oauth_error("invalid_client_id")
        redirect_uri = query.get("redirect_uri", "")
        if not self._redirect_ok(client_id, redirect_uri):
            return oauth_error("invalid_redirect")
        if query.get("response_type") != "code":
            return oauth_error("unsupported_response_type")
        state = {"state": query["state"]} if "state" in query else {}
        user = self._login_user(request)
        if user is None:
            if query.get("prompt") == "none":
                location = _with_query(redirect_uri, {"error": "login_required", **state})
            else:
                location = f"{self.canvas.base_url}/login/canvas"
            return web.Response(status=302, headers={"Location": location})
        if not self.canvas.oauth_consent:
            location = _with_query(redirect_uri, {"error": "access_denied", **state})
            return web.Response(status=302, headers={"Location": location})
        code = secrets.token_hex(64)
        issued.record(self.canvas, "Canvas OAuth authorization code", code)
        self.codes[code] = _Code(
            user_id=user.id,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=frozenset(query.get("scope", "").split()),
            expires_at=time.monotonic() + CODE_TTL_SECONDS,
        )
        location = _with_query(redirect_uri, {"code": code, **state})
        return web.Response(status=302, headers={"Location": location})

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            text="<html><body><h1>Log In to Canvas</h1></body></html>", content_type="text/html"
        )

    async def token(self, request: web.Request) -> web.StreamResponse:
        # Rails merges query and body parameters; bodies may be form-encoded or JSON.
        params = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            params.update({str(k): str(v) for k, v in dict(body).items()})
        else:
            params.update({k: str(v) for k, v in (await request.post()).items()})
        grant_type = params.get("grant_type") or ("authorization_code" if "code" in params else "")
        if grant_type not in ("authorization_code", "refresh_token"):
            return oauth_error("unsupported_grant_type")
        client_id = params.get("client_id", "")
        secret = self.canvas.clients.secrets.get(client_id)
        if secret is None:
            return oauth_error("invalid_client_id")
        if not secrets.compare_digest(secret, params.get("client_secret", "")):
            return oauth_error("invalid_client_secret")
        if grant_type == "refresh_token":
            return self._refresh(client_id, params.get("refresh_token"))
        return self._exchange_code(client_id, params)

    def _exchange_code(self, client_id: str, params: dict[str, str]) -> web.Response:
        code = params.get("code")
        if not code:
            return oauth_error("authorization_code_not_supplied")
        entry = self.codes.get(code)
        if entry is None or time.monotonic() > entry.expires_at:
            return oauth_error("invalid_authorization_code")
        if entry.client_id != client_id:
            return oauth_error("incorrect_client")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is not None and not self._redirect_ok(client_id, redirect_uri):
            return oauth_error("invalid_redirect")
        del self.codes[code]  # single use
        user = self.canvas.users[entry.user_id]
        if _truthy(params.get("replace_tokens")):
            for record in self.canvas.tokens.values():
                if record.user_id == user.id and record.client_id == client_id:
                    record.revoked = True
        token = self.canvas.issue_token(
            user, expires_in=self.canvas.access_token_ttl, client_id=client_id, scopes=entry.scopes
        )
        record = self.canvas.tokens[token]
        record.refresh_token = random_alnum(64)
        issued.record(self.canvas, "Canvas refresh token", record.refresh_token)
        self.canvas.refresh_tokens[record.refresh_token] = record
        data = self._token_json(record, user)
        data["refresh_token"] = record.refresh_token
        data["canvas_region"] = "unknown"  # what open-source Canvas reports
        return canvas_json(data)

    def _refresh(self, client_id: str, refresh_token: str | None) -> web.Response:
        if not refresh_token:
            return oauth_error("refresh_token_not_supplied")
        record = self.canvas.refresh_tokens.get(refresh_token)
        if record is None or record.revoked:
            return oauth_error("invalid_refresh_token")
        if record.client_id != client_id:
            return oauth_error("incorrect_client")
        # AccessToken#regenerate_access_token: same record, new string; the old one dies.
        del self.canvas.tokens[record.token]
        record.token = f"1~{random_alnum(64)}"
        issued.record(self.canvas, "Canvas access token", record.token)
        ttl = self.canvas.access_token_ttl
        record.expires_at = None if ttl is None else time.time() + ttl
        self.canvas.tokens[record.token] = record
        return canvas_json(self._token_json(record, self.canvas.users[record.user_id]))

    def _token_json(self, record: AccessTokenRecord, user: FakeUser) -> dict[str, object]:
        data: dict[str, object] = {
            "access_token": record.token,
            "token_type": "Bearer",
            "user": token_user_json(user),
        }
        if self.canvas.access_token_ttl is not None:
            data["expires_in"] = int(self.canvas.access_token_ttl)
        return data
