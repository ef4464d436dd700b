"""What the command line (and the demo) show: a progress bar and a summary of a sync."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from .sizes import size_text
from .sync.engine import SyncReport
from .sync.source import SIZE_LIMITS, SkipReason, SyncSkip

log = logging.getLogger("privatepuller")


class BarProgress:
    """A one-line progress bar (files and bytes) on a terminal; plain lines otherwise."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.files_total = self.files_done = 0
        self.bytes_total = self.bytes_done = 0
        self._last_draw = 0.0
        self._mid_line = False  # the bar is drawn, without a newline after it

    def listed(self, files: int, total_bytes: int) -> None:
        self.files_total, self.bytes_total = files, total_bytes
        if files:
            self._line(f"Downloading {files} file(s), {size_text(total_bytes)}")
        else:
            self._line("No new or changed files to download")

    def advanced(self, nbytes: int) -> None:
        self.bytes_done += nbytes
        self._draw()

    def file_done(self, path: str, size: int) -> None:
        """A file is downloaded and stored (a rerun after an interruption keeps it)."""
        self.files_done += 1
        if not self.tty:
            self._line(f"  {path} ({size_text(size)})")
        self._draw(now=True, last=self.files_done == self.files_total)

    def waiting(self, seconds: float, provider: str) -> None:
        self._line(f"  {provider} asks us to slow down; retrying in {seconds:.0f} s")

    def git_output(self, line: str) -> None:
        log.debug("git: %s", line)

    def note(self, text: str) -> None:
        self._line(text)

    def end_line(self) -> None:
        """End the bar's line, so that what is written next starts on a line of its own."""
        if self._mid_line:
            self._mid_line = False
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: bool = False, last: bool = False) -> None:
        """Draw the bar (at most ten times a second, unless `now`); `last` ends its line."""
        if not self.tty or (not now and not last and time.monotonic() - self._last_draw < 0.1):
            return
        self._last_draw = time.monotonic()
        fraction = min(self.bytes_done / self.bytes_total, 1.0) if self.bytes_total else 1.0
        bar = "#" * int(30 * fraction)
        self.stream.write(
            f"\r[{bar:<30}] {self.files_done}/{self.files_total} files, "
            f"{size_text(self.bytes_done)} of {size_text(self.bytes_total)}"
        )
        self._mid_line = True
        if last:
            self.end_line()
        self.stream.flush()

    def _line(self, text: str) -> None:
        self.end_line()
        self.stream.write(text + "\n")
        self.stream.flush()


# Every reason's words are its own (`reason.words`), but for the size limits: on the command
# line they are not a hub's but the options that set them.
CLI_WORDS: dict[SkipReason, str] = {
    SyncSkip.TOO_LARGE: "larger than the limit for one file (--max-file-size)",
    SyncSkip.TOTAL_CAP: "past the limit for the whole folder (--max-total-size)",
}


def summary(report: SyncReport) -> str:
    lines = [
        f"Synced “{report.name}” into {report.target}",
        f"  added {len(report.added)}, updated {len(report.updated)}, "
        f"removed {len(report.removed)}, unchanged {report.unchanged}"
        + (f", kept {len(report.kept)}" if report.kept else "")
        + f"; downloaded {report.downloaded_files} file(s), {size_text(report.downloaded_bytes)}",
    ]
    for title, files in (("excluded", report.excluded), ("skipped", report.skipped)):
        if files:
            lines.append(f"  {title} ({len(files)}):")
        for s in files:
            why = CLI_WORDS.get(s.reason, s.reason.words)
            detail = f" ({s.detail})" if s.detail else ""
            if s.reason in SIZE_LIMITS:
                line = f"    {s.path}{detail}: {why}"
            else:
                line = f"    {s.path}: {why}{detail}"
            note = report.note(s.path)
            lines.append(line + (f"; {note}" if note else ""))
    return "\n".join(lines)
