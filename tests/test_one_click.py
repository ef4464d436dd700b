"""One click resolves its link once, and reads credentials once.

A click is the progress page (`git-pull`, which resolves the link to name the folder) and the
stream the page opens (`git-pull/api`, which syncs). They share one resolution, and the sync
uses the credentials it was made with: a fake Canvas counts the `folders/by_path` requests, and
a counting credential source, loaded by a real `jupyter server` from its configuration, counts
the reads (each of which is a hub API request under `HubCredentialSource`).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests

from conftest import CanvasWorld
from leak_scan import observe
from privatepuller.credentials.sources import CanvasCredentials, EnvCredentialSource
from privatepuller.errors import NotFound
from privatepuller.pull import pull
from privatepuller.server.resolutions import Resolutions
from privatepuller.testing.canvas.model import FakeCourse, FakeUser
from server_helpers import CanvasThread, JupyterServer, outputs

COUNTING_SOURCE = '''
import os

from privatepuller.credentials.sources import EnvCredentialSource


class CountingCredentials(EnvCredentialSource):
    """The environment's credentials; each read is a line in $COUNTING_LOG."""

    def _count(self, provider):
        with open(os.environ["COUNTING_LOG"], "a") as log:
            log.write(provider + "\\n")

    async def canvas(self):
        self._count("canvas")
        return await super().canvas()

    async def google(self):
        self._count("google")
        return await super().google()
