"""The command line, run as a student or instructor would run it."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest

from cli_helpers import CLI, Running, Terminal, canvas_env, run
from conftest import CanvasWorld
from privatepuller.link import make_link
from privatepuller.sync.store import origin_lock


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` except git's own, as {relative path: content}."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(folder).parts
    }


async def test_pull_twice_summarises_and_merges(world: CanvasWorld) -> None:
    env = canvas_env(world)
    code, out = await run("pull", world.url(), "course", env=env, cwd=world.workdir)
    assert code == 0, out
    assert "added 3, updated 0, removed 0" in out
    target = world.workdir / "course"
    (target / "README.md").write_text("mine\nline 2\nline 3\nline 4\nline 5\n")
    world.course.files.update_file("README.md", b"line 1\nline 2\nline 3\nline 4\ntheirs\n")
    code, out = await run("pull", world.url(), "course", env=env, cwd=world.workdir)
    assert code == 0, out
    assert "updated 1" in out
    assert (target / "README.md").read_text() == "mine\nline 2\nline 3\nline 4\ntheirs\n"
    assert world.student.token not in out


async def test_errors_are_one_clear_line_and_exit_1(world: CanvasWorld) -> None:
    env = canvas_env(world)
    code, out = await run("pull", "https://example.com/not/canvas", env=env, cwd=world.workdir)
    assert code == 1 and "Traceback" not in out and "not a Canvas files link" in out
    world.canvas.expire_token(world.student.token)
    code, out = await run("pull", world.url(), env=env, cwd=world.workdir)
    assert code == 1 and "CANVAS_ACCESS_TOKEN" in out and "Traceback" not in out
    assert world.student.token not in out
    assert list(world.workdir.iterdir()) == []


async def test_demo_runs_without_credentials(tmp_path: Path) -> None:
    env = {"PRIVATEPULLER_HOME": str(tmp_path / "home")}
    for _ in range(2):  # into the same folder again: the earlier demo's copy is replaced
        code, out = await run("demo", str(tmp_path / "demo"), env=env, cwd=tmp_path)
        assert code == 0, out
        assert "The student's note is still there." in out
        assert "added 7, updated 0" in out
    assert (tmp_path / "demo/Data Science 101/Week 1/data/iris.csv").exists()
    assert not (tmp_path / "home").exists()  # the demo's origins are its own, and gone


@pytest.mark.parametrize("drive", [False, True], ids=["canvas", "drive"])
async def test_the_demo_runs_any_number_of_times_and_leaves_the_current_folder_alone(
    tmp_path: Path, drive: bool
) -> None:
    cwd, temp = tmp_path / "repository", tmp_path / "tmp"
    cwd.mkdir()
    temp.mkdir()
    (cwd / "mine.txt").write_text("mine\n")
    env = {"PRIVATEPULLER_HOME": str(tmp_path / "home"), "TMPDIR": str(temp)}
    course = "Intro to Data" if drive else "Data Science 101"
    places = []
    for _ in range(2):
        code, out = await run("demo", *(["--drive"] if drive else []), env=env, cwd=cwd)
        assert code == 0, out
        assert "The student's note is still there." in out
        shown = re.search(r"^The files are in (.+)$", out, re.MULTILINE)
        assert shown is not None, out
        place = Path(shown[1])
        assert place.name == course, place
        assert place.is_relative_to(temp) and (place / "README.md").is_file(), place
        places.append(place)
    assert places[0] != places[1]
    assert sorted(p.name for p in cwd.iterdir()) == ["mine.txt"]


def test_link_for_instructors() -> None:
    link = make_link(
        "https://canvas.example.edu/courses/12/files/folder/Week%201",
        hub="https://hub.example.edu/",
        urlpath="lab/tree/Week 1",
    )
    assert link.startswith("https://hub.example.edu/hub/user-redirect/git-pull?repo=")
    assert (
        "repo=https%3A%2F%2Fcanvas.example.edu%2Fcourses%2F12%2Ffiles%2Ffolder%2FWeek%25201" in link
    )
    assert "urlpath=lab%2Ftree%2FWeek+1" in link or "urlpath=lab%2Ftree%2FWeek%201" in link


# -- privatepuller link: the server's targetpath rule --------------------------------------------

HUB = "https://hub.example.edu"
LINK = [*CLI, "link"]
CANVAS_URL = "https://canvas.example.edu/courses/12/files/folder/Week%201"


def run_link(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LINK, CANVAS_URL, "--hub", HUB, *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("targetpath", ["../x", ".jupyter", "/home/ada/x", "Week 1/../../x"])
def test_link_command_refuses_a_targetpath_the_server_refuses(targetpath: str) -> None:
    result = run_link("--targetpath", targetpath)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"privatepuller: The folder name (targetpath) “{targetpath}”")
    assert "Traceback" not in result.stderr


def test_link_command_warns_about_urlpath_without_targetpath() -> None:
    result = run_link("--urlpath", "lab/tree/Week 1/intro.ipynb")
    assert result.returncode == 0
    assert result.stdout.startswith(f"{HUB}/hub/user-redirect/git-pull?repo=")
    assert "warning: urlpath is set but targetpath is not" in result.stderr
    result = run_link("--urlpath", "lab/tree/Week 1", "--targetpath", "Week 1")
    assert result.returncode == 0 and result.stderr == ""


def test_link_command_explains_its_arguments() -> None:
    result = subprocess.run([*LINK, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for words in (
        "Canvas files URL",
        "the hub's address",
        "where students land",
        "folder name in each student's home",
    ):
        assert words in help_text, help_text


async def test_the_summary_counts_what_changed_in_the_folder_not_in_the_cache(
    world: CanvasWorld,
) -> None:
    """Two folders of one link share its cached copy; each summary describes its own folder."""
    env = canvas_env(world)
    code, out = await run("pull", world.url(), "first", env=env, cwd=world.workdir)
    assert code == 0, out
    assert "added 3, updated 0, removed 0, unchanged 0" in out
    world.course.files.update_file("README.md", b"new README\n")
    world.course.files.add_file("Week 2/notes.md", b"notes\n")
    # A new folder gets every file, although the cache had most of them already.
    code, out = await run("pull", world.url(), "second", env=env, cwd=world.workdir)
    assert code == 0, out
    assert "added 4, updated 0, removed 0, unchanged 0; downloaded 2 file(s)" in out
    # The first folder, updated later, gets what changed since its own last pull, although
    # the cache is up to date.
    code, out = await run("pull", world.url(), "first", env=env, cwd=world.workdir)
    assert code == 0, out
    assert "added 1, updated 1, removed 0, unchanged 2; downloaded 0 file(s)" in out
    assert (world.workdir / "first/Week 2/notes.md").read_bytes() == b"notes\n"
    code, out = await run("pull", world.url(), "first", env=env, cwd=world.workdir)
    assert "added 0, updated 0, removed 0, unchanged 4; downloaded 0 file(s)" in out


async def test_a_new_folder_gets_earlier_copies_of_files_left_out_and_says_so(
    world: CanvasWorld,
) -> None:
    env = canvas_env(world)
    code, out = await run("pull", world.url(), "first", env=env, cwd=world.workdir)
    assert code == 0, out
    world.course.files.update_file("README.md", b"x" * 4096)
    code, out = await run(
        "pull", world.url(), "second", "--max-file-size", "0.001", env=env, cwd=world.workdir
    )
    assert code == 0, out
    assert "added 3, updated 0, removed 0, unchanged 0; downloaded 0 file(s)" in out
    assert (
        "README.md (4.0 kB): larger than the limit for one file (--max-file-size); "
        "you get the version an earlier sync copied" in out
    )
    code, out = await run(
        "pull", world.url(), "first", "--max-file-size", "0.001", env=env, cwd=world.workdir
    )
    assert code == 0, out
    assert "added 0, updated 0, removed 0, unchanged 2, kept 1" in out
    assert "; your copy from an earlier sync stays as it was" in out


async def test_resolve_says_what_a_link_names_in_words_and_in_json(world: CanvasWorld) -> None:
    env = canvas_env(world)
    code, out = await run("resolve", world.url(), env=env, cwd=world.workdir)
    assert code == 0, out
    assert out.splitlines() == [
        "Canvas folder “Data Science 101”",
        "  privatepuller pull makes the folder “Data Science 101”",
    ]
    readme = world.course.files.file("README.md")
    file_url = world.url(f"/{readme.id}")
    code, out = await run("resolve", file_url, "--json", env=env, cwd=world.workdir)
    assert code == 0, out
    assert json.loads(out) == {
        "provider": "canvas",
        "kind": "file",
        "name": "README.md",
        "folder": "README",
    }
    code, out = await run("resolve", "https://example.com/x", env=env, cwd=world.workdir)
    assert code == 1 and out.startswith("privatepuller: This link is not a Canvas files link")
    assert list(world.workdir.iterdir()) == []


# -- one link, several folders; one folder, one sync at a time ------------------------------------


def source_id(world: CanvasWorld) -> str:
    root = world.course.files.folder("")
    return f"canvas:{world.canvas.base_url}/courses/{world.course.id}/folders/{root.id}"


def add_files(world: CanvasWorld, count: int) -> dict[str, bytes]:
    files = {f"data/part{i}.csv": f"row {i}\n".encode() for i in range(count)}
    for path, content in files.items():
        world.course.files.add_file(path, content)
    first = ("README.md", "Week 1/intro.ipynb", "Week 1/data/iris.csv")  # the fixture's
    return {**files, **{path: world.course.files.file(path).content for path in first}}


async def test_the_same_link_into_two_folders_at_once(world: CanvasWorld) -> None:
    add_files(world, 8)
    world.canvas.latency = 0.1
    env = canvas_env(world)
    (code1, out1), (code2, out2) = await asyncio.gather(
        run("pull", world.url(), "first", env=env, cwd=world.workdir),
        run("pull", world.url(), "second", env=env, cwd=world.workdir),
    )
    assert (code1, code2) == (0, 0), (out1, out2)
    assert "added 11, updated 0" in out1 and "added 11, updated 0" in out2
    assert tree(world.workdir / "first") == tree(world.workdir / "second")
    assert len(tree(world.workdir / "first")) == 11


async def test_a_second_store_of_the_same_link_waits_for_the_first(world: CanvasWorld) -> None:
    """Deterministically: the test holds the link's origin (as a store into another folder
    would); the pull says it waits, and goes on when the origin is free."""
    async with origin_lock(world.config, source_id(world)):
        pull = await Running.start(
            "pull", world.url(), "course", env=canvas_env(world), cwd=world.workdir
        )
        await pull.until("Waiting for another sync of the same folder to finish (up to 5 minutes)")
        await asyncio.sleep(0.5)
        assert pull.process.returncode is None and not (world.workdir / "course").exists()
    code, out = await pull.finish()
    assert code == 0, out
    assert "added 3, updated 0" in out


async def test_the_same_folder_twice_is_refused_at_once(world: CanvasWorld) -> None:
    add_files(world, 8)
    world.canvas.latency = 0.2
    env = canvas_env(world)
    first = await Running.start("pull", world.url(), "course", env=env, cwd=world.workdir)
    await first.until("Downloading")
    code, out = await run("pull", world.url(), "course", env=env, cwd=world.workdir)
    assert code == 1, out
    assert out == (
        "privatepuller: This folder is already being synced (perhaps you clicked the link "
        "twice). Wait for that sync to finish, then try again.\n"
    )
    code, out = await first.finish()
    assert code == 0, out
    assert len(tree(world.workdir / "course")) == 11


# -- Ctrl-C --------------------------------------------------------------------------------------


def download_count(world: CanvasWorld) -> int:
    return sum(1 for r in world.canvas.requests if r.origin == "filestore")


async def test_ctrl_c_then_the_rerun_downloads_only_what_was_missing(world: CanvasWorld) -> None:
    """Three downloads hang; Ctrl-C once the other eight are stored. The message starts on a
    line of its own (not after the bar), the exit code is 130, the folder was not made, and
    the rerun downloads only the three."""
    files = add_files(world, 8)
    for path in ("data/part0.csv", "data/part3.csv", "data/part6.csv"):
        world.canvas.inject_fault(rf"^/blob/{world.course.files.file(path).uuid}", "stall")
    env = canvas_env(world)
    terminal = await Terminal.start("pull", world.url(), "course", env=env, cwd=world.workdir)
    await terminal.until("8/11 files")
    terminal.ctrl_c()
    code, shown = await terminal.finish()
    assert code == 130, shown
    # The bar's line ends before the message (not "… of 105 bytesprivatepuller: …").
    assert re.search(r"\] 8/11 files, [^\n]* of 105 bytes\nprivatepuller: interrupted\. ", shown)
    assert not (world.workdir / "course").exists()

    before = download_count(world)
    code, out = await run("pull", world.url(), "course", env=env, cwd=world.workdir)
    assert code == 0, out
    assert out.startswith("Downloading 3 file(s), 18 bytes\n"), out
    assert download_count(world) - before == 3
    assert "added 11, updated 0, removed 0, unchanged 0; downloaded 3 file(s), 18 bytes" in out
    assert tree(world.workdir / "course") == files
    # The journal of the interrupted run is gone once the manifest has its files.
    assert list(world.config.origins_dir.glob("*.git/privatepuller-journal.jsonl")) == []
