"""Server-extension pieces without a server: SSE events, target paths, scrubbing, links."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from traitlets.config import Config

from privatepuller.credentials.sources import ChainedCredentialSource, EnvCredentialSource
from privatepuller.errors import LoginExpired, MergeFailed, RateLimited, UnsupportedURL
from privatepuller.link import make_link
from privatepuller.providers.canvas.skips import CanvasSkip
from privatepuller.server.config import PrivatePuller
from privatepuller.server.events import (
    SSEProgress,
    pull_error_event,
    report_lines,
    scrub,
    unexpected_error_event,
)
from privatepuller.sizes import MiB
from privatepuller.sync.engine import SyncReport
from privatepuller.sync.source import Skipped, SyncSkip

CANVAS_URL = "https://canvas.example.edu/courses/12/files/folder/Week%201"


# -- SSE events ------------------------------------------------------------------------------


def test_error_events_always_carry_the_error_object_the_page_reads() -> None:
    event = pull_error_event(LoginExpired("Your login has expired. Log out and in again."))
    assert event["phase"] == "error"
    assert event["message"] == "Your login has expired. Log out and in again."
    assert event["error"]["code"] == "login_expired"
    assert event["error"]["message"] == event["message"]
    assert "Your login has expired" in event["error"]["traceback"]
    assert event["output"] == event["error"]["traceback"]


def test_rate_limited_is_reported_with_its_own_code() -> None:
    event = pull_error_event(RateLimited("Canvas is busy; try again in a few minutes."))
    assert (event["error"]["code"], event["message"]) == (
        "rate_limited",
        "Canvas is busy; try again in a few minutes.",
    )


def test_merge_failure_keeps_nbgitpullers_code_and_shows_git_output() -> None:
    event = pull_error_event(MergeFailed("Use Backup and resync."), ["$ git merge", "fatal: x"])
    assert event["error"]["code"] == "merge"  # the page offers "Backup and resync" for it
    assert "fatal: x" in event["error"]["traceback"]


def test_unexpected_errors_get_a_general_message_and_a_scrubbed_detail() -> None:
    token = "7~" + "a" * 64
    try:
        raise ValueError(f"GET https://files.example/x?sig=abc&token={token} failed")
    except ValueError as error:
        event = unexpected_error_event(error)
    assert event["error"]["code"] == "unknown"
    assert "your folder was not changed" in event["message"]
    text = str(event)
    assert token not in text and "sig=abc" not in text
    assert "ValueError" in event["error"]["traceback"]


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer ya29.c.secretsecretsecret",
        "{'Authorization': 'Bearer 1~abcdefghijklmnopqrstuvwxyz0123456789'}",
        "https://canvas.example.edu/api/v1/files/1?access_token=s3cr3tvalue&x=1",
        "refresh_token=abcdefgh123 in body",
        "token 12~abcdefghijklmnopqrstuvwxyzABCDEF in a log",
    ],
)
def test_scrub_removes_credentials(text: str) -> None:
    cleaned = scrub(text)
    for secret in ("ya29.c.secret", "abcdefghijklmnopqrstuvwxyz", "s3cr3tvalue", "abcdefgh123"):
        assert secret not in cleaned


def test_scrub_removes_the_environments_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANVAS_ACCESS_TOKEN", "plainsecret-without-shape")
    assert "plainsecret" not in scrub("oops plainsecret-without-shape leaked")
    # ...and leaves a student's message alone
    message = "Your Canvas token is expired; log in again."
    assert scrub(message) == message


def test_report_lines_list_every_file_not_copied_and_why() -> None:
    report = SyncReport(
        name="Week 1",
        target=Path("/home/ada/Week 1"),
        added=("a.ipynb",),
        updated=(),
        removed=(),
        unchanged=2,
        excluded=(Skipped("data/big.csv", SyncSkip.TOO_LARGE, "150.0 MB"),),
        skipped=(Skipped("quiz.ipynb", CanvasSkip.LOCKED, "Unlocks on Monday"),),
        downloaded_files=1,
        downloaded_bytes=10,
        commit="abc",
    )
    lines = report_lines(report)
    assert lines[0] == "Synced “Week 1”: 1 added, 0 updated, 0 removed, 2 unchanged"
    assert "  data/big.csv (150.0 MB): larger than this hub's limit for one file" in lines
    assert "  quiz.ipynb: locked in Canvas (Unlocks on Monday)" in lines


async def test_progress_events_arrive_in_order_from_the_loop_and_from_threads() -> None:
    queue: asyncio.Queue[dict] = asyncio.Queue()
    progress = SSEProgress(asyncio.get_running_loop(), queue)
    progress.listed(2, 3 * MiB)
    progress.file_done("a.csv", 2 * MiB)
    progress.waiting(12.4, "canvas")
    thread = threading.Thread(target=lambda: [progress.git_output(f"git {i}") for i in range(3)])
    thread.start()
    thread.join()
    await asyncio.sleep(0.01)  # call_soon_threadsafe callbacks run
    outputs = [queue.get_nowait()["output"] for _ in range(queue.qsize())]
    assert outputs == [
        "Downloading 2 files (3.0 MB)\n",
        "  a.csv (2.0 MB)\n",
        "Canvas asks us to slow down (many students are syncing); waiting 12 s, then continuing\n",
        "git 0\n",
        "git 1\n",
        "git 2\n",
    ]


# -- target paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "targetpath", ["../x", "/etc", "a/../../b", "", ".", "~/x", "a\\..\\b", "x/.git", "a\x00b"]
)
def test_unsafe_targetpaths_are_refused(tmp_path: Path, targetpath: str) -> None:
    from privatepuller.targets import BadTargetPath, safe_target

    with pytest.raises(BadTargetPath) as caught:
        safe_target(tmp_path, targetpath)
    assert caught.value.code == "targetpath"
    assert "Ask your instructor" in caught.value.message


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    from privatepuller.targets import BadTargetPath, safe_target

    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "out").symlink_to(tmp_path)
    with pytest.raises(BadTargetPath):
        safe_target(tmp_path / "root", "out/x")


@pytest.mark.parametrize("targetpath", ["Week 1", "courses/DS 101", "./Week 1", "Übung"])
def test_relative_targetpaths_are_accepted(tmp_path: Path, targetpath: str) -> None:
    from privatepuller.targets import safe_target

    target = safe_target(tmp_path, targetpath)
    assert target.parent == tmp_path or tmp_path in target.parents
    assert os.path.normpath(target) == os.path.normpath(tmp_path / targetpath)


# -- configuration -------------------------------------------------------------------------


def test_privatepuller_config_reaches_the_sync_engine(tmp_path: Path) -> None:
    config = Config()
    config.PrivatePuller.max_file_size = 5 * MiB
    config.PrivatePuller.max_total_size = 50 * MiB
    config.PrivatePuller.lock_wait = 3.0
    config.PrivatePuller.home = str(tmp_path)
    config.PrivatePuller.credential_sources = [
        "privatepuller.credentials.sources.EnvCredentialSource"
    ]
    settings = PrivatePuller(config=config)
    sync = settings.sync_config()
    assert (sync.max_file_size, sync.max_total_size, sync.lock_wait) == (5 * MiB, 50 * MiB, 3.0)
    assert sync.home == tmp_path
    assert isinstance(settings.credentials(), EnvCredentialSource)
    assert settings.credentials() is settings.credentials()  # one source for the server


def test_default_credentials_try_the_hub_then_the_environment() -> None:
    sources = PrivatePuller().credential_sources
    assert sources[-1] is EnvCredentialSource
    if len(sources) > 1:
        assert isinstance(PrivatePuller().credentials(), ChainedCredentialSource)


# -- links for instructors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "hub",
    [
        "https://hub.example.edu",
        "https://hub.example.edu/",
        "https://hub.example.edu/hub/",
        "https://hub.example.edu/hub/user-redirect",
    ],
)
def test_make_link_is_an_nbgitpuller_link(hub: str) -> None:
    link = make_link(CANVAS_URL, hub=hub, urlpath="/lab/tree/Week 1/intro.ipynb")
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc) == ("https", "hub.example.edu")
    assert parts.path == "/hub/user-redirect/git-pull"
    assert parse_qs(parts.query) == {
        "repo": [CANVAS_URL],
        "urlpath": ["lab/tree/Week 1/intro.ipynb"],
    }
    assert " " not in link and "+" not in link  # %20, as nbgitpuller's link generator does


def test_make_link_keeps_a_hub_prefix_and_targetpath() -> None:
    link = make_link(CANVAS_URL, hub="https://example.edu/jupyter", targetpath="DS101")
    parts = urlsplit(link)
    assert parts.path == "/jupyter/hub/user-redirect/git-pull"
    assert parse_qs(parts.query)["targetpath"] == ["DS101"]


def test_make_link_refuses_urls_that_are_not_ours() -> None:
    with pytest.raises(UnsupportedURL):
        make_link("https://github.com/org/repo", hub="https://hub.example.edu")
    with pytest.raises(UnsupportedURL):
        make_link(CANVAS_URL, hub="hub.example.edu")


def test_link_command_prints_the_link() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "privatepuller.cli", "link", CANVAS_URL,
         "--hub", "https://hub.example.edu", "--urlpath", "lab/tree/Week 1"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == (
        "https://hub.example.edu/hub/user-redirect/git-pull?repo=https%3A%2F%2Fcanvas.example.edu"
        "%2Fcourses%2F12%2Ffiles%2Ffolder%2FWeek%25201&urlpath=lab%2Ftree%2FWeek%201"
    )


@pytest.mark.parametrize(
    ("environ", "extensions", "app"),
    [
        ({}, {}, "notebook"),  # nbgitpuller's default: tree/<folder>
        ({}, {"jupyterlab": True}, "lab"),  # only JupyterLab: tree/ would be a 404
        ({}, {"jupyterlab": True, "notebook": True}, "notebook"),
        ({}, {"jupyterlab": False, "notebook": False}, "notebook"),
        ({"NBGITPULLER_APP": "lab"}, {"notebook": True}, "lab"),
    ],
)
def test_links_without_urlpath_land_where_a_file_browser_is(
    environ: dict[str, str], extensions: dict[str, bool], app: str
) -> None:
    from privatepuller.server.handlers import default_app

    assert default_app(environ, extensions) == app
