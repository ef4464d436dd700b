"""Drive folders pull with the hub's service account, through the same engine as Canvas."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest
import repoproviders
from repoproviders.fetchers.fetcher import FETCHER_BY_TYPE
from repoproviders.resolvers.base import DoesNotExist, Exists, MaybeExists
from repoproviders.resolvers.resolver import RESOLVER_BY_TYPE

from conftest import open_repo
from gdrive_helpers import (
    DriveWorld,
    content_requests,
    drive_world_fixture,  # noqa: F401  (the `world` fixture; overrides Canvas's)
    list_requests,
    pull_drive,
    tree,
)
from privatepuller.errors import ConfigurationError, NoAccess
from privatepuller.http.session import SessionOptions
from privatepuller.providers.gdrive import GoogleDriveProvider
from privatepuller.providers.gdrive.exports import ExportFormats
from privatepuller.providers.gdrive.links import GoogleDriveFolder, GoogleDriveFolderLink
from privatepuller.providers.gdrive.policy import GOOGLE_POLICY
from privatepuller.providers.repoproviders import register
from privatepuller.sizes import MiB
from privatepuller.sync.engine import sync
from privatepuller.testing.drive.demo import notebook
from privatepuller.testing.drive.fake import COLAB

FAST = SessionOptions(GOOGLE_POLICY.scaled(0.01))


async def test_first_pull_mirrors_the_folder_with_exports_and_awkward_names(
    world: DriveWorld,
) -> None:
    report = await pull_drive(world, world.folder_url(world.course, "?usp=sharing"))
    target = world.workdir / "Intro to Data"
    assert report.target == target
    files = tree(target)
    data = world.child(world.course, "data")
    notes = [c for c in world.drive.children(data.id) if c.name == "notes.txt"]
    results_lower = world.child(data, "results.csv")
    second_notes = f"notes ({notes[1].id[-8:]}).txt"
    data_files = {
        "iris.csv": b"sepal_length,species\n5.1,setosa\n",
        # duplicates: the earlier-created file keeps the name, the other gets its id's tail
        "notes.txt": b"first notes\n",
        second_notes: b"second notes, same name\n",
        # names that differ only in case never collide on a case-insensitive disk
        "Results.csv": b"x\n1\n",
        f"results ({results_lower.id[-8:]}).csv": b"x\n2\n",
        # "/" in a name stays inside the folder
        "2024_25 schedule.txt": b"Term 1\n",
    }
    colab = world.drive.item(world.child(world.course, "Lab 1 (Colab).ipynb").id)
    expected = {
        "README.md": b"# Intro to Data\n\nStart with `01-welcome.ipynb`.\n",
        "01-welcome.ipynb": world.child(world.course, "01-welcome.ipynb").content,
        "02-pandas.ipynb": world.child(world.course, "02-pandas.ipynb").content,
        "Lab 1 (Colab).ipynb": colab.content,
        "Syllabus.md": b"# Syllabus\n\nWeek 1: tables.\n",  # Docs -> Markdown by default
        "homework/hw1.ipynb": world.child(world.child(world.course, "homework"), "hw1.ipynb").content,  # noqa: E501
        **{f"data/{name}": body for name, body in data_files.items()},
        # a folder shortcut is followed, under the shortcut's name
        **{f"Link to data/{name}": body for name, body in data_files.items()},
    }  # fmt: skip
    slides, sheet = files.pop("Lecture 1.pdf"), files.pop("Grades template.xlsx")
    assert files == expected
    assert slides.startswith(b"%PDF") and sheet.startswith(b"PK")  # Slides->PDF, Sheets->xlsx
    assert json.loads(files["Lab 1 (Colab).ipynb"])["nbformat"] == 4
    assert "data/old.csv" not in files  # trashed

    skipped = {(s.path, s.reason) for s in report.skipped}
    assert skipped == {
        ("Feedback form", "not_exportable"),
        ("data/Back to course (loop)", "shortcut_loop"),
        ("Link to data/Back to course (loop)", "shortcut_loop"),
        ("homework/Link to removed file", "dangling_shortcut"),
    }
    assert world.drive.non_get_requests == []
    assert all(r.path.startswith("/drive/v3/") for r in world.drive.requests)
    issued = set(world.drive.tokens)
    assert all(r.authorization in {f"Bearer {t}" for t in issued} for r in world.drive.requests)
    assert len(world.drive.token_requests) == 1  # one token for the resolver and the fetcher


async def test_listing_sends_the_documented_query(world: DriveWorld) -> None:
    await pull_drive(world, world.folder_url(world.course))
    lists = list_requests(world.drive)
    listed = {r.query["q"] for r in lists}
    data = world.child(world.course, "data")
    homework = world.child(world.course, "homework")
    # one listing per folder, even though "data" is also reached through a shortcut
    assert listed == {
        f"'{f.id}' in parents and trashed = false" for f in (world.course, data, homework)
    }
    assert len(lists) == 3
    for r in lists:
        assert "nextPageToken" in r.query["fields"].split(",")
        assert r.query["pageSize"] == "1000"
        assert r.query["supportsAllDrives"] == "true"
        assert r.query["includeItemsFromAllDrives"] == "true"


async def test_paging_continues_through_short_and_empty_pages(world: DriveWorld) -> None:
    big = world.drive.add_folder("big", share_with=world.email)
    for i in range(2100):
        world.drive.add_file(f"f{i:04}.txt", big.id, b"")
    world.drive.short_pages = True  # pages of 1000, 0, 500, 1000, 0: tokens until the end
    repo = GoogleDriveFolder(big.id, "big")
    async with open_repo(repo, world.credentials, FAST) as source:
        listing = await source.list()
    assert len(listing.files) == 2100
    assert {f.path for f in listing.files} == {f"f{i:04}.txt" for i in range(2100)}
    pages = list_requests(world.drive)
    assert len(pages) == 5
    assert "pageToken" not in pages[0].query and all("pageToken" in p.query for p in pages[1:])


async def test_resync_downloads_only_what_changed(world: DriveWorld) -> None:
    url = world.folder_url(world.course)
    await pull_drive(world, url)
    homework = world.child(world.course, "homework")
    hw1 = world.child(homework, "hw1.ipynb")
    syllabus = world.child(world.course, "Syllabus")
    readme = world.child(world.course, "README.md")
    world.drive.update_file(hw1.id, notebook(("code", "# week 2 answer")))  # new md5
    world.drive.update_file(syllabus.id, b"# Syllabus\n\nWeek 2: plots.\n")  # new version
    world.drive.rename(readme.id, "START HERE.md")  # same md5: no download
    before = len(content_requests(world.drive))

    report = await pull_drive(world, url)
    fetched = content_requests(world.drive)[before:]
    assert sorted(r.path for r in fetched) == sorted(
        [f"/drive/v3/files/{hw1.id}", f"/drive/v3/files/{syllabus.id}/export"]
    )
    assert report.downloaded_files == 2
    assert sorted(report.updated) == ["Syllabus.md", "homework/hw1.ipynb"]
    assert report.added == ("START HERE.md",) and report.removed == ("README.md",)
    target = report.target
    assert (target / "Syllabus.md").read_bytes() == b"# Syllabus\n\nWeek 2: plots.\n"
    assert (target / "START HERE.md").read_bytes().startswith(b"# Intro to Data")

    report = await pull_drive(world, url)  # nothing changed
    assert report.downloaded_files == 0 and report.commit is None
    assert len(content_requests(world.drive)) == before + 2


async def test_second_pull_keeps_the_students_edits(world: DriveWorld) -> None:
    url = world.folder_url(world.course)
    report = await pull_drive(world, url)
    mine = report.target / "02-pandas.ipynb"
    mine.write_bytes(mine.read_bytes().replace(b"iris.csv", b"iris.csv')\n# my work"))
    (report.target / "my notes.txt").write_text("mine\n")
    world.drive.update_file(
        world.child(world.course, "01-welcome.ipynb").id, notebook(("markdown", "# Week 2"))
    )
    await pull_drive(world, url)
    assert b"# my work" in mine.read_bytes()
    assert (report.target / "my notes.txt").read_text() == "mine\n"
    assert b"# Week 2" in (report.target / "01-welcome.ipynb").read_bytes()


async def test_shared_drive_root(world: DriveWorld) -> None:
    shared = world.drive.add_shared_drive("Course Drive", share_with=world.email)
    week = world.drive.add_folder("Week 1", shared.id)
    world.drive.add_file("intro.ipynb", week.id, b'{"cells": []}\n')
    world.drive.add_file("syllabus.txt", shared.id, b"hello\n")
    report = await pull_drive(
        world, f"https://drive.google.com/drive/u/1/folders/{shared.id}?usp=sharing"
    )
    assert report.target == world.workdir / "Course Drive"
    assert tree(report.target) == {
        "Week 1/intro.ipynb": b'{"cells": []}\n',
        "syllabus.txt": b"hello\n",
    }
    for r in list_requests(world.drive):
        assert r.query["corpora"] == "drive" and r.query["driveId"] == shared.id


async def test_link_shared_folder_needs_its_resource_key(world: DriveWorld) -> None:
    folder = world.drive.add_folder("By link", needs_resource_key=True)
    inner = world.drive.add_folder("inner", folder.id)
    world.drive.add_file("a.txt", inner.id, b"a\n")
    key = world.drive.item(folder.id).resource_key
    assert key is not None

    with pytest.raises(NoAccess, match=world.email):
        await pull_drive(world, world.folder_url(folder))

    report = await pull_drive(world, world.folder_url(folder, f"?resourcekey={key}&usp=sharing"))
    assert tree(report.target) == {"inner/a.txt": b"a\n"}
    after = [r for r in world.drive.requests if r.status == 200]
    assert after and all(f"{folder.id}/{key}" in (r.resource_keys or "") for r in after)


async def test_single_file_links(world: DriveWorld) -> None:
    data = world.child(world.course, "data")
    iris = world.child(data, "iris.csv")
    report = await pull_drive(world, f"https://drive.google.com/file/d/{iris.id}/view?usp=sharing")
    assert report.target == world.workdir / "iris"
    assert tree(report.target) == {"iris.csv": b"sepal_length,species\n5.1,setosa\n"}

    syllabus = world.child(world.course, "Syllabus")
    report = await pull_drive(world, f"https://docs.google.com/document/d/{syllabus.id}/edit")
    assert tree(report.target) == {"Syllabus.md": b"# Syllabus\n\nWeek 1: tables.\n"}

    colab = world.child(world.course, "Lab 1 (Colab).ipynb")
    report = await pull_drive(
        world, f"https://colab.research.google.com/drive/{colab.id}#scrollTo=x1"
    )
    assert report.target == world.workdir / "Lab 1 (Colab)"
    assert tree(report.target) == {"Lab 1 (Colab).ipynb": colab.content}

    # open?id= names a file or a folder: Drive says which.
    report = await pull_drive(world, f"https://drive.google.com/open?id={data.id}")
    assert report.target == world.workdir / "data" and "iris.csv" in tree(report.target)


async def test_export_formats_are_configurable(world: DriveWorld) -> None:
    exports = ExportFormats.parse("document=docx, spreadsheet=csv, presentation=none")
    provider = GoogleDriveProvider(exports)
    repo = GoogleDriveFolder(world.course.id, "Intro to Data")
    target = world.workdir / "custom"
    async with open_repo(repo, world.credentials, FAST, provider=provider) as source:
        report = await sync(source, target, name=repo.name, config=world.config)
    files = tree(target)
    assert files["Grades template.csv"] == b"name,grade\nAda,A\n"
    assert files["Syllabus.docx"].startswith(b"PK")
    assert "Lecture 1.pdf" not in files
    assert ("Lecture 1", "not_exported") in {(s.path, s.reason) for s in report.skipped}

    env = ExportFormats.from_env({"PRIVATEPULLER_DRIVE_EXPORTS": "docs=text/plain"})
    assert env.get("application/vnd.google-apps.document") == ExportFormats.parse(
        "document=txt"
    ).get("application/vnd.google-apps.document")
    assert ExportFormats.from_env({}) == ExportFormats()
    with pytest.raises(ConfigurationError, match="cannot be exported as “mp3”"):
        ExportFormats.parse("document=mp3")
    with pytest.raises(ConfigurationError, match="kind=format"):
        ExportFormats.parse("movies=mp4")


async def test_export_limit_is_reported_not_fatal(world: DriveWorld) -> None:
    big = world.drive.add_google_doc(
        "Big report", world.course.id, "document", export_too_large=True
    )
    report = await pull_drive(world, world.folder_url(world.course))
    assert ("Big report.md", "export_too_large") in {(s.path, s.reason) for s in report.skipped}
    assert "10 MB" in next(s.detail for s in report.skipped if s.reason == "export_too_large")
    assert content_requests(world.drive, big) == []
    assert (report.target / "Syllabus.md").exists()


async def test_large_and_locked_files_are_excluded_and_reported(world: DriveWorld) -> None:
    huge = world.drive.add_file("dataset.bin", world.course.id, size=3 * MiB)
    locked = world.drive.add_file("answers.pdf", world.course.id, b"%PDF", can_download=False)
    config = dataclasses.replace(world.config, max_file_size=2 * MiB)
    report = await pull_drive(world, world.folder_url(world.course), config=config)
    assert [(s.path, s.reason) for s in report.excluded] == [("dataset.bin", "too_large")]
    assert ("answers.pdf", "download_disabled") in {(s.path, s.reason) for s in report.skipped}
    assert content_requests(world.drive, huge) == content_requests(world.drive, locked) == []
    assert not (report.target / "dataset.bin").exists()


async def test_colab_notebooks_land_as_ipynb(world: DriveWorld) -> None:
    body = notebook(("code", "1 + 1"))
    world.drive.add_file("Lab 2", world.course.id, body, mime_type=COLAB)
    world.drive.add_file("Lab 3.IPYNB", world.course.id, body, mime_type=COLAB + ".corp")
    report = await pull_drive(world, world.folder_url(world.course))
    assert (report.target / "Lab 2.ipynb").read_bytes() == body
    assert (report.target / "Lab 3.IPYNB").read_bytes() == body


async def test_shortcut_to_a_file_uses_the_shortcuts_name(world: DriveWorld) -> None:
    syllabus = world.child(world.course, "Syllabus")
    homework = world.child(world.course, "homework")
    world.drive.add_shortcut("Course syllabus", homework.id, syllabus.id)
    report = await pull_drive(world, world.folder_url(world.course))
    assert (report.target / "homework/Course syllabus.md").read_bytes() == (
        b"# Syllabus\n\nWeek 1: tables.\n"
    )


async def test_colliding_names_are_unique_and_stay_put_when_more_arrive(
    world: DriveWorld,
) -> None:
    clash = world.drive.add_file("Syllabus.md", world.course.id, b"an uploaded copy\n")
    shout = world.drive.add_file("SYLLABUS.MD", world.course.id, b"shouting\n")
    url = world.folder_url(world.course)
    report = await pull_drive(world, url)
    files = tree(report.target)
    # The Doc (exported as Syllabus.md) is the oldest, so it keeps the name; the newer
    # items get their ids' tails, whatever their case.
    assert files["Syllabus.md"] == b"# Syllabus\n\nWeek 1: tables.\n"
    assert files[f"Syllabus ({clash.id[-8:]}).md"] == b"an uploaded copy\n"
    assert files[f"SYLLABUS ({shout.id[-8:]}).MD"] == b"shouting\n"

    newest = world.drive.add_file("syllabus.md", world.course.id, b"newest\n")
    report = await pull_drive(world, url)
    assert report.added == (f"syllabus ({newest.id[-8:]}).md",)
    assert report.removed == () and report.updated == ()


@pytest.fixture
def registry_snapshot():  # type: ignore[no-untyped-def]
    resolvers = {k: list(v) for k, v in RESOLVER_BY_TYPE.items()}
    fetchers = dict(FETCHER_BY_TYPE)
    yield
    RESOLVER_BY_TYPE.clear()
    RESOLVER_BY_TYPE.update(resolvers)
    FETCHER_BY_TYPE.clear()
    FETCHER_BY_TYPE.update(fetchers)


async def test_repoproviders_resolves_drive_urls_with_our_types_first(
    world: DriveWorld, registry_snapshot: None, tmp_path: Path
) -> None:
    register(world.credentials)
    answers = await repoproviders.resolve(world.folder_url(world.course, "?usp=sharing"), True)
    assert answers is not None
    assert answers[0] == MaybeExists(GoogleDriveFolderLink(world.course.id))
    assert answers[-1] == Exists(GoogleDriveFolder(world.course.id, "Intro to Data"))

    out = tmp_path / "fetched"
    await repoproviders.fetch(answers[-1].repo, out)
    assert (out / "data/iris.csv").read_bytes() == b"sepal_length,species\n5.1,setosa\n"
    assert (out / "Syllabus.md").exists()

    hidden = world.drive.add_folder("Not shared")
    answers = await repoproviders.resolve(world.folder_url(hidden), True)
    assert answers is not None and isinstance(answers[-1], DoesNotExist)
    assert world.email in answers[-1].message


async def test_demo_drive_runs_the_whole_path_without_credentials(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "privatepuller.cli",
        "demo",
        "--drive",
        str(tmp_path / "demo"),
        env={**os.environ, "PRIVATEPULLER_HOME": str(tmp_path / "home")},
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await process.communicate())[0].decode()
    assert process.returncode == 0, out
    assert "Synced “Intro to Data”" in out and "updated 1" in out
    assert "The student's note is still there." in out
    course = tmp_path / "demo/Intro to Data"
    assert (course / "Syllabus.md").read_text().startswith("# Syllabus")
    assert b"week 2" in (course / "01-welcome.ipynb").read_bytes()
    assert not (tmp_path / "home").exists()  # the demo leaves nothing in the real home


async def test_export_refused_at_download_time_is_skipped_not_fatal(world: DriveWorld) -> None:
    # Drive's `size` of a Doc can be small while its export is over the limit.
    world.drive.add_google_doc(
        "Slides with images", world.course.id, "document", export_too_large=True, reported_size=10
    )
    report = await pull_drive(world, world.folder_url(world.course))
    skipped = {s.path: s for s in report.skipped}
    assert skipped["Slides with images.md"].reason == "export_too_large"
    assert "10 MB" in skipped["Slides with images.md"].detail
    assert not (report.target / "Slides with images.md").exists()
    assert (report.target / "Syllabus.md").exists()


async def test_a_file_reached_twice_is_downloaded_once(world: DriveWorld) -> None:
    folder = world.drive.add_folder("Shared data", world.course.id)
    blob = world.drive.add_file("numbers.csv", folder.id, b"1,2,3\n", mime_type="text/csv")
    world.drive.add_shortcut("Data again", world.course.id, folder.id)
    report = await pull_drive(world, world.folder_url(world.course))
    assert (report.target / "Shared data/numbers.csv").read_bytes() == b"1,2,3\n"
    assert (report.target / "Data again/numbers.csv").read_bytes() == b"1,2,3\n"
    assert len(content_requests(world.drive, blob)) == 1
