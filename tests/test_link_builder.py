"""The instructors' link builder: `{base_url}privatepuller/link` and `.../api/link`.

One real `jupyter server` serves the module, with a Canvas *teacher's* token (the instructor's
own login) and the hub's Drive service account, against the fake Canvas and fake Drive. Its
size limit is 1 MB, so a 3 MB file is "too large". The page is driven in headless Chromium.

Set PRIVATEPULLER_SCREENSHOTS=docs/images to refresh docs/images/link-builder.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from leak_scan import observe
from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.providers.canvas.skips import CanvasSkip
from privatepuller.providers.canvas.students import lock_text
from privatepuller.pull import pull
from privatepuller.server.link_check import (
    Inspection,
    Limits,
    LinkRequest,
    build_answer,
    default_hub,
    lab_urlpath,
    urlpath_problem,
)
from privatepuller.sync.config import SyncConfig
from privatepuller.sync.source import RemoteFile, Skipped, SyncSkip
from privatepuller.testing.canvas.model import FakeCourse, FakeUser
from privatepuller.testing.drive.fake import DEFAULT_SA_EMAIL
from server_helpers import (
    HAVE_BROWSER,
    CanvasThread,
    DriveThread,
    JupyterServer,
    headless_chromium,
    tree,
)

MiB = 1024 * 1024
HUB = "https://hub.example.edu"
COURSE = "Statistics 200"
STUDENTS_GET = {
    "README.md": b"# Statistics 200\n",
    "Week 1/01 Intro.ipynb": b'{"cells": [], "nbformat": 4, "nbformat_minor": 5}\n',
    "Week 1/data/heights.csv": b"height\n170\n182\n",
}


@dataclass
class World:
    canvas_thread: CanvasThread
    drive_thread: DriveThread
    server: JupyterServer
    teacher: FakeUser
    student: FakeUser
    course: FakeCourse
    drive_shared: str  # a Drive folder URL shared with the hub's service account
    drive_unshared: str  # one that is not
    screenshots: Path

    @property
    def course_url(self) -> str:
        return f"{self.canvas_thread.canvas.base_url}/courses/{self.course.id}/files"

    def api(self, **params: str) -> dict[str, Any]:
        response = requests.get(
            self.server.url + "privatepuller/api/link",
            params=params,
            headers=self.server.auth,
            timeout=60,
        )
        observe("the link builder's API answer", response.content)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        answer: dict[str, Any] = response.json()
        assert self.teacher.token not in response.text
        assert self.server.env["GOOGLE_DRIVE_ACCESS_TOKEN"] not in response.text
        return answer


def populate_canvas(thread: CanvasThread) -> tuple[FakeUser, FakeUser, FakeCourse]:
    canvas = thread.canvas
    teacher = canvas.add_user("Grace Teacher", login_id="grace")
    student = canvas.add_user("Ada Student", login_id="ada")
    course = canvas.add_course(COURSE)
    course.enroll(teacher, role="teacher")
    course.enroll(student)
    files = course.files
    for path, content in STUDENTS_GET.items():
        files.add_file(path, content)
    files.add_file("Week 1/data/survey.parquet", size=3 * MiB)  # over the hub's 1 MB limit
    files.add_file("Week 2/solutions.ipynb", b"{}\n", locked=True)  # unpublished
    later = datetime.now(UTC) + timedelta(days=3)
    files.add_file("Week 2/02 Regression.ipynb", b"{}\n", unlock_at=later)  # not yet available
    files.add_file("answer key.csv", b"q,a\n", hidden=True)  # "only available with link"
    files.add_folder("Drafts", locked=True)  # an unpublished folder
    files.add_file("Drafts/exam.ipynb", b"{}\n")
    return teacher, student, course


def populate_drive(thread: DriveThread) -> tuple[str, str]:
    drive = thread.drive
    shared = drive.add_folder("Intro to Data", share_with=DEFAULT_SA_EMAIL)
    drive.add_file("welcome.ipynb", shared.id, b"{}\n", mime_type="application/x-ipynb+json")
    drive.add_file("notes.txt", shared.id, b"notes\n", mime_type="text/plain")
    drive.add_google_doc("Syllabus", shared.id, "document", "# Syllabus\n")
    drive.add_google_doc("Feedback form", shared.id, "form")  # cannot be exported
    unshared = drive.add_folder("Private notes", share_with=None)
    drive.add_file("secret.txt", unshared.id, b"secret\n", mime_type="text/plain")
    url = "https://drive.google.com/drive/folders/{}?usp=sharing"
    return url.format(shared.id), url.format(unshared.id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    canvas_thread = CanvasThread()
    teacher, student, course = canvas_thread.call(populate_canvas, canvas_thread)
    drive_thread = DriveThread()
    shared, unshared = drive_thread.call(populate_drive, drive_thread)
    server = JupyterServer(
        tmp_path_factory.mktemp("link-builder"),
        env={
            "CANVAS_BASE_URL": canvas_thread.canvas.base_url,
            "CANVAS_ACCESS_TOKEN": teacher.token,  # the instructor's own Canvas login
            **drive_thread.env(),
            "JUPYTERHUB_PUBLIC_HUB_URL": f"{HUB}/hub/",  # as JupyterHub sets it
        },
        args=[f"--PrivatePuller.max_file_size={MiB}", "--PrivatePuller.backoff_scale=0.02"],
    )
    shots = Path(os.environ.get("PRIVATEPULLER_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    shots.mkdir(parents=True, exist_ok=True)
    with server:
        yield World(
            canvas_thread, drive_thread, server, teacher, student, course, shared, unshared, shots
        )
        log = server.log()
    canvas_thread.close()
    drive_thread.close()
    assert teacher.token not in log
    assert server.env["GOOGLE_DRIVE_ACCESS_TOKEN"] not in log
    assert "Traceback" not in log


def skipped_by_path(answer: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {entry["path"]: entry for entry in answer["skipped"]}


# -- the JSON API through a real server ----------------------------------------------------


@pytest.mark.e2e
async def test_canvas_folder_what_students_get_and_what_not_and_why(world: World) -> None:
    answer = world.api(url=world.course_url, hub=HUB)
    assert answer["problems"] == []
    assert answer["name"] == COURSE
    # README, the intro notebook and heights.csv; nothing the teacher sees but students don't.
    assert answer["files"] == 3
    assert answer["bytes"] == sum(len(content) for content in STUDENTS_GET.values())
    skipped = skipped_by_path(answer)
    assert {path: entry["reason"] for path, entry in skipped.items()} == {
        "Week 1/data/survey.parquet": "too_large",
        "Week 2/solutions.ipynb": "locked",
        "Week 2/02 Regression.ipynb": "locked",
        "answer key.csv": "hidden",
        "Drafts/exam.ipynb": "locked",
    }
    # In the progress page's words, with the detail an instructor can act on.
    assert skipped["Week 1/data/survey.parquet"]["why"] == (
        f"{SyncSkip.TOO_LARGE.words} (3.0 MB; the limit is 1.0 MB)"
    )
    assert skipped["Week 2/solutions.ipynb"]["why"] == f"{CanvasSkip.LOCKED.words} (unpublished)"
    assert re.fullmatch(
        re.escape(CanvasSkip.LOCKED.words) + r" \(locked until \d{4}-\d\d-\d\d \d\d:\d\d UTC\)",
        skipped["Week 2/02 Regression.ipynb"]["why"],
    )
    assert skipped["Drafts/exam.ipynb"]["why"].endswith(
        "(in the folder “Drafts”, which is unpublished)"
    )
    assert skipped["answer key.csv"]["why"] == CanvasSkip.HIDDEN.words
    assert any("your own Canvas login" in note for note in answer["notes"])
    assert any("module requirements" in note for note in answer["notes"])

    # The proposal: the folder's own name, JupyterLab's view of it, and the link with both.
    assert answer["targetpath"] == COURSE
    assert answer["urlpath"] == f"lab/tree/{COURSE}"
    assert answer["notebooks"] == ["Week 1/01 Intro.ipynb"]
    link = urlsplit(answer["link"])
    assert (link.scheme, link.netloc, link.path) == (
        "https",
        "hub.example.edu",
        "/hub/user-redirect/git-pull",
    )
    assert parse_qs(link.query) == {
        "repo": [world.course_url],
        "targetpath": [COURSE],
        "urlpath": [f"lab/tree/{COURSE}"],
    }

    # Read-only: only GETs reached Canvas, and no file was downloaded; nothing was written.
    canvas = world.canvas_thread.canvas
    assert canvas.non_get_requests == []
    assert not [r for r in canvas.requests if "/download" in r.path_qs or r.origin != "canvas"]
    assert sorted(p.name for p in world.server.root.iterdir()) == []
    assert not (world.server.workdir / "privatepuller-home" / "origins").exists()

    # What the builder promised is what a student's own sync gets.
    student = EnvCredentialSource(
        {"CANVAS_BASE_URL": canvas.base_url, "CANVAS_ACCESS_TOKEN": world.student.token}
    )
    home = world.server.workdir / "student"
    report = await pull(
        world.course_url,
        home / answer["targetpath"],
        credentials=student,
        config=SyncConfig(home=home / ".privatepuller", max_file_size=MiB),
    )
    assert tree(home / answer["targetpath"]) == STUDENTS_GET
    assert {s.path for s in (*report.excluded, *report.skipped)} <= set(skipped)


@pytest.mark.e2e
def test_a_notebook_chosen_from_the_listing_and_an_edited_folder_name(world: World) -> None:
    answer = world.api(
        url=world.course_url, hub=HUB, targetpath="stats/week-1", notebook="Week 1/01 Intro.ipynb"
    )
    assert answer["problems"] == []
    assert answer["urlpath"] == "lab/tree/stats/week-1/Week 1/01 Intro.ipynb"
    assert parse_qs(urlsplit(answer["link"]).query)["targetpath"] == ["stats/week-1"]

    # The hub defaults to the one this server runs under (JUPYTERHUB_PUBLIC_HUB_URL).
    answer = world.api(url=world.course_url)
    assert answer["hub"] == f"{HUB}/hub/"
    assert answer["link"].startswith(f"{HUB}/hub/user-redirect/git-pull?")

    # A notebook that is not in the listing: the link opens the folder, and says so.
    answer = world.api(url=world.course_url, hub=HUB, notebook="Week 2/solutions.ipynb")
    assert answer["urlpath"] == f"lab/tree/{COURSE}"
    assert any("not one of the notebooks" in p for p in answer["problems"])

    # An explicit urlpath that misses the folder (nbgitpuller's generator derives such ones).
    answer = world.api(url=world.course_url, hub=HUB, urlpath="lab/tree/files/")
    assert answer["link"] is not None
    assert any("does not lead into the folder “Statistics 200”" in p for p in answer["problems"])


@pytest.mark.e2e
def test_a_link_to_one_file_opens_it_or_says_students_cannot_have_it(world: World) -> None:
    def file_url(path: str) -> str:
        file = world.canvas_thread.call(world.course.files.file, path)
        return f"{world.course_url}/{file.id}"

    answer = world.api(url=file_url("Week 1/01 Intro.ipynb"), hub=HUB)
    assert answer["problems"] == []
    assert (answer["name"], answer["files"], answer["skipped"]) == ("01 Intro", 1, [])
    assert answer["targetpath"] == "01 Intro"  # the file lands in a folder of its name
    assert answer["urlpath"] == "lab/tree/01 Intro/01 Intro.ipynb"  # ...and opens

    answer = world.api(url=file_url("Week 2/solutions.ipynb"), hub=HUB)
    assert answer["files"] == 0
    assert answer["skipped"] == [
        {"path": "solutions.ipynb", "reason": "locked", "why": "locked in Canvas (unpublished)"}
    ]
    assert any("Students would get no files" in p for p in answer["problems"])


@pytest.mark.e2e
@pytest.mark.parametrize("targetpath", ["../outside", ".ipython/profile_default", "/etc", "a/../b"])
def test_a_targetpath_the_server_would_refuse_gives_a_problem_and_no_link(
    world: World, targetpath: str
) -> None:
    answer = world.api(url=world.course_url, hub=HUB, targetpath=targetpath)
    assert answer["link"] is None
    assert answer["name"] == COURSE  # the listing is still shown
    assert len(answer["problems"]) == 1
    assert answer["problems"][0].startswith(f"The folder name (targetpath) “{targetpath}”")
    assert "students' servers would refuse this link" in answer["problems"][0]


@pytest.mark.e2e
def test_drive_folder_shared_with_the_hub(world: World) -> None:
    answer = world.api(url=world.drive_shared, hub=HUB)
    assert answer["problems"] == []
    assert answer["name"] == "Intro to Data"
    assert answer["files"] == 3  # welcome.ipynb, notes.txt, the Doc exported as Markdown
    assert answer["unknown_sizes"] == 1
    skipped = skipped_by_path(answer)
    assert [entry["reason"] for entry in skipped.values()] == ["not_exportable"]
    assert answer["notebooks"] == ["welcome.ipynb"]
    assert any("hub's service account, the same for every student" in n for n in answer["notes"])
    assert parse_qs(urlsplit(answer["link"]).query)["targetpath"] == ["Intro to Data"]
    drive = world.drive_thread.drive
    assert all(r.method == "GET" for r in drive.requests)
    assert not [r for r in drive.requests if "alt=media" in r.path_qs or "/export" in r.path_qs]


@pytest.mark.e2e
def test_drive_folder_not_shared_names_the_address_to_share_with(world: World) -> None:
    answer = world.api(url=world.drive_unshared, hub=HUB)
    assert answer["link"] is None and answer["name"] is None
    assert len(answer["problems"]) == 1
    assert DEFAULT_SA_EMAIL in answer["problems"][0]
    assert "share" in answer["problems"][0]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"url": "https://github.com/org/repo"}, "is not a Canvas files address"),
        ({"url": ""}, "Paste the address"),
        ({"url": "https://docs.google.com/document/d/e/2PACX-1vabc/pub"}, "published"),
        ({"hub": "hub.example.edu"}, "The hub's address must look like https://hub.example.edu"),
    ],
)
def test_bad_input_is_a_problem_never_a_traceback(
    world: World, params: dict[str, str], expected: str
) -> None:
    answer = world.api(**{"url": world.course_url, "hub": HUB, **params})
    assert answer["link"] is None
    assert any(expected in problem for problem in answer["problems"]), answer["problems"]
    assert "Traceback" not in str(answer)


@pytest.mark.e2e
def test_both_routes_need_a_login_and_the_api_refuses_other_origins(world: World) -> None:
    base = world.server.url + "privatepuller/"
    page = requests.get(base + "link", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and "/login" in page.headers["location"]
    api = requests.get(base + "api/link", params={"url": world.course_url}, timeout=10)
    assert api.status_code == 403
    assert "link" not in api.json()
    # A page on another site cannot use the instructor's login cookie (jupyter's origin check).
    session = requests.Session()
    session.get(world.server.url + f"?token={world.server.token}", timeout=10)
    own = session.get(base + "api/link", params={"url": "x", "hub": HUB}, timeout=10)
    assert own.status_code == 200 and "problems" in own.json()
    other = session.get(
        base + "api/link",
        params={"url": world.course_url},
        headers={"Origin": "https://evil.example"},
        timeout=10,
    )
    assert other.status_code == 404
    assert "access-control-allow-origin" not in other.headers
    for method in ("post", "put", "delete"):
        refused = requests.request(method, base + "api/link", headers=world.server.auth, timeout=10)
        assert refused.status_code == 405


@pytest.mark.e2e
def test_the_page_has_the_strict_policy_and_escapes_the_url(world: World) -> None:
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    response = requests.get(
        world.server.url + "privatepuller/link",
        params={"url": hostile},
        headers=world.server.auth,
        timeout=10,
    )
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce and "default-src 'none'" in policy and "script-src 'self' 'nonce-" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'self'" in policy and "base-uri 'none'" in policy
    html = response.text
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == [f'<script nonce="{nonce.group(1)}">']
    assert not re.search(r"\b(src|href)=\"(https?:)?//", html)  # nothing from elsewhere
    # A new nonce for every page.
    again = requests.get(world.server.url + "privatepuller/link", headers=world.server.auth)
    assert nonce.group(1) not in again.headers["content-security-policy"]


# -- the page in a browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not HAVE_BROWSER:
        pytest.skip("needs chromium and chromedriver (./dev test installs them)")
    with headless_chromium(window="1100,900", console_log=True) as driver:  # CSP violations
        yield driver


def console_errors(driver: Any) -> list[str]:
    """Errors in the page's console: a script error, or anything the policy blocked."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


