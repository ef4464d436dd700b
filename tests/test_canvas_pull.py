"""Canvas files pull into a student's folder, and a second pull merges like nbgitpuller."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from pathlib import Path

import pytest

from conftest import CanvasWorld
from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.errors import (
    LoginExpired,
    NoAccess,
    NotConfigured,
    NotFound,
    SyncBusy,
    WrongHost,
)
from privatepuller.providers.canvas.policy import CANVAS_POLICY
from privatepuller.pull import pull
from privatepuller.sizes import MiB
from privatepuller.sync.engine import SyncReport
from privatepuller.sync.store import origin_for


async def pull_course(world: CanvasWorld, suffix: str = "", **kwargs) -> SyncReport:
    config = kwargs.pop("config", dataclasses.replace(world.config, backoff_scale=0.001))
    return await pull(
        world.url(suffix),
        parent_dir=world.workdir,
        credentials=kwargs.pop("credentials", world.credentials),
        config=config,
        **kwargs,
    )


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` except git's own, as {relative path: content}."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(folder).parts
    }


def download_count(world: CanvasWorld) -> int:
    return sum(1 for r in world.canvas.requests if r.origin == "filestore")


async def test_first_pull_creates_the_course_folder(world: CanvasWorld) -> None:
    report = await pull_course(world)
    target = world.workdir / "Data Science 101"
    assert report.target == target
    assert tree(target) == {
        "README.md": b"line 1\nline 2\nline 3\nline 4\nline 5\n",
        "Week 1/data/iris.csv": b"a,b\n1,2\n",
        "Week 1/intro.ipynb": b'{"cells": []}\n',
    }
    assert sorted(report.added) == sorted(tree(target))
    assert world.canvas.non_get_requests == []
    assert world.canvas.filestore_authorization_headers == []


@pytest.mark.parametrize("verifier_urls", [False, True], ids=["canvas-now", "verifier-urls"])
async def test_downloads_carry_the_token_to_canvas_and_never_to_the_file_store(
    world: CanvasWorld, verifier_urls: bool
) -> None:
    """Canvas since its 25 March 2026 deploy (file URLs without `verifier`; a download needs the
    token) and older Canvas (FakeCanvas(verifier_urls=True)): either way the token goes to the
    Canvas origin's download URL and is dropped at the redirect to the file store."""
    world.canvas.verifier_urls = verifier_urls  # read per request, like the constructor's flag
    report = await pull_course(world, "/folder/Week%201")
    assert sorted(report.added) == ["data/iris.csv", "intro.ipynb"]
    downloads = [r for r in world.canvas.requests if "/download" in r.path_qs]
    assert len(downloads) == 2
    for request in downloads:
        assert request.origin == "canvas" and request.status == 302
        assert request.path_qs.startswith("/files/")
        assert ("verifier=" in request.path_qs) == verifier_urls
        assert request.authorization == f"Bearer {world.student.token}"
    blobs = [r for r in world.canvas.requests if r.origin == "filestore"]
    assert [(r.status, r.authorization) for r in blobs] == [(200, None), (200, None)]
    assert world.canvas.filestore_authorization_headers == []


async def test_subfolder_link_pulls_only_that_folder_named_after_it(world: CanvasWorld) -> None:
    report = await pull_course(world, "/folder/Week%201")
    assert report.target == world.workdir / "Week 1"
    assert set(tree(report.target)) == {"intro.ipynb", "data/iris.csv"}


async def test_single_file_link(world: CanvasWorld) -> None:
    file = world.course.files.file("Week 1/data/iris.csv")
    report = await pull_course(world, f"/{file.id}/preview?module_item_id=7")
    assert tree(report.target) == {"iris.csv": b"a,b\n1,2\n"}
    assert report.target.name == "iris"


async def test_resync_with_nothing_changed_downloads_nothing(world: CanvasWorld) -> None:
    await pull_course(world)
    before_downloads, before_requests = download_count(world), len(world.canvas.requests)
    report = await pull_course(world)
    assert download_count(world) == before_downloads
    assert report.downloaded_files == 0 and report.commit is None
    # Resolving (root folder + course name) and one page each of folders and files.
    assert len(world.canvas.requests) - before_requests == 4


async def test_resync_downloads_only_changed_files(world: CanvasWorld) -> None:
    await pull_course(world)
    before = download_count(world)
    world.course.files.update_file("Week 1/data/iris.csv", b"a,b\n1,2\n3,4\n")
    report = await pull_course(world)
    assert download_count(world) - before == 1
    assert report.updated == ("Week 1/data/iris.csv",)
    assert (report.target / "Week 1/data/iris.csv").read_bytes() == b"a,b\n1,2\n3,4\n"


