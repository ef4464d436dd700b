"""What instructors script today, written the way the libraries' documentation shows.

Canvas: `canvasapi` — `resolve_path` to the folder, list its files and subfolders, and
`File.download` each file in turn. Drive: google-api-python-client — `files().list` paging
through each folder, and `MediaIoBaseDownload` each file in turn. Both are synchronous
(requests / httplib2) and do no retrying beyond what the libraries do by default (canvasapi:
none; google-api-python-client: `num_retries=0`). Neither keeps state, so a re-run downloads
everything again.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class BaselineResult:
    files: int = 0
    bytes: int = 0


def canvas_script(
    base_url: str, token: str, course_id: int, path: str, dest: Path
) -> BaselineResult:
    """canvasapi: resolve_path, then list and `File.download` each file, folder by folder."""
    import warnings

    from canvasapi import Canvas

    result = BaselineResult()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # canvasapi warns about http:// (the fake is loopback)
        canvas = Canvas(base_url, token)
        course = canvas.get_course(course_id)
        folder = list(course.resolve_path(path))[-1]

    def walk(folder: Any, local: Path) -> None:
        local.mkdir(parents=True, exist_ok=True)
        for file in folder.get_files():
            target = local / file.display_name
            file.download(str(target))
            result.files += 1
            result.bytes += target.stat().st_size
        for sub in folder.get_folders():
            walk(sub, local / sub.name)

    walk(folder, dest)
    return result


def drive_service(api_url: str, key_file: Path) -> Any:
    """The service an instructor builds from a service-account key file."""
    from google.oauth2 import service_account
    from googleapiclient.discovery import build

    credentials = service_account.Credentials.from_service_account_file(
        str(key_file), scopes=["https://www.googleapis.com/auth/drive.readonly"]
    )
    return build(
        "drive",
        "v3",
        credentials=credentials,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": api_url},
    )


FOLDER = "application/vnd.google-apps.folder"


def drive_script(api_url: str, key_file: Path, folder_id: str, dest: Path) -> BaselineResult:
    """google-api-python-client: page through files().list, MediaIoBaseDownload each file."""
    from googleapiclient.http import MediaIoBaseDownload

    service = drive_service(api_url, key_file)
    result = BaselineResult()

    def walk(folder_id: str, local: Path) -> None:
        local.mkdir(parents=True, exist_ok=True)
        page_token = None
        while True:
            response = (
                service.files()
                .list(
                    q=f"'{folder_id}' in parents and trashed = false",
                    fields="nextPageToken, files(id, name, mimeType)",
                    pageToken=page_token,
                )
                .execute()
            )
            for item in response.get("files", []):
                if item["mimeType"] == FOLDER:
                    walk(item["id"], local / item["name"])
                    continue
                request = service.files().get_media(fileId=item["id"])
                target = local / item["name"]
                with io.FileIO(target, "wb") as out:
                    downloader = MediaIoBaseDownload(out, request)
                    done = False
                    while not done:
                        _, done = downloader.next_chunk()
                result.files += 1
                result.bytes += target.stat().st_size
            page_token = response.get("nextPageToken")
            if not page_token:
                break

    walk(folder_id, dest)
    return result


def run(provider: str, dest: Path, **kwargs: Any) -> BaselineResult:
    if provider == "canvas":
        return canvas_script(dest=dest, **kwargs)
    return drive_script(dest=dest, key_file=Path(kwargs.pop("key_file")), **kwargs)
