"""Content for the fake Drive: MIME types, export formats, synthetic blobs, byte ranges."""

from __future__ import annotations

import csv
import functools
import hashlib
import html
import io
import re
from collections.abc import Iterator

FOLDER = "application/vnd.google-apps.folder"
SHORTCUT = "application/vnd.google-apps.shortcut"
GOOGLE_APPS = "application/vnd.google-apps."
COLAB = "application/vnd.google.colaboratory"

DOC_MIME_TYPES = {
    "document": "application/vnd.google-apps.document",
    "spreadsheet": "application/vnd.google-apps.spreadsheet",
    "presentation": "application/vnd.google-apps.presentation",
    "drawing": "application/vnd.google-apps.drawing",
    "form": "application/vnd.google-apps.form",
}

_PDF = "application/pdf"
_ZIP = "application/zip"
_JPEG, _PNG, _SVG = "image/jpeg", "image/png", "image/svg+xml"

# ref-export-formats (reference §2). Forms have no export target.
EXPORT_FORMATS: dict[str, tuple[str, ...]] = {
    DOC_MIME_TYPES["document"]: (
        "application/rtf",
        "application/vnd.oasis.opendocument.text",
        "text/html",
        _PDF,
        "text/markdown",
        "application/epub+zip",
        _ZIP,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "text/plain",
    ),
    DOC_MIME_TYPES["spreadsheet"]: (
        "application/x-vnd.oasis.opendocument.spreadsheet",
        "text/tab-separated-values",
        _PDF,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "text/csv",
        _ZIP,
        "application/vnd.oasis.opendocument.spreadsheet",
    ),
    DOC_MIME_TYPES["presentation"]: (
        "application/vnd.oasis.opendocument.presentation",
        _PDF,
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "text/plain",
        _JPEG,
        _PNG,
        _SVG,
    ),
    DOC_MIME_TYPES["drawing"]: (_SVG, _PNG, _PDF, _JPEG),
    "application/vnd.google-apps.script": ("application/vnd.google-apps.script+json",),
}

EXPORT_LIMIT = 10 * 1024 * 1024

_EXPORT_EXTENSIONS = {
    "application/rtf": "rtf",
    "application/vnd.oasis.opendocument.text": "odt",
    "text/html": "html",
    _PDF: "pdf",
    "text/markdown": "md",
    "application/epub+zip": "epub",
    _ZIP: "zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/plain": "txt",
    "application/x-vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "text/tab-separated-values": "tsv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/csv": "csv",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    _JPEG: "jpg",
    _PNG: "png",
    _SVG: "svg",
    "application/vnd.google-apps.script+json": "json",
}

_LINK_BASES = {
    "document": "https://docs.google.com/feeds/download/documents/export/Export",
    "spreadsheet": "https://docs.google.com/spreadsheets/export",
    "presentation": "https://docs.google.com/feeds/download/presentations/Export",
    "drawing": "https://docs.google.com/feeds/download/drawings/Export",
}


def is_google_native(mime_type: str) -> bool:
    return mime_type.startswith(GOOGLE_APPS)


def doc_kind(mime_type: str) -> str | None:
    for kind, mime in DOC_MIME_TYPES.items():
        if mime == mime_type:
            return kind
    return None


def export_links(file_id: str, mime_type: str, resource_key: str | None) -> dict[str, str]:
    """``exportLinks`` as Drive shows them (docs.google.com URLs; the fake doesn't serve them)."""
    base = _LINK_BASES.get(doc_kind(mime_type) or "")
    if base is None:
        return {}
    suffix = f"&resourcekey={resource_key}" if resource_key else ""
    return {
        target: f"{base}?id={file_id}&exportFormat={_EXPORT_EXTENSIONS[target]}{suffix}"
        for target in EXPORT_FORMATS.get(mime_type, ())
    }


def export_bytes(file_id: str, version: int, mime_type: str, text: str, target: str) -> bytes:
    """Deterministic export of a Google-native file: real text for text formats, else a stub
    with the right magic number (clients must treat office/PDF/image bytes as opaque)."""
    stamp = f"{file_id} v{version}"
    if target in {"text/markdown", "text/csv"}:
        return text.encode("utf-8")
    if target == "text/plain":
        # Google Docs' plain-text export starts with a UTF-8 byte-order mark.
        bom = "\ufeff" if mime_type == DOC_MIME_TYPES["document"] else ""
        return (bom + text).encode("utf-8")
    if target == "text/tab-separated-values":
        out = io.StringIO()
        csv.writer(out, delimiter="\t", lineterminator="\n").writerows(
            csv.reader(io.StringIO(text))
        )
        return out.getvalue().encode("utf-8")
    if target == "text/html":
        return f"<html><body><pre>{html.escape(text)}</pre></body></html>".encode()
    if target == _PDF:
        return f"%PDF-1.4\n% fake export of {stamp}\n{text}\n%%EOF\n".encode()
    if target == "application/rtf":
        return f"{{\\rtf1\\ansi {stamp}}}".encode()
    if target == _SVG:
        return f'<svg xmlns="http://www.w3.org/2000/svg"><!-- {stamp} --></svg>'.encode()
    if target == _PNG:
        return b"\x89PNG\r\n\x1a\n" + stamp.encode()
    if target == _JPEG:
        return b"\xff\xd8\xff\xe0" + stamp.encode() + b"\xff\xd9"
    if target.endswith("+json"):
        return b'{"files": []}'
    return b"PK\x03\x04" + f"fake {target} export of {stamp}\n".encode() + text.encode("utf-8")


# --- synthetic blobs ---------------------------------------------------------------------

BLOCK = 1024 * 1024


@functools.lru_cache(maxsize=64)
def synthetic_block(file_id: str, version: int) -> bytes:
    """The 1 MiB block a synthetic file repeats; byte ``p`` is ``block[p % BLOCK]``."""
    return hashlib.shake_256(f"{file_id}:{version}".encode()).digest(BLOCK)


def synthetic_chunks(
    file_id: str, version: int, start: int, end: int, chunk: int = BLOCK
) -> Iterator[bytes]:
    """Bytes ``start..end`` (inclusive) of a synthetic file, in chunks of at most ``chunk``."""
    block = synthetic_block(file_id, version)
    pos = start
    while pos <= end:
        offset = pos % BLOCK
        n = min(chunk, BLOCK - offset, end - pos + 1)
        yield block[offset : offset + n]
        pos += n


def synthetic_digest(file_id: str, version: int, size: int, algorithm: str) -> str:
    """Hex digest of a synthetic file (about 1.5 s for 1 GiB: run it in a thread)."""
    h = hashlib.new(algorithm)
    block = synthetic_block(file_id, version)
    for _ in range(size // BLOCK):
        h.update(block)
    h.update(block[: size % BLOCK])
    return h.hexdigest()


# --- Range -----------------------------------------------------------------------------

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*(?:,.*)?$", re.IGNORECASE)


class Unsatisfiable(Exception):
    """Range can't be served: respond 416 with ``Content-Range: bytes */<size>``."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Inclusive ``(start, end)`` for a ``Range`` header; None to serve the whole body.

    Only the first range of a multi-range request is honoured. Malformed headers are
    ignored (RFC 9110); an unsatisfiable range raises :class:`Unsatisfiable`.
    """
    if not header:
        return None
    m = _RANGE_RE.match(header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if end < start:
        return None
    if start >= size:
        raise Unsatisfiable
    return start, min(end, size - 1)
