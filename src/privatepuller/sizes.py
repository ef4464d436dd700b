"""Sizes in words, the one way every layer writes them: "2.0 MB", "12.3 kB", "512 bytes"."""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB


def size_text(size: int) -> str:
    if size >= MiB:
        return f"{size / MiB:.1f} MB"
    if size >= KiB:
        return f"{size / KiB:.1f} kB"
    return f"{size} bytes"
