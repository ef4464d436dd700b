"""Which addresses a provider may point a student's server at: public ones only.

A file's `url` or a redirect names any host the provider likes. A request there carries no
credential, but it still runs *inside the hub's network*: a name that resolves to the cloud's
metadata service (169.254.169.254), to the Jupyter server itself, to the hub or to anything
else on a private network must not be reachable that way. So every host except the
configured origin's own (the provider's API; tests and the demo run those on 127.0.0.1) has
to resolve to public addresses only. The check runs where the connection is made, on the
addresses the connection would use: in the connector's resolver (`GuardedResolver`), so DNS
names and spellings such as `0x7f000001` cannot slip past a check of the host name, and, for
IP literals (for which aiohttp skips the resolver), in `check_literal_host`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from ..errors import UnsafeRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv6 names of IPv4 addresses (RFC 6052)


def is_public_address(address: IPAddress) -> bool:
    """True for globally routable unicast addresses; False for loopback, unspecified,
    private (RFC 1918, fc00::/7), link-local (169.254/16, fe80::/10), shared (100.64/10),
    reserved, documentation and multicast addresses, and IPv6 forms of such IPv4 ones."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not address.is_multicast


def parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def looks_like_ip_literal(host: str) -> bool:
    """What aiohttp connects to without asking the resolver (`aiohttp.helpers.is_ip_address`):
    anything with a colon, or made only of digits and dots."""
    return ":" in host or host.replace(".", "").isdigit()


def refusal(host: str, address: str, allowed: str) -> UnsafeRequest:
    where = host if address == host else f"{host} ({address})"
    return UnsafeRequest(
        f"{allowed} pointed a request at {where}, an address of this server itself or of a "
        "private network; privatepuller does not follow it."
    )


def check_literal_host(host: str, allowed_host: str, allowed: str) -> None:
    """Refuse a hop whose host is an IP literal that is not public (aiohttp connects to
    literals without the resolver). The configured origin's own host is always allowed."""
    host = normal_host(host)
    if host == normal_host(allowed_host) or not looks_like_ip_literal(host):
        return
    address = parse_address(host)
    if address is None or not is_public_address(address):
        raise refusal(host, host, allowed)


class GuardedResolver(AbstractResolver):
    """Resolves like `inner` (aiohttp's default resolver unless given), then keeps only the
    public addresses of every host but `allowed_host`; refuses a host left with none.

    `allowed` names the configured origin in the refusal message.
    """

    def __init__(
        self, allowed_host: str, allowed: str, inner: AbstractResolver | None = None
    ) -> None:
        self._allowed_host = normal_host(allowed_host)
        self._allowed = allowed
        self._inner = inner
        self._owns_inner = inner is None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()
        results = await self._inner.resolve(host, port, family)
        if normal_host(host) == self._allowed_host:
            return results
        public = [r for r in results if _is_public_text(r["host"])]
        if not public:
            raise refusal(normal_host(host), _addresses(results), self._allowed)
        return public

    async def close(self) -> None:
        if self._inner is not None and self._owns_inner:
            await self._inner.close()


def _is_public_text(text: str) -> bool:
    address = parse_address(text)
    return address is not None and is_public_address(address)


def _addresses(results: Iterable[ResolveResult]) -> str:
    return ", ".join(sorted({r["host"] for r in results})) or "no address"
