"""nbgitpuller links for Canvas and Drive URLs (what an instructor pastes into Canvas).

The link has nbgitpuller's own shape, `{hub}/hub/user-redirect/git-pull?repo=URL&urlpath=...`:
JupyterHub's `user-redirect` sends each student to their own server (starting it if needed),
where privatepuller's `/git-pull` handler pulls the Canvas or Drive folder.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit

from .errors import UnsupportedURL


def make_link(
    url: str, *, hub: str, urlpath: str | None = None, targetpath: str | None = None
) -> str:
    """The nbgitpuller link for `url` on `hub` (a hub's address, with or without `/hub/`)."""
    from .pull import parse_link

    url = url.strip()
    if parse_link(url) is None:
        raise UnsupportedURL(
            f"{url} is not a Canvas files URL or a Google Drive URL privatepuller can pull. "
            "Copy the address of a Canvas files folder (…/courses/123/files/folder/Week%201) "
            "or of a Drive folder shared with the hub's service account."
        )
    parts = urlsplit(hub.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UnsupportedURL(
            f"--hub must be the hub's address, like https://hub.example.edu, not {hub}"
        )
    path = parts.path.rstrip("/")
    for suffix in ("/hub/user-redirect", "/hub"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    params = {"repo": url}
    if targetpath:
        params["targetpath"] = targetpath
    if urlpath:
        params["urlpath"] = urlpath.lstrip("/")
    query = urlencode(params, quote_via=quote)
    return f"{parts.scheme}://{parts.netloc}{path}/hub/user-redirect/git-pull?{query}"
