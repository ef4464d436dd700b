"""`privatepuller demo --drive`: the whole path against the bundled fake Google Drive.

It starts the fake Drive (API and token endpoint) on loopback, writes a service-account key
whose `token_uri` is the fake, so google-auth's real token flow runs, shares a sample course
folder with that account and pulls it like a student's first click. Then the student adds a
note, the "instructor" changes a notebook, and a second pull shows the merge the student gets.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .cli import BarProgress, summary
from .credentials.sources import EnvCredentialSource
from .demo import second_click
from .pull import pull
from .sync.engine import SyncConfig, SyncReport


async def run_drive_demo(target: Path) -> int:
    from .testing.drive.demo import notebook
    from .testing.drive.fake import FakeDrive, populate_demo

    parent = target.absolute()
    parent.mkdir(parents=True, exist_ok=True)
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
                progress=BarProgress(),
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
