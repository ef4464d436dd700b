"""Error responses exactly as Drive v3 and Google's token endpoint send them.

Bodies follow ``/work/shared/reference/google-drive-api.md`` §2 and §4. None carries
``details``, so google-api-python-client's ``HttpError.error_details`` is the ``errors``
list and ``error_details[0]["reason"]`` works.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json; charset=UTF-8"


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response with Google's ``Content-Type: application/json; charset=UTF-8``."""
    response = web.Response(
        status=status, body=json.dumps(body, indent=2).encode("utf-8"), headers=headers
    )
    response.headers["Content-Type"] = JSON_TYPE
    return response


def legacy_error(
    code: int,
    reason: str,
    message: str,
    *,
    domain: str = "global",
    location: str | None = None,
    location_type: str = "parameter",
) -> dict[str, Any]:
    """Drive's classic envelope: ``{"error":{"errors":[…],"code":N,"message":…}}``."""
    err: dict[str, Any] = {"domain": domain, "reason": reason, "message": message}
    if location is not None:
        err["locationType"] = location_type
        err["location"] = location
    return {"error": {"errors": [err], "code": code, "message": message}}


def error_response(
    code: int, reason: str, message: str, *, headers: dict[str, str] | None = None, **kw: Any
) -> web.Response:
    return json_response(legacy_error(code, reason, message, **kw), code, headers)


def not_found(file_id: str) -> web.Response:
    return error_response(404, "notFound", f"File not found: {file_id}.", location="fileId")


def drive_not_found(drive_id: str) -> web.Response:
    msg = f"Shared drive not found: {drive_id}"
    return error_response(404, "notFound", msg, location="driveId")


def invalid_value(location: str, message: str = "Invalid Value") -> web.Response:
    return error_response(400, "invalid", message, location=location)


def invalid_fields(message: str) -> web.Response:
    return error_response(400, "invalidParameter", message, location="fields")


def required(parameter: str, message: str | None = None) -> web.Response:
    msg = message or f"Required parameter: {parameter}"
    return error_response(400, "required", msg, location=parameter)


def auth_error() -> web.Response:
    body = {
        "error": {
            "code": 401,
            "message": (
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential. See "
                "https://developers.google.com/identity/sign-in/web/devconsole-project."
            ),
            "errors": [
                {
                    "message": "Invalid Credentials",
                    "domain": "global",
                    "reason": "authError",
                    "location": "Authorization",
                    "locationType": "header",
                }
            ],
            "status": "UNAUTHENTICATED",
        }
    }
    return json_response(
        body, 401, {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
    )


def insufficient_scopes() -> web.Response:
    body = {
        "error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "errors": [
                {
                    "message": "Insufficient Permission",
                    "domain": "global",
                    "reason": "insufficientPermissions",
                }
            ],
            "status": "PERMISSION_DENIED",
        }
    }
    return json_response(body, 403)


def user_rate_limit(headers: dict[str, str] | None = None) -> web.Response:
    return error_response(
        403,
        "userRateLimitExceeded",
        "User Rate Limit Exceeded",
        domain="usageLimits",
        headers=headers,
    )


def rate_limit(code: int = 403, headers: dict[str, str] | None = None) -> web.Response:
    return error_response(
        code, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits", headers=headers
    )


def backend_error(code: int = 500) -> web.Response:
    return error_response(code, "backendError", "Backend Error")


def file_not_downloadable() -> web.Response:
    msg = "Only files with binary content can be downloaded. Use Export with Docs Editors files."
    return error_response(403, "fileNotDownloadable", msg, location="alt")


def abusive_file() -> web.Response:
    msg = "This file has been identified as malware or spam and cannot be downloaded."
    return error_response(403, "cannotDownloadAbusiveFile", msg)


def download_quota_exceeded() -> web.Response:
    msg = "The download quota for this file has been exceeded."
    return error_response(403, "downloadQuotaExceeded", msg)


def insufficient_file_permissions() -> web.Response:
    msg = "The user does not have sufficient permissions for this file."
    return error_response(403, "insufficientFilePermissions", msg)


def cannot_download_file() -> web.Response:
    """Downloads (or copies) turned off for readers, seen at download time (the listing may
    still have said ``canDownload: true``: the owner changed it, or a DLP rule applies). The
    message is the one clients match on (a public Drive client's handling); unverified."""
    msg = "This file cannot be downloaded by the user."
    return error_response(403, "cannotDownloadFile", msg)


def app_not_authorized_to_file(file_id: str, app_id: str = "123456789012") -> web.Response:
    msg = f"The user has not granted the app {app_id} read access to the file {file_id}."
    return error_response(
        403, "appNotAuthorizedToFile", msg, location="Authorization", location_type="header"
    )


def domain_policy() -> web.Response:
    """The caller's Workspace domain does not allow this app: every request, not one file."""
    msg = "The domain administrators have disabled Drive apps."
    return error_response(403, "domainPolicy", msg)


def daily_limit() -> web.Response:
    """The project's daily quota: every request of the service account, not one file."""
    return error_response(403, "dailyLimitExceeded", "Daily Limit Exceeded", domain="usageLimits")


def file_not_exportable() -> web.Response:
    return error_response(403, "fileNotExportable", "Export only supports Docs Editors files.")


def conversion_not_supported() -> web.Response:
    msg = "The requested conversion is not supported."
    return error_response(400, "badRequest", msg, location="convertTo")


def export_too_large() -> web.Response:
    msg = "This file is too large to be exported."
    return error_response(403, "exportSizeLimitExceeded", msg)


HTML_502 = """<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <meta name=viewport content="initial-scale=1, minimum-scale=1, width=device-width">
  <title>Error 502 (Server Error)!!1</title>
  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>
  <p><b>502.</b> <ins>That\u2019s an error.</ins>
  <p>The server encountered a temporary error and could not complete your request.<p>Please try again in 30 seconds.  <ins>That\u2019s all we know.</ins>
"""  # noqa: E501


def html_502() -> web.Response:
    return web.Response(
        status=502, body=HTML_502.encode("utf-8"), content_type="text/html", charset="UTF-8"
    )


HTML_404 = """<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <title>Error 404 (Not Found)!!1</title>
  <p><b>404.</b> <ins>That\u2019s an error.</ins>
  <p>The requested URL <code>{path}</code> was not found on this server.  <ins>That\u2019s all we know.</ins>
"""  # noqa: E501


def html_404(path: str) -> web.Response:
    body = HTML_404.replace("{path}", path.replace("<", "&lt;")).encode("utf-8")
    return web.Response(status=404, body=body, content_type="text/html", charset="UTF-8")


def oauth_error(status: int, error: str, description: str) -> web.Response:
    """Token-endpoint error: ``{"error": "...", "error_description": "..."}``."""
    return json_response({"error": error, "error_description": description}, status)
