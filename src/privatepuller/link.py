"""nbgitpuller links for Canvas and Drive URLs (what an instructor pastes into Canvas)."""

from __future__ import annotations

from urllib.parse import urlencode

from .errors import UnsupportedURL


def make_link(
    url: str, *, hub: str, urlpath: str | None = None, targetpath: str | None = None
) -> str:
    from .pull import parse_link

    if parse_link(url) is None:
        raise UnsupportedURL(
            f"{url} is not a Canvas files URL or a Google Drive URL privatepuller can pull."
        )
    params = {"repo": url}
    if targetpath:
        params["targetpath"] = targetpath
    if urlpath:
        params["urlpath"] = urlpath
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{urlencode(params)}"