@pytest.mark.e2e
def test_instructor_pastes_a_url_chooses_a_notebook_and_copies_the_link(
    world: World, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    wait = WebDriverWait(browser, 30, poll_frequency=0.05)
    browser.get(world.server.url + f"?token={world.server.token}")  # logged in
    console_errors(browser)  # (Jupyter's own pages are not under test)
    browser.get(world.server.url + "privatepuller/link")
    hub = browser.find_element(By.ID, "hub")
    assert hub.get_attribute("value") == f"{HUB}/hub/"  # the hub this server runs under
    hub.clear()
    hub.send_keys(HUB)
    browser.find_element(By.ID, "url").send_keys(world.course_url)
    browser.find_element(By.ID, "check").click()

    wait.until(ec.visibility_of_element_located((By.ID, "result")))
    assert browser.find_element(By.ID, "name").text == COURSE
    assert browser.find_element(By.ID, "figures").text == "Students will get 3 files, 82 bytes."
    rows = browser.find_elements(By.CSS_SELECTOR, "#skipped-rows tr")
    shown = {row.find_element(By.CLASS_NAME, "path").text: row.text for row in rows}
    assert set(shown) == {
        "Drafts/exam.ipynb",
        "Week 1/data/survey.parquet",
        "Week 2/02 Regression.ipynb",
        "Week 2/solutions.ipynb",
        "answer key.csv",
    }
    assert "larger than this hub's limit for one file" in shown["Week 1/data/survey.parquet"]
    assert "unpublished" in shown["Week 2/solutions.ipynb"]
    assert browser.find_element(By.ID, "problems").is_displayed() is False
    notes = browser.find_element(By.ID, "notes").text
    assert "What students see can differ from what you see" in notes

    assert browser.find_element(By.ID, "targetpath").get_attribute("value") == COURSE
    link_field = browser.find_element(By.ID, "link")
    first = link_field.get_attribute("value")
    assert first.startswith(f"{HUB}/hub/user-redirect/git-pull?repo=")

    Select(browser.find_element(By.ID, "notebook")).select_by_value("Week 1/01 Intro.ipynb")
    urlpath = f"lab/tree/{COURSE}/Week 1/01 Intro.ipynb"
    wait.until(lambda d: d.find_element(By.ID, "urlpath").text == urlpath)
    link = link_field.get_attribute("value")
    assert parse_qs(urlsplit(link).query) == {
        "repo": [world.course_url],
        "targetpath": [COURSE],
        "urlpath": [urlpath],
    }
    copy = browser.find_element(By.ID, "copy")
    assert copy.text == "Copy link" and copy.is_enabled()
    copy.click()
    wait.until(lambda d: d.find_element(By.ID, "copied").text.startswith("Copied"))
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1100, height + 140)  # the whole page, for docs/instructor.md
    browser.save_screenshot(str(world.screenshots / "link-builder.png"))
    browser.set_window_size(1100, 900)

    # A folder name the server would refuse: the page says why, and offers no link.
    target = browser.find_element(By.ID, "targetpath")
    target.send_keys(Keys.CONTROL, "a")
    target.send_keys("../elsewhere")  # replaces the selection, as typing over it does
    wait.until(lambda d: d.find_element(By.ID, "problems").is_displayed())
    assert (
        "students' servers would refuse this link" in browser.find_element(By.ID, "problems").text
    )
    assert link_field.get_attribute("value") == ""
    assert not browser.find_element(By.ID, "copy").is_enabled()
    assert console_errors(browser) == []


