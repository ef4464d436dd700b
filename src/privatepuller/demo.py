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

            notebook = next(p for p in report.added if p.endswith(".ipynb"))
            print(f"The instructor updates {notebook} in Canvas; the student clicks again:\n")
            old = course.files.file(notebook).read()
            course.files.update_file(notebook, old.replace(b"}\n", b"}\n", 1) + b"\n")
            report = await pull(url, parent_dir=parent, credentials=credentials, config=config)
            print(summary(report))
    print(f"\nThe files are in {report.target}")
    return 0