async def test_listing_follows_pagination_with_few_requests(world: CanvasWorld) -> None:
    for n in range(250):
        world.course.files.add_file(f"many/f{n:03}.txt", b"x")
    report = await pull_course(world)
    assert len(tree(report.target)) == 253
    listing = [r for r in world.canvas.requests if r.path_qs.startswith("/api/v1/courses/")]
    file_pages = [r for r in listing if "/files" in r.path_qs.split("?")[0]]
    assert len(file_pages) == 3  # 253 files at 100 per page
    assert all("per_page=100" in r.path_qs for r in file_pages)


# --- merging like nbgitpuller (DESIGN.md: the git step is the point) ---


async def test_student_and_instructor_edit_different_lines_both_kept(world: CanvasWorld) -> None:
    report = await pull_course(world)
    readme = report.target / "README.md"
    readme.write_text("student line 1\nline 2\nline 3\nline 4\nline 5\n")
    world.course.files.update_file("README.md", b"line 1\nline 2\nline 3\nline 4\nNEW line 5\n")
    await pull_course(world)
    assert readme.read_text() == "student line 1\nline 2\nline 3\nline 4\nNEW line 5\n"


async def test_same_line_conflict_keeps_the_students_line(world: CanvasWorld) -> None:
    report = await pull_course(world)
    readme = report.target / "README.md"
    readme.write_text("mine\nline 2\nline 3\nline 4\nline 5\n")
    world.course.files.update_file("README.md", b"theirs\nline 2\nline 3\nline 4\nline 5\n")
    await pull_course(world)
    assert readme.read_text().splitlines()[0] == "mine"


async def test_deleted_file_comes_back(world: CanvasWorld) -> None:
    report = await pull_course(world)
    (report.target / "Week 1/intro.ipynb").unlink()
    await pull_course(world)
    assert (report.target / "Week 1/intro.ipynb").read_bytes() == b'{"cells": []}\n'


async def test_students_file_is_renamed_when_upstream_adds_the_same_name(
    world: CanvasWorld,
) -> None:
    report = await pull_course(world)
    (report.target / "notes.txt").write_text("my notes")
    world.course.files.add_file("notes.txt", b"instructor notes")
    await pull_course(world)
    assert (report.target / "notes.txt").read_text() == "instructor notes"
    renamed = [p for p in report.target.glob("notes__*.txt")]
    assert len(renamed) == 1 and renamed[0].read_text() == "my notes"


async def test_upstream_deletion_removes_unedited_files_but_keeps_edited_ones(
    world: CanvasWorld,
) -> None:
    report = await pull_course(world)
    (report.target / "README.md").write_text("I edited this\n")
    world.course.files.remove("README.md")
    world.course.files.remove("Week 1/intro.ipynb")
    second = await pull_course(world)
    assert set(second.removed) == {"README.md", "Week 1/intro.ipynb"}
    assert not (report.target / "Week 1/intro.ipynb").exists()
    assert (report.target / "README.md").read_text() == "I edited this\n"


async def test_renamed_folder_follows_without_downloading_again(world: CanvasWorld) -> None:
    report = await pull_course(world)
    before = download_count(world)
    world.course.files.rename("Week 1", "Week 01")
    await pull_course(world)
    assert not (report.target / "Week 1").exists()
    assert (report.target / "Week 01/data/iris.csv").read_bytes() == b"a,b\n1,2\n"
    assert download_count(world) == before  # same ids and change keys: blobs reused


# --- what gets skipped or excluded, and said ---


async def test_locked_and_hidden_files_are_skipped_and_reported(world: CanvasWorld) -> None:
    world.course.files.add_file("Week 3/quiz.ipynb", b"{}", module_lock="Week 3")
    world.course.files.add_file("Week 1/answers.ipynb", b"{}", hidden=True)
    report = await pull_course(world)
    assert not (report.target / "Week 3/quiz.ipynb").exists()
    assert not (report.target / "Week 1/answers.ipynb").exists()
    locked = {s.path: s for s in report.skipped if s.reason == "locked"}
    assert "Week 3/quiz.ipynb" in locked and "<b>" not in locked["Week 3/quiz.ipynb"].detail


async def test_large_files_are_excluded_not_truncated(world: CanvasWorld) -> None:
    world.course.files.add_file("big/dataset.bin", size=3 * MiB)
    world.course.files.add_file("big/medium.bin", size=MiB)
    config = dataclasses.replace(world.config, max_file_size=2 * MiB, max_total_size=MiB)
    report = await pull_course(world, config=config)
    reasons = {s.path: s.reason for s in report.excluded}
    assert reasons == {"big/dataset.bin": "too_large", "big/medium.bin": "total_cap"}
    assert not (report.target / "big").exists()