@pytest.mark.e2e
def test_the_page_runs_no_script_from_the_url_and_shows_drive_sharing_problems(
    world: World, browser: Any
) -> None:
    from urllib.parse import quote

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait

    wait = WebDriverWait(browser, 30, poll_frequency=0.05)
    browser.get(world.server.url + f"?token={world.server.token}")
    console_errors(browser)
    xss = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"
    browser.get(world.server.url + "privatepuller/link?url=" + quote('"><b>' + xss))
    problems = wait.until(ec.visibility_of_element_located((By.ID, "problems")))
    assert "<script>document.title='pwned'</script>" in problems.text  # shown as text
    assert browser.title != "pwned"
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main b") == []
    assert console_errors(browser) == []  # nothing ran, nothing was even blocked

    # A Drive folder not shared with the hub: the address to share it with.
    browser.get(world.server.url + "privatepuller/link?url=" + quote(world.drive_unshared))
    problems = wait.until(ec.visibility_of_element_located((By.ID, "problems")))
    wait.until(lambda d: DEFAULT_SA_EMAIL in d.find_element(By.ID, "problems").text)
    assert "No link yet" in problems.text
    assert not browser.find_element(By.ID, "result").is_displayed()


# -- pieces, without a server ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ""),  # not under a hub: the instructor types it
        ({"JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.edu/hub/"}, HUB + "/hub/"),
        ({"JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_PUBLIC_HUB_URL": ""}, "https://proxy.test/"),
        ({"JUPYTERHUB_BASE_URL": "/jupyter/"}, "https://proxy.test/jupyter/"),
        ({"JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_HOST": "https://hub.example.edu"}, HUB + "/"),
    ],
)
def test_default_hub(environ: dict[str, str], expected: str) -> None:
    assert default_hub(environ, "https", "proxy.test") == expected


