"""`privatepuller demo`: the whole path against the bundled fake Canvas, no credentials needed.

It starts the fake on loopback, pulls a sample course like a student's first click, then lets
the "instructor" change a file and pulls again, showing the merge the student would get.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .auth.credentials import EnvCredentialSource
from .cli import BarProgress, summary
from .pull import pull
from .sync.engine import SyncConfig


async def run_demo(parent: Path, *, drive: bool = False) -> int:
    if drive:
        from .demo_drive import run_drive_demo

        return await run_drive_demo(parent)

    from .testing.fake_canvas import FakeCanvas, populate_demo

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

            readme = report.target / "README.md"
            with readme.open("a") as notes:
                notes.write("\nMy own note: start with Week 1.\n")
            csv = "Week 1/data/iris.csv"
            course.files.update_file(csv, course.files.file(csv).read() + b"6.3,3.3,virginica\n")
            print(
                "The student adds a note to README.md; the instructor adds a row to "
                f"{csv} in Canvas. The student clicks again:\n"
            )
            report = await pull(url, parent_dir=parent, credentials=credentials, config=config)
            print(summary(report))
            kept = "My own note" in readme.read_text()
            print(f"\nThe student's note is {'still there' if kept else 'LOST'}.")
    print(f"\nThe files are in {report.target}")
    return 0
