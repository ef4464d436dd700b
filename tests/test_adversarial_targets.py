"""A link from anyone can start a sync: its folder, its page and its messages must be harmless.

Through a real `jupyter server` with the extension (fake Canvas, fake Drive, and a local git
repository for git links), as an attacker would send them:

- a `targetpath` (or a course, Drive folder or repository *named*) into the folders that
  configure the student's tools (`.local/share/jupyter/kernels`, `.config/git`, `.ipython`,
  `.jupyter`, `.ssh`), where a pulled `kernel.json` or git `config` runs code;
- git links with `..` or absolute targets (nbgitpuller's own handler checks nothing);
- a `targetpath` naming the student's own git project, another folder, a file, or a link;
- page parameters that are HTML or JavaScript (nbgitpuller's template does not escape);
- terminal escapes in a link's path segments and in a git remote's messages.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from privatepuller.targets import BadTargetPath, safe_target, target_problem
from privatepuller.testing.canvas.model import FakeCourse, FakeUser
from privatepuller.testing.drive.fake import DEFAULT_SA_EMAIL
from server_helpers import (
    CanvasThread,
    DriveThread,
    JupyterServer,
    make_git_repo,
    outputs,
    tree,
)

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
TOOL_FOLDERS = [
    ".local/share/jupyter/kernels/python3",
    ".config/git",
    ".ipython/profile_default/startup",
    ".jupyter/custom",
    ".ssh",
    "courses/.hidden",
    "Week 1/.ipynb_checkpoints",
    "./.bashrc.d",
]


@dataclass
class World:
    canvas_thread: CanvasThread
    drive_thread: DriveThread
    server: JupyterServer
    student: FakeUser
    course: FakeCourse
    upstream: Path  # a git repository for git links
    outside: Path  # next to the server's root

    @property
    def root(self) -> Path:
        return self.server.root

    def canvas_link(self, course: FakeCourse | None = None) -> str:
        base = self.canvas_thread.canvas.base_url
        return f"{base}/courses/{(course or self.course).id}/files"

    def provider_requests(self) -> int:
        return len(self.canvas_thread.canvas.requests) + len(self.drive_thread.drive.requests)

    def sync(self, repo: str, **params: str) -> list[dict[str, Any]]:
        events = self.server.sync(repo, **params)
        assert events and events[-1]["phase"] in ("finished", "error"), events
        return events

    def hidden_folders(self) -> set[str]:
        """Folders starting with "." in the server's root, other than the ones the server
        and git make themselves."""
        return {p.name for p in self.root.iterdir() if p.name.startswith(".")} - {
            ".privatepuller",
        }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    canvas_thread = CanvasThread()

    def populate() -> tuple[FakeUser, FakeCourse]:
        canvas = canvas_thread.canvas
        student = canvas.add_user("Ada Student")
        course = canvas.add_course("Data Science 101")
        course.enroll(student)
        course.files.add_file("kernel.json", b'{"argv": ["sh", "-c", "touch /tmp/pwned"]}\n')
        course.files.add_file("config", b"[core]\n\tfsmonitor = touch /tmp/pwned\n")
        return student, course

    student, course = canvas_thread.call(populate)
    drive_thread = DriveThread()
    workdir = tmp_path_factory.mktemp("targets")
    upstream = make_git_repo(workdir / "upstream" / "course.git", {"README.md": "git course\n"})
    outside = workdir / "outside"
    outside.mkdir()
    server = JupyterServer(
        workdir,
        env={
            "CANVAS_BASE_URL": canvas_thread.canvas.base_url,
            "CANVAS_ACCESS_TOKEN": student.token,
            **drive_thread.env(),
        },
        args=["--PrivatePuller.backoff_scale=0.01"],
    )
    try:
        with server:
            yield World(canvas_thread, drive_thread, server, student, course, upstream, outside)
            log = server.log()
    finally:
        canvas_thread.close()
        drive_thread.close()
    assert student.token not in log
    assert "\x1b" not in log


# 1. Code execution: the folders that configure the student's tools.


@pytest.mark.parametrize("targetpath", TOOL_FOLDERS)
def test_a_link_cannot_write_into_a_hidden_folder(world: World, targetpath: str) -> None:
    before = world.provider_requests()
    events = world.sync(world.canvas_link(), targetpath=targetpath)
    error = events[-1]["error"]
    assert error["code"] == "targetpath", events
    assert "hidden folder" in error["message"]
    assert world.provider_requests() == before  # refused before Canvas was asked anything
    assert not (world.root / targetpath).exists()
    assert world.hidden_folders() == set()


def test_a_drive_folder_with_a_kernel_cannot_replace_the_default_kernel(world: World) -> None:
    def make() -> str:
        drive = world.drive_thread.drive
        folder = drive.add_folder("Kernel", share_with=DEFAULT_SA_EMAIL)
        drive.add_file("kernel.json", folder.id, b'{"argv": ["sh"]}\n', mime_type="text/plain")
        return f"https://drive.google.com/drive/folders/{folder.id}"

    link = world.drive_thread.call(make)
    before = world.provider_requests()
    events = world.sync(link, targetpath=".local/share/jupyter/kernels/python3")
    assert events[-1]["error"]["code"] == "targetpath"
    assert world.provider_requests() == before
    assert not (world.root / ".local").exists()


@pytest.mark.parametrize("targetpath", TOOL_FOLDERS[:3])
def test_a_git_link_cannot_write_into_a_hidden_folder(world: World, targetpath: str) -> None:
    events = world.sync(str(world.upstream), targetpath=targetpath)
    assert events[-1]["phase"] == "error"
    assert events[-1]["error"]["code"] == "targetpath"
    assert not (world.root / targetpath).exists()
    assert world.hidden_folders() == set()


def test_a_course_named_like_a_tool_folder_lands_in_a_visible_folder(world: World) -> None:
    def make() -> FakeCourse:
        course = world.canvas_thread.canvas.add_course(".ipython")
        course.enroll(world.student)
        course.files.add_file("profile_default/startup/00-run.py", b"print('pwned')\n")
        return course

    course = world.canvas_thread.call(make)
    events = world.sync(world.canvas_link(course))
    assert events[-1] == {"phase": "finished"}, events
    assert tree(world.root / "ipython") == {
        "profile_default/startup/00-run.py": b"print('pwned')\n"
    }
    assert world.hidden_folders() == set()


def test_a_drive_folder_named_like_a_tool_folder_lands_in_a_visible_folder(world: World) -> None:
    def make() -> str:
        drive = world.drive_thread.drive
        folder = drive.add_folder("..jupyter", share_with=DEFAULT_SA_EMAIL)
        drive.add_file("jupyter_server_config.py", folder.id, b"c = 1\n", mime_type="text/plain")
        return f"https://drive.google.com/drive/folders/{folder.id}"

    events = world.sync(world.drive_thread.call(make))
    assert events[-1] == {"phase": "finished"}, events
    assert tree(world.root / "jupyter") == {"jupyter_server_config.py": b"c = 1\n"}
    assert world.hidden_folders() == set()


def test_a_git_repository_named_like_a_tool_folder_lands_in_a_visible_folder(
    world: World,
) -> None:
    repo = make_git_repo(world.upstream.parent / ".config", {"startup.py": "print(1)\n"})
    events = world.sync(str(repo))
    assert events[-1] == {"phase": "finished"}, events
    assert (world.root / "config" / "startup.py").read_text() == "print(1)\n"
    assert world.hidden_folders() == set()
    page = world.server.page(str(repo))
    assert 'data-targetpath="config"' in page.text


# 3. Git links follow the same rule.


@pytest.mark.parametrize("targetpath", ["../outside/x", "../../x", "/tmp/pp-git-x", "a/../../x"])
def test_a_git_link_cannot_leave_the_server_root(world: World, targetpath: str) -> None:
    events = world.sync(str(world.upstream), targetpath=targetpath)
    assert events[-1]["phase"] == "error"
    assert events[-1]["error"]["code"] == "targetpath"
    assert list(world.outside.iterdir()) == []
    assert not Path("/tmp/pp-git-x").exists()
    assert not (world.root.parent / "x").exists()


def test_a_git_link_into_a_visible_folder_still_works(world: World) -> None:
    events = world.sync(str(world.upstream), targetpath="Git course")
    assert events[-1] == {"phase": "finished"}, events
    assert (world.root / "Git course" / "README.md").read_text() == "git course\n"
    again = world.sync(str(world.upstream), targetpath="Git course")  # the same link again
    assert again[-1] == {"phase": "finished"}, again


# 5. The student's own projects, other folders, files and links.


def _student_project(path: Path) -> tuple[str, str]:
    """A student's git repository with a remote and uncommitted work; (HEAD, status)."""
    make_git_repo(path, {"thesis.tex": "chapter 1\n"})
    subprocess.run(
        ["git", "-C", str(path), "remote", "add", "origin", "https://git.example.edu/ada/t"],
        check=True,
    )
    (path / "thesis.tex").write_text("chapter 1, half of chapter 2\n")
    return _head_and_status(path)


