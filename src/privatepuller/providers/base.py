"""repoproviders' answer types, re-exported so our modules import them from one place."""

from dataclasses import dataclass

from repoproviders.resolvers.base import DoesNotExist, Exists, MaybeExists, Repo

__all__ = ["DoesNotExist", "Exists", "MaybeExists", "NotVisible", "Repo"]


@dataclass(frozen=True)
class NotVisible[T: Repo](DoesNotExist[T]):
    """The credential may not see it (not enrolled, not shared): a `DoesNotExist` that says so."""
