"""One way to write a size, everywhere: `sizes.size_text`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import privatepuller
from privatepuller.http.session import ResponseTooLarge
from privatepuller.sizes import KiB, MiB, size_text

SRC = Path(privatepuller.__file__).parent
ROOT = SRC.parent.parent


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (KiB, "1.0 kB"),
        (200_000, "195.3 kB"),
        (MiB, "1.0 MB"),
        (1024 * MiB, "1024.0 MB"),
    ],
)
def test_size_text(size: int, text: str) -> None:
    assert size_text(size) == text


def test_a_limit_in_an_error_is_written_the_same_way() -> None:
    assert str(ResponseTooLarge(200_000)) == "more than 195.3 kB"


# A number followed by a unit in a formatted string, or a division by 1024: a size written by
# hand. (A path's length in bytes, `MAX_PATH_BYTES`, is a length, not a file's size.)
HAND_MADE = re.compile(r"\}\s?(?:KB|kB|MB|GB|KiB|MiB|bytes)\b|/\s?(?:1024|KiB|MiB)\b")
PATH_LENGTH = "{MAX_PATH_BYTES} bytes"


def test_no_module_but_sizes_writes_a_size() -> None:
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in SRC.rglob("*")
        if path.suffix in (".py", ".html", ".js")
        and path.name != "sizes.py"
        and "testing" not in path.relative_to(SRC).parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if HAND_MADE.search(line) and PATH_LENGTH not in line
    ]
    assert found == []


def test_the_guides_write_sizes_as_the_program_does() -> None:
    """ "kB" and "MB" (as `size_text`), never "KB" or "0.0 KB"."""
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\d\s?KB\b", line)
    ]
    assert found == []
