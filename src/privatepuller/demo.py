"""`privatepuller demo`: the whole path against the bundled fake Canvas, no credentials needed.

It starts the fake on loopback, pulls a sample course like a student's first click, then lets
the "instructor" change a file and pulls again, showing the merge the student would get.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from .cli import BarProgress, summary
from .credentials.sources import EnvCredentialSource
from .pull import pull
from .sync.engine import SyncConfig, SyncReport


async def run_demo(parent: Path, *, drive: bool = False) -> int:
    if drive:
        from .demo_drive import run_drive_demo

        return await run_drive_demo(parent)

    from .testing.canvas.fake import FakeCanvas, populate_demo

    parent = parent.absolute()
    parent.mkdir(parents=True, exist_ok=True)
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
                progress=BarProgress(),
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