'''


@dataclass
class Click:
    canvas_thread: CanvasThread
    server: JupyterServer
    course: FakeCourse
    reads_log: Path

    def url(self, suffix: str = "") -> str:
        return f"{self.canvas_thread.canvas.base_url}/courses/{self.course.id}/files{suffix}"

    def by_path_requests(self) -> int:
        requests = self.canvas_thread.call(lambda: list(self.canvas_thread.canvas.requests))
        return sum("/folders/by_path/" in r.path_qs for r in requests)

    def credential_reads(self) -> list[str]:
        return self.reads_log.read_text().split() if self.reads_log.exists() else []

    def click(self, url: str, **params: str) -> list[dict[str, Any]]:
        """What a browser does: the page, then the stream with the page's targetpath, as one
        user (the login cookie the first answer sets; without it, each request of a
        token-authenticated client is another anonymous user)."""
        with requests.Session() as browser:
            browser.headers.update(self.server.auth)
            page = browser.get(
                self.server.url + "git-pull", params={"repo": url, **params}, timeout=30
            )
            observe("the git-pull page", page.content)
            assert page.status_code == 200
            targetpath = params.get("targetpath") or _page_targetpath(page.text)
            stream = browser.get(
                self.server.url + "git-pull/api",
                params={"repo": url, "targetpath": targetpath},
                timeout=60,
            )
            observe("the git-pull stream", stream.content)
        return [
            json.loads(line[len("data: ") :])
            for line in stream.text.splitlines()
            if line.startswith("data: ")
        ]


def _page_targetpath(html: str) -> str:
    """The folder name the page tells its script (`data-targetpath`, URL-encoded)."""
    marker = 'data-targetpath="'
    start = html.index(marker) + len(marker)
    return unquote(html[start : html.index('"', start)])


pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def click(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Click]:
    canvas_thread = CanvasThread()

    def populate() -> tuple[FakeUser, FakeCourse]:
        canvas = canvas_thread.canvas
        course = canvas.add_course("Data Science 101")
        student = canvas.add_user("Ada Student")
        course.enroll(student)
        course.files.add_file("Week 1/intro.ipynb", b'{"cells": []}\n')
        course.files.add_file("Week 1/data/iris.csv", b"a,b\n1,2\n")
        course.files.add_file("Week 2/notes.md", b"notes\n")
        return student, course

    student, course = canvas_thread.call(populate)
    workdir = tmp_path_factory.mktemp("one-click")
    modules = workdir / "modules"
    modules.mkdir()
    (modules / "counting_credentials.py").write_text(textwrap.dedent(COUNTING_SOURCE))
    reads_log = workdir / "credential-reads.log"
    python_path = os.pathsep.join(filter(None, [str(modules), os.getenv("PYTHONPATH")]))
    server = JupyterServer(
        workdir / "server",
        env={
            "CANVAS_BASE_URL": canvas_thread.canvas.base_url,
            "CANVAS_ACCESS_TOKEN": student.token,
            "COUNTING_LOG": str(reads_log),
            "PYTHONPATH": python_path,
        },
        args=[
            "--PrivatePuller.backoff_scale=0.02",
            "--PrivatePuller.credential_sources=counting_credentials.CountingCredentials",
        ],
    )
    with server:
        yield Click(canvas_thread, server, course, reads_log)
    canvas_thread.close()


def test_one_click_makes_one_by_path_request_and_reads_credentials_once(click: Click) -> None:
    url = click.url("/folder/Week%201")
    by_path, reads = click.by_path_requests(), len(click.credential_reads())
    events = click.click(url)
    assert events[-1] == {"phase": "finished"}, outputs(events)
    assert (click.server.root / "Week 1" / "data" / "iris.csv").read_bytes() == b"a,b\n1,2\n"
    assert click.by_path_requests() - by_path == 1
    assert click.credential_reads()[reads:] == ["canvas"]

    # The next click resolves afresh (the instructor may have moved the folder meanwhile).
    events = click.click(url)
    assert events[-1] == {"phase": "finished"}, outputs(events)
    assert click.by_path_requests() - by_path == 2
    assert click.credential_reads()[reads:] == ["canvas", "canvas"]


def test_with_a_targetpath_the_stream_resolves_once_itself(click: Click) -> None:
    # The page needs no name then, so it asks nothing; the stream resolves, once.
    url = click.url("/folder/Week%202")
    by_path, reads = click.by_path_requests(), len(click.credential_reads())
    events = click.click(url, targetpath="Second week")
    assert events[-1] == {"phase": "finished"}, outputs(events)
    assert (click.server.root / "Second week" / "notes.md").exists()
    assert click.by_path_requests() - by_path == 1
    assert click.credential_reads()[reads:] == ["canvas"]


def test_a_stream_without_its_page_resolves_itself(click: Click) -> None:
    url = click.url("/folder/Week%201/data")
    by_path = click.by_path_requests()
    events = click.server.sync(url, targetpath="data only")
    assert events[-1] == {"phase": "finished"}, outputs(events)
    assert click.by_path_requests() - by_path == 1


class CountingSource(EnvCredentialSource):
    def __init__(self, environ: dict[str, str]) -> None:
        super().__init__(environ)
        self.reads = 0

    async def canvas(self) -> CanvasCredentials | None:
        self.reads += 1
        return await super().canvas()


async def test_a_pull_reads_credentials_once(world: CanvasWorld) -> None:
    source = CountingSource(
        {"CANVAS_BASE_URL": world.canvas.base_url, "CANVAS_ACCESS_TOKEN": world.student.token}
    )
    report = await pull(
        world.url("/folder/Week%201"),
        parent_dir=world.workdir,
        credentials=source,
        config=world.config,
    )
    assert (report.target / "intro.ipynb").exists()
    assert source.reads == 1


# -- the resolutions themselves ------------------------------------------------------------


async def _resolved(value: str) -> Any:
    return value


async def test_a_resolution_is_taken_once() -> None:
    resolutions = Resolutions()
    started = resolutions.start(("ada", "link"), lambda: _resolved("repo"))
    taken = resolutions.take(("ada", "link"))
    assert taken is started and await taken == "repo"
    assert resolutions.take(("ada", "link")) is None
    assert resolutions.take(("bo", "link")) is None


async def test_resolutions_expire_and_are_bounded() -> None:
    now = [1000.0]
    resolutions = Resolutions(ttl=60, max_entries=3, clock=lambda: now[0])
    for n in range(5):
        resolutions.start(("ada", n), lambda: _resolved("repo"))
    assert len(resolutions) == 3  # the oldest two were dropped
    assert resolutions.take(("ada", 0)) is None and resolutions.take(("ada", 4)) is not None
    now[0] += 61
    assert resolutions.take(("ada", 3)) is None and len(resolutions) == 0


async def test_a_failed_resolution_nobody_takes_is_not_an_unretrieved_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> Any:
        raise NotFound("gone")

    task = Resolutions().start(("ada", "link"), fails)
    await asyncio.sleep(0)
    assert task.done()
    del task
    gc.collect()
    assert "never retrieved" not in caplog.text