# --- bad input: a clear error and nothing lost ---


async def test_canvas_link_on_another_host_is_refused_without_sending_the_token(
    world: CanvasWorld,
) -> None:
    with pytest.raises(WrongHost) as info:
        await pull(
            "https://evil.example/courses/1/files",
            parent_dir=world.workdir,
            credentials=world.credentials,
            config=world.config,
        )
    assert "evil.example" in str(info.value)
    assert world.canvas.requests == []


async def test_no_token_configured_tells_student_and_admin_what_to_do(
    world: CanvasWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On its own (the command line): which variables to set.
    with pytest.raises(NotConfigured) as info:
        await pull_course(world, credentials=EnvCredentialSource({}))
    assert "CANVAS_BASE_URL" in str(info.value) and "CANVAS_ACCESS_TOKEN" in str(info.value)
    # Under a hub: the admin sets it up.
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")
    with pytest.raises(NotConfigured) as info:
        await pull_course(world, credentials=EnvCredentialSource({}))
    assert "hub administrator" in str(info.value) and "docs/admin.md" in str(info.value)


async def test_expired_token_says_log_in_again(
    world: CanvasWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.canvas.expire_token(world.student.token)
    with pytest.raises(LoginExpired) as info:
        await pull_course(world)
    assert "Make a new one" in str(info.value) and "hub" not in str(info.value)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "a-token-of-the-hub")
    with pytest.raises(LoginExpired) as info:
        await pull_course(world)
    assert "Log out of the hub and log in again" in str(info.value)
    assert world.student.token not in str(info.value)


async def test_folder_the_student_cannot_see_and_missing_folder(world: CanvasWorld) -> None:
    outsider = world.canvas.add_user("Eve Outsider")
    credentials = EnvCredentialSource(
        {"CANVAS_BASE_URL": world.canvas.base_url, "CANVAS_ACCESS_TOKEN": outsider.token}
    )
    with pytest.raises(NoAccess) as no_access:
        await pull_course(world, credentials=credentials)
    assert "enrolled" in str(no_access.value)
    with pytest.raises(NotFound) as missing:
        await pull_course(world, "/folder/Week%209")
    assert "Week 9" in str(missing.value)
    assert list(world.workdir.iterdir()) == []


async def test_connection_dropped_mid_download_leaves_folder_and_origin_untouched(
    world: CanvasWorld,
) -> None:
    report = await pull_course(world)
    before = tree(report.target)
    origin = origin_for(world.config, _source_key(world))
    head = origin.head()
    world.course.files.update_file("Week 1/data/iris.csv", b"new,data\n")
    # Every attempt the retry budget allows is cut off mid-body; then the fault is used up.
    world.canvas.inject_fault(r"^/blob/", "reset", times=CANVAS_POLICY.max_attempts)
    with pytest.raises(Exception) as info:
        await pull_course(world)
    assert "try again" in str(info.value)
    assert tree(report.target) == before and origin.head() == head
    await pull_course(world)
    assert (report.target / "Week 1/data/iris.csv").read_bytes() == b"new,data\n"


def _source_key(world: CanvasWorld) -> str:
    root = world.course.files.folder("")
    return f"canvas:{world.canvas.base_url}/courses/{world.course.id}/folders/{root.id}"


async def test_a_second_sync_of_the_same_folder_says_so(world: CanvasWorld) -> None:
    world.canvas.latency = 0.2
    first = asyncio.create_task(pull_course(world))
    await asyncio.sleep(0.1)
    with pytest.raises(SyncBusy):
        await pull_course(world)
    report = await first
    assert set(tree(report.target)) == {"README.md", "Week 1/intro.ipynb", "Week 1/data/iris.csv"}


async def test_token_never_reaches_disk_git_or_reports(world: CanvasWorld) -> None:
    report = await pull_course(world)
    world.course.files.update_file("README.md", b"changed\n")
    second = await pull_course(world)
    token = world.student.token.encode()
    for path in [*world.workdir.rglob("*"), *world.config.home.rglob("*")]:
        if path.is_file():
            assert token not in path.read_bytes(), path
    for git_dir in (report.target / ".git", origin_for(world.config, _source_key(world)).path):
        objects = subprocess.run(
            ["git", "--git-dir", str(git_dir), "cat-file", "--batch-all-objects", "--batch"],
            capture_output=True,
            check=True,
        ).stdout
        assert objects and token not in objects
        config = subprocess.run(
            ["git", "--git-dir", str(git_dir), "config", "--list"], capture_output=True
        ).stdout
        assert token not in config
    assert world.student.token not in repr(report) + repr(second)
