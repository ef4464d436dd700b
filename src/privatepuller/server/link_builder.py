"""The instructors' link builder: `{base_url}privatepuller/link` (a page) and
`{base_url}privatepuller/api/link` (JSON). What they say is computed in `link_check.py`, which
documents the API's answer.

Both need a logged-in user (`@web.authenticated`). The API is GET only and changes nothing;
as every Jupyter API handler it refuses requests from other origins (`check_origin`) and sends
no CORS headers. The page comes from our autoescaping template, under the strict
Content-Security-Policy of the /git-pull pages, with a nonce on its one inline script.

Import this module only after `nbgitpuller._compat.get_base_handler(serverapp)` has run (the
extension's loader does that), like `handlers.py`.
"""

from __future__ import annotations

import asyncio
import json
import os

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from ..errors import PullError
from ..link import HUB_EXAMPLE
from ..pull import parse_link
from .config import PrivatePuller
from .events import format_exception, scrub
from .handlers import TEMPLATES, PageMixin, get_privatepuller
from .link_check import (
    LIST_TIMEOUT,
    Inspection,
    InspectionCache,
    Limits,
    LinkRequest,
    build_answer,
    default_hub,
    inspect_link,
    not_ours,
)


class LinkBuilderHandler(PageMixin, JupyterHandler):
    """The page: a form, and a script (nonce'd) that asks the API and shows its answer."""

    @web.authenticated
    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish(
            TEMPLATES.get_template("privatepuller-link.html").render(
                url=self.get_argument("url", ""),
                hub=default_hub(os.environ, self.request.protocol, self.request.host),
                hub_example=HUB_EXAMPLE,
                api_url=url_path_join(self.base_url, "privatepuller", "api", "link"),
                favicon_url=self.static_url("favicon.ico"),
                csp_nonce=self.csp_nonce,
            )
        )


class LinkAPIHandler(APIHandler):
    """`GET …/privatepuller/api/link`: JSON, read-only (GET only; nothing is written)."""

    @web.authenticated
    async def get(self) -> None:
        config = get_privatepuller(self.settings)
        self.set_header("Cache-Control", "no-store")
        hub = self.get_argument("hub", "") or default_hub(
            os.environ, self.request.protocol, self.request.host
        )
        request = LinkRequest(
            url=self.get_argument("url", ""),
            hub=hub,
            targetpath=self.get_argument("targetpath", ""),
            urlpath=self.get_argument("urlpath", ""),
            notebook=self.get_argument("notebook", None),
        )
        fresh = bool(self.get_argument("fresh", ""))
        inspection, problems = await self._inspect(request.url.strip(), config, fresh)
        self.finish(json.dumps(build_answer(request, inspection, problems, Limits.of(config))))

    async def _inspect(
        self, url: str, config: PrivatePuller, fresh: bool
    ) -> tuple[Inspection | None, list[str]]:
        if not url:
            return None, [
                "Paste the address of a Canvas files folder, or of a Google Drive folder shared "
                "with the hub's service account."
            ]
        try:
            link = parse_link(url)
        except PullError as error:
            return None, [scrub(error.message)]
        if link is None:
            return None, [not_ours(url)]
        cache: InspectionCache = self.settings.setdefault(
            "privatepuller_link_checks", InspectionCache()
        )
        if not fresh and (cached := cache.get(url)) is not None:
            return cached, []
        try:
            inspection = await asyncio.wait_for(
                inspect_link(link, config.credentials(), config.sync_config()), LIST_TIMEOUT
            )
        except PullError as error:
            return None, [scrub(error.message)]
        except TimeoutError:
            return None, [
                f"Listing this folder took longer than {LIST_TIMEOUT:.0f} seconds. Try again in "
                "a minute; if it keeps happening, link a smaller folder."
            ]
        except Exception as error:  # noqa: BLE001 - the page must answer; the log has details
            self.log.warning(
                "privatepuller: checking a link failed:\n%s", scrub(format_exception(error))
            )
            return None, [
                f"Checking this link failed unexpectedly ({type(error).__name__}). Try again in "
                "a minute; if it keeps failing, the server's log has the details."
            ]
        cache.put(url, inspection)
        return inspection, []
