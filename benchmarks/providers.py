"""One folder tree on a fake provider, seen from the benchmark: how our `pull()` and the
baseline script reach it, and how the instructor changes it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import baselines
from .fakes import FakeServer, FileSpec


@dataclass
class Tree:
    provider: str
    url: str  # the link a student clicks (our pull)
    envs: list[dict[str, str]]  # environment of each student's server (credentials)
    baseline_args: Callable[[int], dict[str, Any]]  # student index -> baselines.run kwargs
    change: Callable[[list[str]], None]  # the instructor uploads new versions of these paths
    files: list[FileSpec]

    def baseline(self, dest: Path, student: int = 0) -> baselines.BaselineResult:
        return baselines.run(self.provider, dest, **self.baseline_args(student))


class CanvasProvider:
    name = "canvas"

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.base_url: str = server.info["base_url"]

    def tree(self, files: list[FileSpec], students: int = 1, course: str = "Course") -> Tree:
        built = self.server.call("build_course", course, files, students)
        course_id: int = built["course_id"]
        tokens: list[str] = built["tokens"]
        root = files[0].path.split("/")[0]
        url = f"{self.base_url}/courses/{course_id}/files/folder/{quote(root)}"
        envs = [{"CANVAS_BASE_URL": self.base_url, "CANVAS_ACCESS_TOKEN": t} for t in tokens]

        def baseline(student: int) -> dict[str, Any]:
            return {
                "base_url": self.base_url,
                "token": tokens[student],
                "course_id": course_id,
                "path": root,
            }

        def change(paths: list[str]) -> None:
            self.server.call("change_files", course_id, paths)

        return Tree("canvas", url, envs, baseline, change, files)


class DriveProvider:
    name = "drive"

    def __init__(self, server: FakeServer, workdir: Path) -> None:
        self.server = server
        self.api_url: str = server.info["api_url"]
        # The instructor's script reads the service-account key from a file, like the hub does.
        self.key_file = workdir / "service-account.json"
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        self.key_file.write_text(json.dumps(server.info["service_account_key"]))
        self.key_file.chmod(0o600)

    def tree(self, files: list[FileSpec], students: int = 1, synthetic: bool = False) -> Tree:
        built = self.server.call("build_folder", files, synthetic)
        folder_id: str = built["folder_id"]
        # All students' servers get a token of the one hub service account: one shared quota.
        token: str = self.server.call("token")
        env = {"GOOGLE_DRIVE_API_URL": self.api_url, "GOOGLE_DRIVE_ACCESS_TOKEN": token}
        url = f"https://drive.google.com/drive/folders/{folder_id}"

        def baseline(student: int) -> dict[str, Any]:
            return {"api_url": self.api_url, "key_file": str(self.key_file), "folder_id": folder_id}

        def change(paths: list[str]) -> None:
            self.server.call("change_files", folder_id, paths)

        return Tree("drive", url, [dict(env) for _ in range(students)], baseline, change, files)


def counters(server: FakeServer) -> dict[str, Any]:
    result: dict[str, Any] = server.call("counters")
    return result
