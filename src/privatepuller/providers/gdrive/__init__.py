"""Google Drive folders and files, read with the hub's Google service account.

links.py (URL -> link, no network), resolve.py (link -> repo), api.py (the Drive v3 client:
paging, resource keys, status -> error), source.py (listing and downloads), exports.py (Google
file kinds and export formats), policy.py (backoff), skips.py (why a file was left out).
"""

from .provider import GDRIVE, GoogleDriveProvider

__all__ = ["GDRIVE", "GoogleDriveProvider"]
