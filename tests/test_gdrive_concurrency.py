"""Fifty students pull one Drive folder at once: one service account, one throttled quota."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from gdrive_helpers import tree
from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.pull import pull
from privatepuller.sync.config import SyncConfig
from privatepuller.testing.drive.fake import FakeDrive, QuotaPolicy

STUDENTS = 50
SCALE = 0.02  # Google's schedule 50 times faster: retries wait at most 0.64 s


async def test_fifty_concurrent_pulls_against_a_throttling_quota(tmp_path: Path) -> None:
    # About 450 API calls (nine per pull) against one bucket of 300 calls/s with bursts of 10:
    # the pulls that start together get throttled and must back off and retry.
    async with FakeDrive(quota=QuotaPolicy(rate=300, burst=10, status=403)) as drive:
        key = drive.service_account_key()
        key_file = tmp_path / "sa.json"
        key_file.write_text(json.dumps(key))
        course = drive.add_folder("Lab 3", share_with=key["client_email"])
        drive.add_file("lab3.ipynb", course.id, b'{"cells": [], "nbformat": 4}\n')
        drive.add_file("README.md", course.id, b"# Lab 3\n")
        data = drive.add_folder("data", course.id)
        drive.add_file("measurements.csv", data.id, b"t,v\n" + b"1,2\n" * 2000)
        drive.add_file("notes.txt", data.id, b"one\n")
        drive.add_file("notes.txt", data.id, b"two\n")  # a duplicate name, in every copy alike
        drive.add_google_doc("Instructions", course.id, "document", "# Do this\n")
        url = f"https://drive.google.com/drive/folders/{course.id}?usp=sharing"

        async def student(n: int) -> dict[str, bytes]:
            # Each student's own server: own environment (so own token), home and folder.
            credentials = EnvCredentialSource(
                {
                    "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
                    "GOOGLE_DRIVE_API_URL": drive.api_url,
                }  # noqa: E501
            )
            home = tmp_path / f"student{n}"
            config = SyncConfig(home=home / ".privatepuller", backoff_scale=SCALE)
            report = await pull(url, parent_dir=home, credentials=credentials, config=config)
            assert report.target == home / "Lab 3"
            return tree(report.target)

        started = time.monotonic()
        copies = await asyncio.gather(*(student(n) for n in range(STUDENTS)))
        elapsed = time.monotonic() - started

    assert drive.throttled_count > 0
    assert len(copies) == STUDENTS
    assert all(copy == copies[0] for copy in copies)
    assert set(copies[0]) == {
        "lab3.ipynb",
        "README.md",
        "Instructions.md",
        "data/measurements.csv",
        "data/notes.txt",
        next(p for p in copies[0] if p.startswith("data/notes (")),
    }
    assert copies[0]["Instructions.md"] == b"# Do this\n"
    assert drive.non_get_requests == []
    assert elapsed < 50
