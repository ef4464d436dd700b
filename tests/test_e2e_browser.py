"""A student clicks the link, in a real browser.

A real `jupyter server` (nbgitpuller + privatepuller, the fake Canvas's student credentials in
its environment) and headless Chromium driven by Selenium. The student opens the link, logs in,
sees nbgitpuller's progress page, lands on `urlpath` and has the files; after the instructor
changes a file, a second click merges. Error pages (no access; a merge failure with "Backup and
resync") are checked in the browser too.

Set PRIVATEPULLER_SCREENSHOTS=docs/images to refresh the screenshots shown in the README.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from privatepuller.testing.canvas.fake import populate_demo
from privatepuller.testing.canvas.model import FakeCourse, FakeUser
from server_helpers import (
    HAVE_BROWSER,
    CanvasThread,
    DriveThread,
    JupyterServer,
    headless_chromium,
    tree,
)

pytestmark = pytest.mark.e2e

if not HAVE_BROWSER:
    pytest.skip(
        "needs chromium and chromedriver (./dev test installs them)", allow_module_level=True
    )

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

COURSE_FOLDER = "Data Science 101"
# Lands on the file, through the contents API (a bare Jupyter server has no file browser UI;
# with JupyterLab this would be e.g. lab/tree/Data Science 101/README.md).
URLPATH = f"api/contents/{COURSE_FOLDER}/README.md"


@dataclass
class Setup:
    canvas_thread: CanvasThread
    drive_thread: DriveThread
    server: JupyterServer
    student: FakeUser
    course: FakeCourse
    secret: FakeCourse
    screenshots: Path

    def link(self, course: FakeCourse, **params: str) -> str:
        repo = f"{self.canvas_thread.canvas.base_url}/courses/{course.id}/files"
        query = urllib.parse.urlencode({"repo": repo, **params}, quote_via=urllib.parse.quote)
        return f"{self.server.url}git-pull?{query}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    canvas_thread = CanvasThread()

    def populate() -> tuple[FakeUser, FakeCourse, FakeCourse]:
        canvas = canvas_thread.canvas
        student, course = populate_demo(canvas)
        secret = canvas.add_course("Secret Seminar")
        secret.files.add_file("exam.ipynb", b"{}")
        return student, course, secret

    student, course, secret = canvas_thread.call(populate)
    drive_thread = DriveThread()
    server = JupyterServer(
        tmp_path_factory.mktemp("server"),
        env={
            "CANVAS_BASE_URL": canvas_thread.canvas.base_url,
            "CANVAS_ACCESS_TOKEN": student.token,
            **drive_thread.env(),
            # A student's server under a hub (messages tell students what to do on the hub);
            # with no token and user, the server does not ask this (absent) hub for logins.
            "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api",
        },
        # Four downloads at once (not all seven): the progress page stays up for a second
        # round, long enough to be watched and photographed.
        args=["--PrivatePuller.backoff_scale=0.02", "--PrivatePuller.concurrency=4"],
    )
    shots = Path(os.environ.get("PRIVATEPULLER_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    shots.mkdir(parents=True, exist_ok=True)
    with server:
        yield Setup(canvas_thread, drive_thread, server, student, course, secret, shots)
        log = server.log()
    canvas_thread.close()
    drive_thread.close()
    assert student.token not in log
    assert server.env["GOOGLE_DRIVE_ACCESS_TOKEN"] not in log


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium(on_new_document=RECORD_EVENTS) as driver:
        yield driver


def wait(driver: WebDriver, seconds: float = 30) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, seconds, poll_frequency=0.05)


# Recorded in the page: every message nbgitpuller's page receives on its EventSource (its log
# panel is an xterm drawn on a canvas, so its text is not in the DOM).
RECORD_EVENTS = """
window.__sse = [];
const NativeEventSource = window.EventSource;
window.EventSource = function (url, options) {
  const source = new NativeEventSource(url, options);
  source.addEventListener("message", (event) => window.__sse.push(JSON.parse(event.data)));
  return source;
};
window.EventSource.prototype = NativeEventSource.prototype;
"""


def received(driver: WebDriver) -> list[dict[str, Any]]:
    return driver.execute_script("return window.__sse || [];")  # type: ignore[no-any-return]


def received_text(driver: WebDriver) -> str:
    return "".join(e.get("output", "") for e in received(driver))


def test_student_clicks_the_link_sees_progress_lands_on_urlpath_and_clicks_again(
    setup: Setup, browser: WebDriver
) -> None:
    canvas = setup.canvas_thread.canvas
    link = setup.link(setup.course, urlpath=URLPATH)
    folder = setup.server.root / COURSE_FOLDER

    # Slow Canvas down a little so that the progress page stays up for a few seconds.
    setup.canvas_thread.call(setattr, canvas, "latency", 0.35)
    try:
        # Not logged in yet: the server asks for the login first, then goes on to the link.
        browser.get(link)
        wait(browser).until(ec.presence_of_element_located((By.ID, "password_input")))
        browser.find_element(By.ID, "password_input").send_keys(setup.server.token)
        browser.find_element(By.ID, "login_submit").click()

        # nbgitpuller's own progress page, unchanged.
        wait(browser).until(ec.presence_of_element_located((By.ID, "status-panel-title")))
        assert "git-pull" in browser.current_url
        header = browser.find_element(By.CLASS_NAME, "page-header").text
        assert f"before sending you to {URLPATH}" in header
        browser.find_element(By.ID, "status-panel-toggle").click()  # show the log panel
        wait(browser).until(lambda d: "  Week 1/data/iris.csv (67 bytes)\n" in received_text(d))
        browser.save_screenshot(str(setup.screenshots / "progress.png"))
        assert received_text(browser).startswith("Downloading 7 files (")
    finally:
        setup.canvas_thread.call(setattr, canvas, "latency", 0.0)

    # ...then the student lands on urlpath, and the files are in their home.
    wait(browser).until(lambda d: d.current_url.endswith(urllib.parse.quote(URLPATH)))
    assert "Open the notebooks week by week." in browser.find_element(By.TAG_NAME, "body").text
    files = tree(folder)
    assert set(files) == {
        "README.md",
        "Week 1/01 Introduction.ipynb",
        "Week 1/data/iris.csv",
        "Week 1/data/penguins.csv",
        "Week 2/02 Regression.ipynb",
        "Week 2/housing.csv",
        "Week 2/Übung 2 – Daten säubern.ipynb",
    }

    # The instructor updates the README; the student has worked on a notebook meanwhile.
    setup.canvas_thread.call(
        setup.course.files.update_file, "README.md", b"# Data Science 101\n\nNow with week 3!\n"
    )
    notebook = folder / "Week 1/01 Introduction.ipynb"
    notebook.write_text(notebook.read_text().replace("Introduction", "Introduction (my notes)"))

    browser.get(link)  # the second click
    wait(browser).until(lambda d: d.current_url.endswith(urllib.parse.quote(URLPATH)))
    assert "Now with week 3!" in browser.find_element(By.TAG_NAME, "body").text
    assert (folder / "README.md").read_text() == "# Data Science 101\n\nNow with week 3!\n"
    assert "Introduction (my notes)" in notebook.read_text()  # the student's work is kept


def test_a_drive_link_works_the_same_way(setup: Setup, browser: WebDriver) -> None:
    from privatepuller.testing.drive.fake import DEFAULT_SA_EMAIL
    from privatepuller.testing.drive.fake import populate_demo as populate_drive

    folder = setup.drive_thread.call(
        populate_drive, setup.drive_thread.drive, share_with=DEFAULT_SA_EMAIL
    )
    repo = f"https://drive.google.com/drive/folders/{folder.id}?usp=sharing"
    urlpath = "api/contents/Intro to Data/README.md"
    query = urllib.parse.urlencode({"repo": repo, "urlpath": urlpath}, quote_via=urllib.parse.quote)
    browser.get(setup.server.url + f"?token={setup.server.token}")  # logged in
    browser.get(f"{setup.server.url}git-pull?{query}")
    wait(browser).until(lambda d: d.current_url.endswith(urllib.parse.quote(urlpath)))
    assert "Start with" in browser.find_element(By.TAG_NAME, "body").text
    files = tree(setup.server.root / "Intro to Data")  # the folder's name, not its id
    assert {"README.md", "01-welcome.ipynb", "data/iris.csv", "Syllabus.md"} <= set(files)


def test_errors_show_nbgitpullers_error_page_with_a_students_message(
    setup: Setup, browser: WebDriver
) -> None:
    browser.get(setup.server.url + f"?token={setup.server.token}")  # logged in

    def error_title(link: str) -> str:
        browser.get(link)
        error = wait(browser).until(ec.visibility_of_element_located((By.ID, "container-error")))
        assert "Proceed without syncing" in error.text
        assert received(browser)[-1]["phase"] == "error"
        title = browser.find_element(By.ID, "status-panel-title").text
        # The help box shows the student's message, not nbgitpuller's "unexpected error".
        message = title.removeprefix("Error: ")
        help_box = (By.ID, "container-error-help")
        wait(browser).until(ec.text_to_be_present_in_element(help_box, message))
        assert "unexpected error" not in browser.find_element(*help_box).text
        return title  # type: ignore[no-any-return]

    # A course the student is not enrolled in.
    title = error_title(setup.link(setup.secret))
    assert title.startswith("Error: You do not have access to the files of course")
    assert not (setup.server.root / "Secret Seminar").exists()

    # The student's Canvas login expired: the page says what to do.
    canvas, token = setup.canvas_thread.canvas, setup.student.token
    setup.canvas_thread.call(canvas.expire_token, token)
    try:
        title = error_title(setup.link(setup.course, targetpath="expired"))
        browser.save_screenshot(str(setup.screenshots / "error.png"))
    finally:
        setup.canvas_thread.call(lambda: setattr(canvas.tokens[token], "expires_at", None))
    assert title == (
        "Error: Your login has expired or was revoked. Log out of the hub and log in again, "
        "then click the link once more."
    )
    assert not (setup.server.root / "expired").exists()


def test_merge_failure_offers_backup_and_resync_which_works(
    setup: Setup, browser: WebDriver
) -> None:
    browser.get(setup.server.url + f"?token={setup.server.token}")
    link = setup.link(setup.course, targetpath="DS merge", urlpath="api/contents/DS merge")
    browser.get(link)
    wait(browser).until(lambda d: "git-pull" not in d.current_url)
    folder = setup.server.root / "DS merge"
    (folder / "my work.txt").write_text("mine\n")
    # The local origin was lost: the next snapshot's history is unrelated to the folder's.
    origin = subprocess.run(
        ["git", "-C", str(folder), "remote", "get-url", "origin"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    shutil.rmtree(origin.removeprefix("file://"))

    browser.get(link)
    button = wait(browser).until(ec.element_to_be_clickable((By.LINK_TEXT, "Backup and resync")))
    assert "Backup and resync" in browser.find_element(By.ID, "status-panel-title").text
    button.click()
    wait(browser).until(lambda d: "git-pull" not in d.current_url)
    backups = [p for p in setup.server.root.iterdir() if p.name.startswith("DS merge_backup_")]
    assert len(backups) == 1
    assert (backups[0] / "my work.txt").read_text() == "mine\n"
    assert (folder / "README.md").exists() and not (folder / "my work.txt").exists()


def test_a_git_link_runs_nbgitpullers_page_under_our_policy_and_no_script_of_the_link(
    setup: Setup, browser: WebDriver
) -> None:
    from server_helpers import make_git_repo

    repo = make_git_repo(
        setup.server.workdir / "upstream" / "git-course.git", {"README.md": "from git\n"}
    )
    urlpath = "api/contents/git-course.git/README.md"
    hostile = {"repo": str(repo), "urlpath": urlpath, "branch": "main", "x": "<script>"}
    query = urllib.parse.urlencode(hostile, quote_via=urllib.parse.quote)
    browser.get(f"{setup.server.url}git-pull?{query}")
    if browser.find_elements(By.ID, "password_input"):  # run on its own: not logged in yet
        browser.find_element(By.ID, "password_input").send_keys(setup.server.token)
        browser.find_element(By.ID, "login_submit").click()
    wait(browser).until(lambda d: d.current_url.endswith(urllib.parse.quote(urlpath)))
    assert "from git" in browser.find_element(By.TAG_NAME, "body").text

    # A link whose parameters carry scripts: shown as text, never run, and nbgitpuller's
    # script still works under the policy (it shows the failed sync: no such repository).
    xss = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"
    params = {"repo": f"{repo}-missing/{xss}", "urlpath": xss, "targetpath": "xss"}
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    browser.get(f"{setup.server.url}git-pull?{query}")
    wait(browser).until(lambda d: any(e.get("phase") == "error" for e in received(d)))
    wait(browser).until(ec.visibility_of_element_located((By.ID, "container-error")))
    assert browser.title != "pwned"
    header = browser.find_element(By.CLASS_NAME, "page-header").text
    assert "<script>document.title='pwned'</script>" in header  # shown, escaped
    assert not (setup.server.root / "xss").exists()
