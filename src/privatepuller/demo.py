"""`privatepuller demo [--drive]`: the whole path against a bundled fake, no credentials needed.

Canvas: it starts the fake Canvas on loopback, pulls a sample course like a student's first
click, then lets the "instructor" change a file and pulls again, showing the merge the student
would get.

Drive: it starts the fake Drive (API and token endpoint) on loopback, writes a service-account
key whose `token_uri` is the fake, so google-auth's real token flow runs, shares a sample course
folder with that account and pulls it the same way.

The demo runs any number of times: its copy goes to a new temporary folder (named at the end),
or to the folder given, where the copy an earlier demo left there is replaced (the fake it was
pulled from is gone). Local origins go to a throwaway home: nothing lands in ~/.privatepuller.

The fakes (`privatepuller.testing`) are imported only when a demo runs: they are test
infrastructure, not part of what a sync needs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from .console import BarProgress, summary
from .credentials.sources import EnvCredentialSource
from .pull import pull
from .sync.config import SyncConfig
from .sync.engine import SyncReport

# In a folder the demo put its copies in; with it, a later demo replaces them.
DEMO_MARK = ".privatepuller-demo"
DEMO_FOLDERS = ("Data Science 101", "Intro to Data")  # the fakes' sample course names


async def run_demo(
    parent: Path | None = None, *, drive: bool = False, progress: BarProgress | None = None
) -> int:
    """The demo, into `parent` (default: a new temporary folder)."""
    progress = progress or BarProgress()
    parent = demo_folder(parent)
    return await (run_drive_demo(parent, progress) if drive else run_canvas_demo(parent, progress))


def demo_folder(parent: Path | None) -> Path:
    """Where the demo's copy goes: a new temporary folder, or `parent`, made ready: the copies
    an earlier demo left there are removed (they were pulled from a fake that is gone)."""
    if parent is None:
        return Path(tempfile.mkdtemp(prefix="privatepuller-demo-"))
    parent = parent.absolute()
    if (parent / DEMO_MARK).is_file():
        for name in DEMO_FOLDERS:
            shutil.rmtree(parent / name, ignore_errors=True)
    parent.mkdir(parents=True, exist_ok=True)
    (parent / DEMO_MARK).write_text(
        "privatepuller demo: the next demo into this folder replaces the course folders here.\n"
    )
    return parent


async def run_canvas_demo(parent: Path, progress: BarProgress) -> int:
    from .testing.canvas import FakeCanvas, populate_demo

    async with FakeCanvas() as canvas:
        student, course = populate_demo(canvas)
        credentials = EnvCredentialSource(
            {"CANVAS_BASE_URL": canvas.base_url, "CANVAS_ACCESS_TOKEN": student.token}
        )
        # Origins go to a throwaway home so the demo leaves nothing in the real ~/.privatepuller.
        with tempfile.TemporaryDirectory(prefix="privatepuller-demo-") as home:
            config = SyncConfig(home=Path(home))
            url = f"{canvas.base_url}/courses/{course.id}/files"
            print(f"Fake Canvas at {canvas.base_url}; pulling {url}\n")
            report = await pull(
                url,
                parent_dir=parent,
                credentials=credentials,
                config=config,
                progress=progress,
            )
            print(summary(report) + "\n")

            csv = "Week 1/data/iris.csv"

            def instructor_adds_a_row() -> str:
                course.files.update_file(
                    csv, course.files.file(csv).read() + b"6.3,3.3,virginica\n"
                )
                return f"adds a row to {csv} in Canvas"

            async def pull_again() -> SyncReport:
                return await pull(url, parent_dir=parent, credentials=credentials, config=config)

            await second_click(report, "start with Week 1", instructor_adds_a_row, pull_again)
    return 0


async def second_click(
    first: SyncReport,
    note: str,
    instructor_change: Callable[[], str],
    pull_again: Callable[[], Awaitable[SyncReport]],
) -> SyncReport:
    """The student edits README.md, the instructor changes something, the student clicks again:
    print what the merge did and whether the student's edit survived."""
    readme = first.target / "README.md"
    with readme.open("a") as notes:
        notes.write(f"\nMy own note: {note}.\n")
    what = instructor_change()
    print(
        f"The student adds a note to README.md; the instructor {what}. The student clicks again:\n"
    )
    report = await pull_again()
    print(summary(report))
    kept = f"My own note: {note}." in readme.read_text()
    print(f"\nThe student's note is {'still there' if kept else 'LOST'}.")
    print(f"\nThe files are in {report.target}")
    return report


async def run_drive_demo(parent: Path, progress: BarProgress) -> int:
    from .testing.drive import FakeDrive, notebook, populate_demo

    async with FakeDrive() as drive:
        # Origins and the key file go to a throwaway folder: nothing lands in ~/.privatepuller.
        with tempfile.TemporaryDirectory(prefix="privatepuller-drive-demo-") as scratch:
            key = drive.service_account_key()
            key_file = Path(scratch) / "service-account.json"
            key_file.write_text(json.dumps(key))
            key_file.chmod(0o600)
            credentials = EnvCredentialSource(
                {
                    "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
                    "GOOGLE_DRIVE_API_URL": drive.api_url,
                }
            )
            folder = populate_demo(drive, share_with=key["client_email"])
            config = SyncConfig(home=Path(scratch) / "home")
            url = f"https://drive.google.com/drive/folders/{folder.id}?usp=sharing"
            print(f"Fake Google Drive at {drive.base_url}; pulling {url}")
            print(f"(shared with the hub's service account {key['client_email']})\n")
            report = await pull(
                url, parent_dir=parent, credentials=credentials, config=config,
                progress=progress,
            )  # fmt: skip
            print(summary(report) + "\n")

            def instructor_updates_a_notebook() -> str:
                welcome = next(f for f in drive.children(folder.id) if f.name == "01-welcome.ipynb")
                drive.update_file(
                    welcome.id,
                    notebook(("markdown", "# Welcome, week 2"), ("code", "print('hello, data')")),
                )
                return f"updates {welcome.name} in Drive"

            async def pull_again() -> SyncReport:
                return await pull(url, parent_dir=parent, credentials=credentials, config=config)

            await second_click(
                report, "start with the Colab lab", instructor_updates_a_notebook, pull_again
            )
    return 0