def test_urlpaths() -> None:
    assert lab_urlpath("Week 1") == "lab/tree/Week 1"
    assert lab_urlpath("courses/Week 1", "a/50% #1?.ipynb") == (
        "lab/tree/courses/Week 1/a/50%25 %231%3F.ipynb"
    )
    assert urlpath_problem("lab/tree/Week 1/intro.ipynb", "Week 1") is None
    assert urlpath_problem("/lab/tree/Week%201", "Week 1") is None
    assert urlpath_problem("tree/Week 1", "Week 1") is None
    assert urlpath_problem("lab/tree/files/", "Week 1") is not None
    assert urlpath_problem("lab/tree/1AbCdEf?usp=sharing/", "Week 1") is not None
    assert urlpath_problem("voila/render/Week 10/x.ipynb", "Week 1") is not None
    assert urlpath_problem("rstudio/", "Week 1") is None  # another app: not judged


def test_lock_text() -> None:
    now = datetime(2026, 3, 27, 12, tzinfo=UTC)
    assert lock_text({"locked": True}, now) == "unpublished"
    assert lock_text({"unlock_at": "2026-03-30T08:00:00Z"}, now) == (
        "locked until 2026-03-30 08:00 UTC"
    )
    assert lock_text({"lock_at": "2026-03-01T00:00:00Z"}, now) == (
        "locked since 2026-03-01 00:00 UTC"
    )
    assert lock_text({"unlock_at": "2026-03-01T00:00:00Z", "lock_at": None}, now) is None
    assert lock_text({"unlock_at": "not a date"}, now) is None


