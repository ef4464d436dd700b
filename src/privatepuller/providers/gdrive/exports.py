"""Google's file kinds, and what Google files are exported as.

Docs, Sheets, Slides, Drawings and Apps Script have no bytes of their own: they are exported
(`ExportFormats`; defaults suit Jupyter, `PRIVATEPULLER_DRIVE_EXPORTS` changes them). Colab
notebooks are blobs and land as `.ipynb`. Forms, Sites and the like have no file form.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ...errors import ConfigurationError

FOLDER = "application/vnd.google-apps.folder"
SHORTCUT = "application/vnd.google-apps.shortcut"
GOOGLE_APPS = "application/vnd.google-apps."
COLAB = "application/vnd.google.colaboratory"  # also ".corp": match the prefix

KIND_NAMES = {
    "application/vnd.google-apps.document": "Google Doc",
    "application/vnd.google-apps.spreadsheet": "Google Sheet",
    "application/vnd.google-apps.presentation": "Google Slides presentation",
    "application/vnd.google-apps.drawing": "Google Drawing",
    "application/vnd.google-apps.script": "Apps Script project",
    "application/vnd.google-apps.form": "Google Form",
    "application/vnd.google-apps.site": "Google Site",
    "application/vnd.google-apps.map": "Google My Map",
    "application/vnd.google-apps.jam": "Jamboard",
    "application/vnd.google-apps.vid": "Google Vids video",
    "application/vnd.google-apps.fusiontable": "Fusion Table",
}
EXPORTABLE = frozenset(
    {
        "application/vnd.google-apps.document",
        "application/vnd.google-apps.spreadsheet",
        "application/vnd.google-apps.presentation",
        "application/vnd.google-apps.drawing",
        "application/vnd.google-apps.script",
    }
)


def is_google_native(mime_type: str) -> bool:
    return mime_type.startswith(GOOGLE_APPS)


def kind_name(mime_type: str) -> str:
    return KIND_NAMES.get(mime_type, "Google Workspace file")


DOCUMENT = "application/vnd.google-apps.document"
SPREADSHEET = "application/vnd.google-apps.spreadsheet"
PRESENTATION = "application/vnd.google-apps.presentation"
DRAWING = "application/vnd.google-apps.drawing"
SCRIPT = "application/vnd.google-apps.script"

EXPORT_LIMIT = 10 * 1024 * 1024  # Drive: "the exported content is limited to 10 MB"
EXPORTS_ENV = "PRIVATEPULLER_DRIVE_EXPORTS"

_PDF = "application/pdf"
# Export targets per Google type (reference: ref-export-formats), by file extension.
EXPORT_CHOICES: dict[str, dict[str, str]] = {
    DOCUMENT: {
        "md": "text/markdown",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "odt": "application/vnd.oasis.opendocument.text",
        "rtf": "application/rtf",
        "pdf": _PDF,
        "txt": "text/plain",
        "html": "text/html",
        "zip": "application/zip",
        "epub": "application/epub+zip",
    },
    SPREADSHEET: {
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ods": "application/vnd.oasis.opendocument.spreadsheet",
        "csv": "text/csv",
        "tsv": "text/tab-separated-values",
        "pdf": _PDF,
        "zip": "application/zip",
    },
    PRESENTATION: {
        "pdf": _PDF,
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odp": "application/vnd.oasis.opendocument.presentation",
        "txt": "text/plain",
        "png": "image/png",
        "jpg": "image/jpeg",
        "svg": "image/svg+xml",
    },
    DRAWING: {"svg": "image/svg+xml", "png": "image/png", "jpg": "image/jpeg", "pdf": _PDF},
    SCRIPT: {"json": "application/vnd.google-apps.script+json"},
}
# The defaults suit Jupyter: JupyterLab renders Markdown, SVG and PDF itself; .xlsx keeps every
# sheet (CSV would keep only the first) and pandas reads it with `pd.read_excel`.
DEFAULT_EXPORTS: dict[str, str] = {
    DOCUMENT: "md",
    SPREADSHEET: "xlsx",
    PRESENTATION: "pdf",
    DRAWING: "svg",
    SCRIPT: "json",
}
KIND_ALIASES: dict[str, str] = {
    "document": DOCUMENT,
    "doc": DOCUMENT,
    "docs": DOCUMENT,
    "spreadsheet": SPREADSHEET,
    "sheet": SPREADSHEET,
    "sheets": SPREADSHEET,
    "presentation": PRESENTATION,
    "slides": PRESENTATION,
    "drawing": DRAWING,
    "script": SCRIPT,
}


@dataclass(frozen=True)
class ExportFormat:
    mime_type: str
    extension: str


@dataclass(frozen=True)
class ExportFormats:
    """Which format each Google type is exported to (defaults: `DEFAULT_EXPORTS`).

    Configurable with `ExportFormats.parse("document=docx,spreadsheet=csv")`, or on a server
    with the environment variable `PRIVATEPULLER_DRIVE_EXPORTS` in the same syntax; `kind=none`
    skips that kind. Kinds: document, spreadsheet, presentation, drawing, script.
    """

    formats: tuple[tuple[str, ExportFormat], ...] = tuple(
        (source, ExportFormat(EXPORT_CHOICES[source][ext], ext))
        for source, ext in DEFAULT_EXPORTS.items()
    )

    def get(self, source_mime: str) -> ExportFormat | None:
        return dict(self.formats).get(source_mime)

    @classmethod
    def parse(cls, spec: str) -> ExportFormats:
        chosen: dict[str, ExportFormat | None] = dict(cls().formats)
        for part in spec.split(","):
            if not part.strip():
                continue
            kind, sep, target = (s.strip().lower() for s in part.partition("="))
            source = KIND_ALIASES.get(kind)
            if not sep or source is None:
                raise ConfigurationError(
                    f"{EXPORTS_ENV}: “{part.strip()}” is not kind=format; kinds are "
                    f"{', '.join(sorted(set(KIND_ALIASES) - {'doc', 'docs', 'sheet', 'sheets'}))}."
                )
            choices = EXPORT_CHOICES[source]
            if target in ("none", "skip"):
                chosen[source] = None
                continue
            by_mime = {mime: ext for ext, mime in choices.items()}
            ext = target.lstrip(".") if target.lstrip(".") in choices else by_mime.get(target)
            if ext is None:
                raise ConfigurationError(
                    f"{EXPORTS_ENV}: a {kind} cannot be exported as “{target}”; choose one of "
                    f"{', '.join(choices)}."
                )
            chosen[source] = ExportFormat(choices[ext], ext)
        return cls(tuple((s, f) for s, f in chosen.items() if f is not None))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ExportFormats:
        spec = (os.environ if environ is None else environ).get(EXPORTS_ENV, "")
        return cls.parse(spec) if spec.strip() else cls()


def with_extension(name: str, extension: str) -> str:
    return name if name.lower().endswith("." + extension.lower()) else f"{name}.{extension}"
