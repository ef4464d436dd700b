"""Tokens a session can send: the `TokenProvider` the HTTP layer asks, and a fixed token."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..http.session import TokenProvider

__all__ = ["StaticToken", "TokenProvider"]


@dataclass(frozen=True)
class StaticToken:
    """A token handed to us (environment variable); it cannot renew itself."""

    value: str = field(repr=False)

    async def token(self) -> str:
        return self.value

    async def renew(self) -> bool:
        return False