def _head_and_status(path: Path) -> tuple[str, str]:
    head = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout
    status = subprocess.run(
        ["git", "-C", str(path), "status", "--porcelain"], capture_output=True, text=True
    ).stdout
    return head, status


@pytest.mark.parametrize("kind", ["canvas", "git"])
def test_a_link_cannot_sync_into_the_students_own_project(world: World, kind: str) -> None:
    project = world.root / f"thesis-{kind}"
    before = _head_and_status(project) if project.exists() else _student_project(project)
    requests_before = world.provider_requests()
    repo = world.canvas_link() if kind == "canvas" else str(world.upstream)
    for targetpath in (project.name, f"{project.name}/data"):
        events = world.sync(repo, targetpath=targetpath)
        error = events[-1]["error"]
        assert error["code"] == "target_in_use", events
        assert project.name in error["message"]
    assert world.provider_requests() == requests_before
    assert _head_and_status(project) == before
    assert (project / "thesis.tex").read_text() == "chapter 1, half of chapter 2\n"
    assert not (project / "data").exists()


def test_a_link_cannot_take_over_a_copy_made_by_another_link(world: World) -> None:
    first = world.sync(str(world.upstream), targetpath="Shared name")
    assert first[-1] == {"phase": "finished"}
    events = world.sync(world.canvas_link(), targetpath="Shared name")
    assert events[-1]["error"]["code"] == "target_in_use"
    assert tree(world.root / "Shared name") == {"README.md": b"git course\n"}
    other = make_git_repo(world.upstream.parent / "other.git", {"x.txt": "x\n"})
    events = world.sync(str(other), targetpath="Shared name")
    assert events[-1]["error"]["code"] == "target_in_use"


