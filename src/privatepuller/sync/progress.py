"""How a sync reports progress: the CLI draws a bar, the server sends SSE lines."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def listed(self, files: int, total_bytes: int) -> None:
        """The remote folder was listed; `files` need downloading, `total_bytes` in all."""

    def advanced(self, nbytes: int) -> None:
        """Bytes arrived (negative when a failed attempt's bytes are discarded)."""

    def file_done(self, path: str, size: int) -> None: ...

    def waiting(self, seconds: float, provider: str) -> None:
        """Throttled by the provider; retrying after `seconds`."""

    def git_output(self, line: str) -> None: ...

    def note(self, text: str) -> None:
        """Something the person waiting should know (e.g. it waits for another sync)."""


class NullProgress:
    def listed(self, files: int, total_bytes: int) -> None:
        pass

    def advanced(self, nbytes: int) -> None:
        pass

    def file_done(self, path: str, size: int) -> None:
        pass

    def waiting(self, seconds: float, provider: str) -> None:
        pass

    def git_output(self, line: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass
