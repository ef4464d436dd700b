"""Shared pieces of the Google Drive tests: a fake Drive with the demo course shared with a
service account whose key file (token_uri = the fake) drives google-auth's real token flow."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.pull import pull
from privatepuller.sync.config import SyncConfig
from privatepuller.sync.engine import SyncReport
from privatepuller.testing.drive.fake import FakeDrive, FakeItem, RecordedRequest, populate_demo

BACKOFF_SCALE = 0.01  # Google's real schedule (1 s, 2 s, 4 s ... 32 s) 100 times faster


@dataclass
class DriveWorld:
    drive: FakeDrive
    email: str
    key: dict[str, str]
    key_file: Path
    course: FakeItem  # "Intro to Data", shared with the service account
    credentials: EnvCredentialSource  # GOOGLE_APPLICATION_CREDENTIALS + GOOGLE_DRIVE_API_URL
    config: SyncConfig
    workdir: Path  # the student's home: targets are created here

    def folder_url(self, item: FakeItem | str, query: str = "") -> str:
        item_id = item if isinstance(item, str) else item.id
        return f"https://drive.google.com/drive/folders/{item_id}{query}"

    def static_credentials(self, token: str, **extra: str) -> EnvCredentialSource:
        return EnvCredentialSource(
            {"GOOGLE_DRIVE_ACCESS_TOKEN": token, "GOOGLE_DRIVE_API_URL": self.drive.api_url} | extra
        )

    def key_credentials(self, key_file: Path) -> EnvCredentialSource:
        return EnvCredentialSource(
            {
                "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
                "GOOGLE_DRIVE_API_URL": self.drive.api_url,
            }
        )

    def child(self, parent: FakeItem | str, name: str) -> FakeItem:
        parent_id = parent if isinstance(parent, str) else parent.id
        return next(c for c in self.drive.children(parent_id) if c.name == name)


async def make_world(tmp_path: Path, drive: FakeDrive) -> DriveWorld:
    key = drive.service_account_key()
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(key))
    email = key["client_email"]
    course = populate_demo(drive, share_with=email)
    workdir = tmp_path / "home"
    workdir.mkdir(exist_ok=True)
    credentials = EnvCredentialSource(
        {"GOOGLE_APPLICATION_CREDENTIALS": str(key_file), "GOOGLE_DRIVE_API_URL": drive.api_url}
    )
    config = SyncConfig(home=tmp_path / "pp-home", backoff_scale=BACKOFF_SCALE)
    return DriveWorld(drive, email, key, key_file, course, credentials, config, workdir)


@pytest.fixture(name="world")
async def drive_world_fixture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DriveWorld]:
    monkeypatch.setenv("PRIVATEPULLER_HOME", str(tmp_path / "pp-home"))
    for name in ("GOOGLE_DRIVE_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PRIVATEPULLER_DRIVE_EXPORTS", raising=False)
    async with FakeDrive() as drive:
        yield await make_world(tmp_path, drive)


async def pull_drive(world: DriveWorld, url: str, **kwargs: Any) -> SyncReport:
    return await pull(
        url,
        parent_dir=kwargs.pop("parent_dir", world.workdir),
        credentials=kwargs.pop("credentials", world.credentials),
        config=kwargs.pop("config", world.config),
        **kwargs,
    )


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` except git's own, as {relative path: content}."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(folder).parts
    }


def content_requests(drive: FakeDrive, item: FakeItem | None = None) -> list[RecordedRequest]:
    """Blob downloads (alt=media) and exports, optionally of one item."""
    found = []
    for r in drive.requests:
        is_media = r.query.get("alt") == "media"
        if not (is_media or r.path.endswith("/export")):
            continue
        if item is None or r.path.startswith(f"/drive/v3/files/{item.id}"):
            found.append(r)
    return found


def list_requests(drive: FakeDrive) -> list[RecordedRequest]:
    return [r for r in drive.requests if r.path == "/drive/v3/files"]


def fast(config: SyncConfig, **changes: Any) -> SyncConfig:
    return dataclasses.replace(config, **changes)
