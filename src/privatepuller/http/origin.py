"""Origins: the unit a credential is pinned to (scheme, host, port), and the https rule."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from yarl import URL

from ..errors import UnsafeRequest


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: URL | str) -> Origin:
        url = URL(url) if isinstance(url, str) else url
        if not url.absolute or url.scheme not in ("http", "https") or not url.host:
            raise UnsafeRequest(f"{_safe(url)} is not an http(s) URL.")
        if url.user is not None or url.password is not None:
            # https://trusted.example.edu@evil.example/ style links
            raise UnsafeRequest(f"{_safe(url)} has a user name in it; such links are refused.")
        # yarl lower-cases and IDNA-encodes the host; a trailing dot names the same host.
        host = url.host.rstrip(".").lower()
        port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
        return cls(url.scheme, host, port)

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    def require_secure(self) -> Origin:
        """https only, except loopback hosts (tests and the demo run there)."""
        if self.scheme != "https" and not self.is_loopback:
            raise UnsafeRequest(
                f"{self.scheme}://{self.host} is not https; only loopback hosts may use http."
            )
        return self

    def __str__(self) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}{port}"


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _safe(url: URL) -> str:
    """A URL for a message: no user info, no query (signed URLs carry secrets there)."""
    try:
        return str(url.with_user(None).with_query(None).with_fragment(None))
    except ValueError:
        return "<invalid URL>"


def safe_url(url: URL | str) -> str:
    return _safe(URL(url) if isinstance(url, str) else url)
