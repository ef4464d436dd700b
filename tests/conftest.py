"""Shared fixtures: a fake Canvas with a course, a student and credentials for them."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from privatepuller.credentials.sources import CredentialSource, EnvCredentialSource
from privatepuller.http.session import SessionOptions
from privatepuller.providers import provider_for
from privatepuller.providers.canvas.policy import CANVAS_POLICY
from privatepuller.sync.config import SyncConfig
from privatepuller.sync.source import ListingLimits, Source
from privatepuller.testing.canvas.fake import FakeCanvas
from privatepuller.testing.canvas.model import FakeCourse, FakeUser

# Every test is scanned for leaked credentials (tests/leak_scan.py).
pytest_plugins = ["leak_scan"]


def blob_id(content: bytes) -> str:
    """The id git gives a blob of `content` (computed here, not asked of git)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


@asynccontextmanager
async def open_repo(
    repo: Any,
    credentials: CredentialSource,
    options: SessionOptions | None = None,
    limits: ListingLimits | None = None,
    provider: Any = None,
) -> AsyncIterator[Source]:
    """A resolved repo's `Source`, opened by its provider (or `provider`) with credentials
    read from `credentials`."""
    provider = provider or provider_for(repo)
    found = await provider.credentials(credentials, repo)
    async with provider.open(repo, found, options, limits) as source:
        yield source


# Real backoff schedule, on a clock 1000 times faster.
FAST_CANVAS_POLICY = CANVAS_POLICY.scaled(0.001)


@dataclass
class CanvasWorld:
    canvas: FakeCanvas
    course: FakeCourse
    student: FakeUser
    credentials: EnvCredentialSource
    config: SyncConfig
    workdir: Path  # the student's home: targets are created here

    def url(self, suffix: str = "") -> str:
        return f"{self.canvas.base_url}/courses/{self.course.id}/files{suffix}"


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CanvasWorld]:
    monkeypatch.setenv("PRIVATEPULLER_HOME", str(tmp_path / "pp-home"))
    async with FakeCanvas() as canvas:
        course = canvas.add_course("Data Science 101")
        student = canvas.add_user("Ada Student")
        course.enroll(student)
        course.files.add_file("Week 1/intro.ipynb", b'{"cells": []}\n')
        course.files.add_file("Week 1/data/iris.csv", b"a,b\n1,2\n")
        course.files.add_file("README.md", b"line 1\nline 2\nline 3\nline 4\nline 5\n")
        credentials = EnvCredentialSource(
            {"CANVAS_BASE_URL": canvas.base_url, "CANVAS_ACCESS_TOKEN": student.token}
        )
        workdir = tmp_path / "home"
        workdir.mkdir()
        config = SyncConfig(home=tmp_path / "pp-home")
        yield CanvasWorld(canvas, course, student, credentials, config, workdir)