def test_a_folder_or_file_that_is_in_the_way_is_left_alone(world: World) -> None:
    notes = world.root / "Notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("my notes\n")
    (world.root / "Data.csv").write_text("a,b\n")
    for targetpath in ("Notes", "Data.csv"):
        for repo in (world.canvas_link(), str(world.upstream)):
            events = world.sync(repo, targetpath=targetpath)
            assert events[-1]["error"]["code"] == "target_in_use", events
            assert targetpath in events[-1]["error"]["message"]
    assert tree(notes) == {"mine.txt": b"my notes\n"}
    assert (world.root / "Data.csv").read_text() == "a,b\n"


def test_an_empty_folder_is_filled(world: World) -> None:
    (world.root / "Empty").mkdir()
    events = world.sync(world.canvas_link(), targetpath="Empty")
    assert events[-1] == {"phase": "finished"}, events
    assert set(tree(world.root / "Empty")) == {"kernel.json", "config"}


def test_nothing_is_written_through_a_link_inside_the_home_folder(world: World) -> None:
    real = world.root / "Real"
    real.mkdir()
    (world.root / "Alias").symlink_to(real)
    for repo in (world.canvas_link(), str(world.upstream)):
        for targetpath in ("Alias", "Alias/Week 1"):
            events = world.sync(repo, targetpath=targetpath)
            assert events[-1]["error"]["code"] == "targetpath", events
    assert list(real.iterdir()) == []


