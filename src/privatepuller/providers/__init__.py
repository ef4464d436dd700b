"""The providers privatepuller pulls from, in the one list every caller walks.

Adding a provider is one package (see `base.Provider` for its surface) and one entry here.
`pull.py`, the server and the repoproviders adapter (`providers/repoproviders.py`) find a
link's or a repo's provider with `provider_for`, never by naming provider types.
"""

from __future__ import annotations

from typing import Any

from yarl import URL

from .base import Provider
from .canvas import CANVAS
from .gdrive import GDRIVE

PROVIDERS: tuple[Provider[Any, Any, Any], ...] = (CANVAS, GDRIVE)


def recognise(url: str | URL) -> Any | None:
    """The link a URL names, for a URL one of the providers pulls (no network); None for any
    other URL (git URLs included). Raises `UnsupportedURL` for a provider's URL that names
    nothing pullable (a Drive page that is not a folder or file, a Canvas-shaped link with a
    user name in it), so the person is told what to copy instead."""
    try:
        parsed = URL(url.strip()) if isinstance(url, str) else url
    except (ValueError, TypeError):
        return None
    for provider in PROVIDERS:
        if (link := provider.recognise(parsed)) is not None:
            return link
    return None


def provider_for(item: object) -> Provider[Any, Any, Any]:
    """The provider of a link or repo (KeyError for anything else)."""
    for provider in PROVIDERS:
        if isinstance(item, provider.links + provider.repos):
            return provider
    raise KeyError(f"no provider for {type(item).__name__}")


def provider_named(name: str) -> Provider[Any, Any, Any] | None:
    """The provider called `name` ("canvas", "gdrive"), or None."""
    return next((provider for provider in PROVIDERS if provider.name == name), None)