def inspection(*paths: str, single_file: bool = False) -> Inspection:
    files = tuple(RemoteFile(path, 10, f"k{i}", None) for i, path in enumerate(paths))
    return Inspection("canvas", "Week 1", "Week 1", files, (), single_file=single_file)


def test_answer_for_a_hub_that_limits_where_folders_go() -> None:
    limits = Limits(MiB, 10 * MiB, allowed_parents=["courses"], parentpath="")
    url = "https://canvas.example.edu/courses/1/files/folder/Week%201"
    answer = build_answer(LinkRequest(url, HUB), inspection("a.ipynb"), [], limits)
    assert answer["targetpath"] == "courses/Week 1"
    assert answer["urlpath"] == "lab/tree/courses/Week 1"
    answer = build_answer(LinkRequest(url, HUB, targetpath="Week 1"), inspection("a"), [], limits)
    assert answer["link"] is None
    assert "not inside the folders this hub allows" in answer["problems"][0]


def test_answer_for_one_notebook_opens_it_and_nbgitpuller_parentpath_counts() -> None:
    limits = Limits(MiB, 10 * MiB, parentpath="courses")
    url = "https://canvas.example.edu/courses/1/files/12"
    one = inspection("intro.ipynb", single_file=True)
    answer = build_answer(LinkRequest(url, HUB), one, [], limits)
    assert answer["urlpath"] == "lab/tree/courses/Week 1/intro.ipynb"
    assert answer["targetpath"] == "Week 1"
    answer = build_answer(LinkRequest(url, HUB, notebook=""), one, [], limits)
    assert answer["urlpath"] == "lab/tree/courses/Week 1"


def test_answer_without_files_warns_and_without_hub_asks_for_it() -> None:
    limits = Limits(MiB, 10 * MiB, parentpath="")
    url = "https://canvas.example.edu/courses/1/files"
    empty = Inspection("canvas", "C", "C", (), (Skipped("big.bin", SyncSkip.TOO_LARGE, "2.0 MB"),))
    answer = build_answer(LinkRequest(url, HUB), empty, [], limits)
    assert answer["link"] is not None
    assert any("Students would get no files" in p for p in answer["problems"])
    answer = build_answer(LinkRequest(url, ""), inspection("a"), [], limits)
    assert answer["link"] is None
    assert "Fill in your hub's address" in answer["problems"][0]
