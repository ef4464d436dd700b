"""Sync progress and failures as events in nbgitpuller's SSE protocol.

nbgitpuller's page (static/js/index.js) understands three phases:

- `{"phase": "syncing", "output": "<one line>\\n"}`: written to its log panel;
- `{"phase": "finished"}`: it redirects to the page computed by the UI handler;
- `{"phase": "error", "message", "output", "error": {"code", "message", "traceback"}}`:
  `message` goes into the progress bar, `error.code == "merge"` offers "Backup and resync",
  `output` goes into the log panel. The page reads `error.code` unconditionally, so an error
  event always carries the `error` object.

Nothing here may carry a token: messages come from `PullError` (written for students, free of
credentials), and anything else is scrubbed.
"""

from __future__ import annotations

import asyncio
import os
import re
import traceback
from collections.abc import Iterable
from typing import Any

from ..errors import PullError
from ..sizes import size_text
from ..sync.engine import SyncReport
from ..sync.source import SIZE_LIMITS

Event = dict[str, Any]

PROVIDER_NAMES = {"canvas": "Canvas", "google": "Google Drive", "gdrive": "Google Drive"}


def syncing(line: str) -> Event:
    return {"phase": "syncing", "output": line.rstrip("\n") + "\n"}


def finished() -> Event:
    return {"phase": "finished"}


def error_event(code: str, message: str, detail: str) -> Event:
    return {
        "phase": "error",
        "message": message,
        "output": detail,
        "error": {"code": code, "message": message, "traceback": detail},
    }


class SSEProgress:
    """The sync engine's `Progress`, turned into `syncing` events on an asyncio queue.

    The engine calls it from the event loop (listing, downloads) and from a worker thread
    (nbgitpuller's git output during the merge), so every call hops onto the loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Event]) -> None:
        self._loop = loop
        self._queue = queue
        self.git_lines: list[str] = []  # kept for the error detail of a failed merge

    def _put(self, event: Event) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._queue.put_nowait(event)
        else:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def listed(self, files: int, total_bytes: int) -> None:
        if files:
            noun = "file" if files == 1 else "files"
            self._put(syncing(f"Downloading {files} {noun} ({size_text(total_bytes)})"))
        else:
            self._put(syncing("No new or changed files to download"))

    def advanced(self, nbytes: int) -> None:
        pass  # one line per file (file_done) is enough for the log panel

    def file_done(self, path: str, size: int) -> None:
        self._put(syncing(f"  {path} ({size_text(size)})"))

    def waiting(self, seconds: float, provider: str) -> None:
        name = PROVIDER_NAMES.get(provider, provider)
        self._put(
            syncing(
                f"{name} asks us to slow down (many students are syncing); "
                f"waiting {seconds:.0f} s, then continuing"
            )
        )

    def note(self, text: str) -> None:
        self._put(syncing(text))

    def git_output(self, line: str) -> None:
        self.git_lines.append(line)
        del self.git_lines[:-40]
        self._put(syncing(line))


def report_lines(report: SyncReport) -> list[str]:
    """What changed, and every file that was not copied and why (large files included)."""
    lines = [
        f"Synced “{report.name}”: {len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.removed)} removed, {report.unchanged} unchanged"
        + (f", {len(report.kept)} kept from an earlier sync" if report.kept else "")
    ]
    not_copied = [*report.excluded, *report.skipped]
    if not_copied:
        lines.append(f"{len(not_copied)} file(s) were not copied:")
        for skipped in not_copied:
            why = skipped.reason.words
            if note := report.note(skipped.path):
                why += f"; {note}"
            if skipped.reason in SIZE_LIMITS and skipped.detail:
                lines.append(f"  {skipped.path} ({skipped.detail}): {why}")
            elif skipped.detail:
                lines.append(f"  {skipped.path}: {why} ({skipped.detail})")
            else:
                lines.append(f"  {skipped.path}: {why}")
    return lines


def pull_error_event(error: PullError, git_lines: Iterable[str] = ()) -> Event:
    """A failure we can explain: the student's message, and a short detail for the log."""
    detail = f"{type(error).__name__} ({error.code}): {error.message}"
    lines = list(git_lines)
    if error.code == "merge" and lines:
        detail += "\n\ngit output:\n" + "\n".join(lines[-20:])
    return error_event(error.code, error.message, scrub(detail))


UNEXPECTED = (
    "Something went wrong while copying the files, and your folder was not changed. Try "
    "again in a minute; if it keeps failing, send the error log below to your instructor."
)


def unexpected_error_event(error: BaseException) -> Event:
    """A bug or an unforeseen failure: a general message; the detail is scrubbed."""
    return error_event("unknown", UNEXPECTED, scrub(format_exception(error)))


def format_exception(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


# Environment variables whose values are secrets (DESIGN.md contracts), plus the hub's own.
SECRET_ENV = (
    "CANVAS_ACCESS_TOKEN",
    "GOOGLE_DRIVE_ACCESS_TOKEN",
    "JUPYTERHUB_API_TOKEN",
    "JPY_API_TOKEN",
)
_BEARER = re.compile(r"(?i)\bbearer\s+[^\s,'\"]+")
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\n,}]+")
_TOKEN_PARAM = re.compile(r"(?i)\b(access_token|refresh_token|token)=[^\s&'\"]+")
_URL_QUERY = re.compile(r"(https?://[^\s'\"?#]*)\?[^\s'\"#]*")
_CANVAS_TOKEN = re.compile(r"\b\d+~[A-Za-z0-9]{20,}\b")
_GOOGLE_TOKEN = re.compile(r"\bya29\.[A-Za-z0-9_\-.]+")


# Terminal escapes and other control characters (C0 but tab and newline, DEL, C1, line
# separators and bidirectional overrides): a link's path segments, a provider's names and a
# git remote's messages reach the log panel (a terminal emulator) and the server's log.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` without control characters (tab and newline stay)."""
    return _CONTROL.sub("", text)


def clean_event(event: Any) -> Any:
    """An event with `printable` applied to every string in it."""
    if isinstance(event, str):
        return printable(event)
    if isinstance(event, dict):
        return {key: clean_event(value) for key, value in event.items()}
    if isinstance(event, list | tuple):
        return [clean_event(value) for value in event]
    return event


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove anything that could be a credential from text bound for a page or a log."""
    for secret in [*secrets, *(os.environ.get(name, "") for name in SECRET_ENV)]:
        if secret and len(secret) >= 8:
            text = text.replace(secret, "[secret]")
    text = _URL_QUERY.sub(r"\1?[query removed]", text)
    text = _AUTH_HEADER.sub(r"\1[secret]", text)
    text = _BEARER.sub("Bearer [secret]", text)
    text = _TOKEN_PARAM.sub(r"\1=[secret]", text)
    text = _CANVAS_TOKEN.sub("[secret]", text)
    return printable(_GOOGLE_TOKEN.sub("[secret]", text))