# 2. The page: escaped, no script of the link's, a restrictive policy.

HOSTILE_PAGE_PARAMS = [
    {"repo": "https://github.com/a/b", "urlpath": "<script>alert(1)</script>"},
    {"repo": 'https://github.com/a/b"><img src=x onerror=alert(1)>'},
    {"repo": "javascript:alert(document.cookie)//github.com/a/b"},
    {"repo": "https://github.com/a/b", "targetpath": "</div><script>alert(1)</script>"},
    {"repo": "https://github.com/a/b", "branch": '"><svg onload=alert(1)>'},
]


@pytest.mark.parametrize("params", HOSTILE_PAGE_PARAMS)
def test_the_page_escapes_every_parameter_of_a_git_link(
    world: World, params: dict[str, str]
) -> None:
    repo = params.pop("repo")
    response = world.server.page(repo, **params)
    params["repo"] = repo
    assert response.status_code == 200
    html = response.text
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<svg onload" not in html
    assert 'href="javascript:' not in html
    _assert_strict_policy(response)


def test_the_page_of_a_canvas_link_has_the_same_policy(world: World) -> None:
    response = world.server.page(world.canvas_link(), urlpath="<script>alert(1)</script>")
    assert "<script>alert" not in response.text
    _assert_strict_policy(response)


def _assert_strict_policy(response: requests.Response) -> None:
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in directives["script-src"]
    nonce = directives["script-src"].split("'nonce-")[1].split("'")[0]
    # Every script on the page is ours: it carries the nonce, or comes from this server.
    for tag in response.text.split("<script")[1:]:
        opening = tag.split(">", 1)[0]
        assert f'nonce="{nonce}"' in opening or 'src="/git-pull/static/' in opening, opening
    assert directives["frame-ancestors"] == "'self'"


# 9. Terminal escapes never reach the log panel or the server's log.


def test_terminal_escapes_from_a_link_are_stripped_from_events(world: World) -> None:
    escape = "%1b]0;owned%07%1b[2J%1b[31m"
    link = f"{world.canvas_link()}/folder/{escape}Week%201"
    events = world.sync(link)
    assert events[-1]["phase"] == "error"
    assert events[-1]["error"]["code"] == "not_found"
    text = repr(events)
    assert "\\x1b" not in text and "\\x07" not in text
    assert "Week 1" in events[-1]["error"]["message"]
    git_events = world.sync(str(world.upstream.parent / "missing\x1b[31m.git"), targetpath="Red")
    assert git_events[-1]["phase"] == "error"
    assert "\\x1b" not in repr(git_events)
    assert "\x1b" not in world.server.log()


# The rule itself: property-style checks on the pure function.


@pytest.mark.parametrize(
    ("targetpath", "allowed", "ok"),
    [
        ("Week 1", (), True),
        ("courses/DS 101", ("courses",), True),
        ("DS 101", ("courses",), False),
        ("courses", ("courses",), False),  # the allowed folder itself is not a target
        ("coursesX/a", ("courses",), False),
        (".local/x", (".local",), False),  # an allow-list never widens the rule
        ("courses/.x", ("courses",), False),
    ],
)
def test_admins_can_narrow_the_allowed_places_but_never_widen_them(
    tmp_path: Path, targetpath: str, allowed: tuple[str, ...], ok: bool
) -> None:
    assert (target_problem(targetpath, allowed) is None) == ok
    if not ok:
        with pytest.raises(BadTargetPath):
            safe_target(tmp_path, targetpath, allowed)


def test_outputs_of_a_refused_link_say_nothing_was_synced(world: World) -> None:
    events = world.sync(world.canvas_link(), targetpath=".ssh")
    assert outputs(events) == ""
    assert "nothing was synced" in events[-1]["error"]["message"]
