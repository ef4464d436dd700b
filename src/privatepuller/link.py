"""nbgitpuller links for Canvas and Drive URLs (what an instructor pastes into Canvas).

The link has nbgitpuller's own shape, `{hub}/hub/user-redirect/git-pull?repo=URL&urlpath=...`:
JupyterHub's `user-redirect` sends each student to their own server (starting it if needed),
where privatepuller's `/git-pull` handler pulls the Canvas or Drive folder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote, urlencode, urlsplit

from .errors import UnsupportedURL
from .providers import recognise
from .targets import BadTargetPath, target_problem

HUB_EXAMPLE = "https://hub.example.edu"


def hub_problem(hub: str) -> str | None:
    """Why `hub` is not a hub's address (words for the instructor), or None."""
    parts = urlsplit(hub.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"The hub's address must look like {HUB_EXAMPLE}, not “{hub}”."
    return None


def targetpath_problem(targetpath: str, allowed_parents: Sequence[str] = ()) -> str | None:
    """Why the server would refuse a link with this `targetpath` (the rule every server applies
    to every link: `privatepuller.targets.target_problem`), in words for the instructor."""
    problem = target_problem(targetpath, allowed_parents)
    if problem is None:
        return None
    shown = re.sub(r"[\x00-\x1f\x7f-\x9f]", "", targetpath)[:200]
    return (
        f"The folder name (targetpath) “{shown}” {problem}, so students' servers would refuse "
        "this link. Use a visible folder in the student's home, like “Week 1” or "
        "“courses/Week 1” (no “..”, no name starting with “.”)."
    )


def urlpath_warning(urlpath: str | None, targetpath: str | None) -> str | None:
    """A warning for a `urlpath` given without a `targetpath`."""
    if urlpath and not targetpath:
        return (
            "urlpath is set but targetpath is not: the folder's name in each student's home is "
            "then the Canvas or Drive folder's name at the time they click, so urlpath stops "
            "matching (“Could not find path”) when the folder is renamed. Give targetpath too, "
            "with the folder name used in urlpath."
        )
    return None


def make_link(
    url: str, *, hub: str, urlpath: str | None = None, targetpath: str | None = None
) -> str:
    """The nbgitpuller link for `url` on `hub` (a hub's address, with or without `/hub/`).

    Raises `UnsupportedURL` for a URL privatepuller does not pull or a `hub` that is not an
    address, and `BadTargetPath` for a `targetpath` the server would refuse.
    """
    url = url.strip()
    if recognise(url) is None:
        raise UnsupportedURL(
            f"{url} is not a Canvas files URL or a Google Drive URL privatepuller can pull. "
            "Copy the address of a Canvas files folder (…/courses/123/files/folder/Week%201) "
            "or of a Drive folder shared with the hub's service account."
        )
    if problem := hub_problem(hub):
        raise UnsupportedURL(problem)
    if targetpath and (problem := targetpath_problem(targetpath)):
        raise BadTargetPath(problem)
    parts = urlsplit(hub.strip())
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
