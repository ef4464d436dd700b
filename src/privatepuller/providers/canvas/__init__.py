"""Canvas course, group and personal files, read with the student's own Canvas token.

links.py (URL -> link, no network), resolve.py (link -> repo), api.py (the Canvas REST client:
pagination, status -> error), source.py (listing and downloads), policy.py (backoff), skips.py
(why a file was left out).
"""

from .provider import CANVAS, CanvasProvider

__all__ = ["CANVAS", "CanvasProvider"]
