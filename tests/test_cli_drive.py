"""The command line with Google Drive, against the fake Drive."""

from __future__ import annotations

import json
import re

from cli_helpers import run
from gdrive_helpers import (
    DriveWorld,
    drive_world_fixture,  # noqa: F401  (the `world` fixture; overrides Canvas's)
)


def drive_env(world: DriveWorld) -> dict[str, str]:
    return {
        "GOOGLE_APPLICATION_CREDENTIALS": str(world.key_file),
        "GOOGLE_DRIVE_API_URL": world.drive.api_url,
        "PRIVATEPULLER_HOME": str(world.config.home),
    }


async def test_the_first_line_counts_what_is_downloaded(world: DriveWorld) -> None:
    """The demo course reaches some files twice (shortcuts): each is downloaded once, and the
    count announced first is the count of files listed after it, and in the summary."""
    code, out = await run(
        "pull", world.folder_url(world.course), env=drive_env(world), cwd=world.workdir
    )
    assert code == 0, out
    announced = re.search(r"^Downloading (\d+) file\(s\), (.+)$", out, re.MULTILINE)
    assert announced is not None, out
    listed = re.findall(r"^  \S.* \((\d+ bytes|\d+\.\d (?:kB|MB))\)$", out, re.MULTILINE)
    summary = re.search(r"downloaded (\d+) file\(s\), (.+)$", out, re.MULTILINE)
    assert summary is not None, out
    assert int(announced[1]) == len(listed) == int(summary[1]), out
    added = re.search(r"added (\d+),", out)
    assert added is not None and int(added[1]) > len(listed), out  # shortcuts: more paths


async def test_resolve_a_drive_folder(world: DriveWorld) -> None:
    url = world.folder_url(world.course, "?usp=sharing")
    code, out = await run("resolve", url, "--json", env=drive_env(world), cwd=world.workdir)
    assert code == 0, out
    assert json.loads(out) == {
        "provider": "gdrive",
        "kind": "folder",
        "name": "Intro to Data",
        "folder": "Intro to Data",
    }
    code, out = await run("resolve", url, env=drive_env(world), cwd=world.workdir)
    assert code == 0 and out.startswith("Google Drive folder “Intro to Data”"), out
