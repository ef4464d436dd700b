"""Bad input gets a clear error, retries follow Google's rules, and nothing is lost or leaked."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import open_repo
from gdrive_helpers import (
    DriveWorld,
    content_requests,
    drive_world_fixture,  # noqa: F401  (the `world` fixture; overrides Canvas's)
    list_requests,
    pull_drive,
    tree,
)
from privatepuller.console import summary
from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.errors import (
    ConfigurationError,
    LoginExpired,
    NoAccess,
    NotConfigured,
    NotFound,
    PullError,
    RateLimited,
    UnsafeRequest,
)
from privatepuller.http.session import SessionOptions
from privatepuller.providers.gdrive.links import GoogleDriveFolder
from privatepuller.providers.gdrive.policy import GOOGLE_POLICY
from privatepuller.providers.gdrive.source import DriveDownload
from privatepuller.sync.progress import NullProgress
from privatepuller.sync.source import RemoteFile, SkipFile
from privatepuller.sync.store import origin_for
from privatepuller.testing.drive.demo import notebook
from privatepuller.testing.drive.fake import FakeDrive, QuotaPolicy

FAST = SessionOptions(GOOGLE_POLICY.scaled(0.01))


# --- not shared, trashed, not configured -------------------------------------------------


async def test_folder_not_shared_says_which_address_to_share_with(world: DriveWorld) -> None:
    hidden = world.drive.add_folder("Week 9")
    with pytest.raises(NoAccess) as error:
        await pull_drive(world, world.folder_url(hidden, "?usp=sharing"))
    message = error.value.message
    assert world.email in message and "Viewer" in message
    asked = [r for r in world.drive.requests if r.path == f"/drive/v3/files/{hidden.id}"]
    assert len(asked) == 1  # a 404 is final: not retried
    assert not (world.workdir / "Week 9").exists()


async def test_with_a_bare_token_the_address_comes_from_drive(world: DriveWorld) -> None:
    token = world.drive.issue_token(world.email)
    hidden = world.drive.add_folder("Week 9")
    with pytest.raises(NoAccess, match=world.email):
        await pull_drive(
            world, world.folder_url(hidden), credentials=world.static_credentials(token)
        )
    assert any(r.path == "/drive/v3/about" for r in world.drive.requests)


async def test_trashed_file_and_folder_links(world: DriveWorld) -> None:
    data = world.child(world.course, "data")
    iris = world.child(data, "iris.csv")
    world.drive.trash(iris.id)
    with pytest.raises(NotFound, match="trash") as error:
        await pull_drive(world, f"https://drive.google.com/file/d/{iris.id}/view")
    assert "iris.csv" in error.value.message
    world.drive.trash(data.id)
    with pytest.raises(NotFound, match="“data” is in its owner's Google Drive trash"):
        await pull_drive(world, world.folder_url(data))


async def test_a_form_link_explains_it_cannot_be_pulled(world: DriveWorld) -> None:
    form = world.child(world.course, "Feedback form")
    with pytest.raises(NotFound, match="Google Form"):
        await pull_drive(world, f"https://docs.google.com/forms/d/{form.id}/edit")


async def test_no_google_credentials(world: DriveWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    url, none = world.folder_url(world.course), EnvCredentialSource({})
    with pytest.raises(NotConfigured, match="GOOGLE_APPLICATION_CREDENTIALS"):
        await pull_drive(world, url, credentials=none)
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")
    with pytest.raises(NotConfigured, match="Google service account"):
        await pull_drive(world, url, credentials=none)


async def test_the_token_never_goes_to_a_plain_http_api_url() -> None:
    source = EnvCredentialSource(
        {
            "GOOGLE_DRIVE_ACCESS_TOKEN": "ya29.secret",
            "GOOGLE_DRIVE_API_URL": "http://drive.example.com/drive/v3/",
        }
    )
    with pytest.raises(UnsafeRequest) as error:
        await source.google()
    assert "ya29.secret" not in str(error.value)


# --- tokens and key files --------------------------------------------------------------


@pytest.mark.parametrize("spoil", ["expire_token", "revoke_token"])
async def test_expired_or_revoked_token(world: DriveWorld, spoil: str) -> None:
    token = world.drive.issue_token(world.email)
    credentials = world.static_credentials(token)
    await pull_drive(world, world.folder_url(world.course), credentials=credentials)
    getattr(world.drive, spoil)(token)
    world.drive.update_file(world.child(world.course, "README.md").id, b"new\n")
    before = tree(world.workdir / "Intro to Data")
    with pytest.raises(LoginExpired) as error:
        await pull_drive(world, world.folder_url(world.course), credentials=credentials)
    assert "expired or was revoked" in error.value.message and token not in error.value.message
    assert tree(world.workdir / "Intro to Data") == before


async def test_service_account_token_is_renewed_once_on_401(world: DriveWorld) -> None:
    url = world.folder_url(world.course)
    await pull_drive(world, url)
    assert len(world.drive.token_requests) == 1
    for token in list(world.drive.tokens):
        world.drive.revoke_token(token)
    world.drive.update_file(world.child(world.course, "README.md").id, b"new\n")
    report = await pull_drive(world, url)
    assert report.updated == ("README.md",)
    assert len(world.drive.token_requests) == 2


async def test_service_account_token_is_refreshed_before_it_expires(world: DriveWorld) -> None:
    from privatepuller.credentials.service_account import ServiceAccountMinter

    tokens = ServiceAccountMinter(world.key_file)
    first = await tokens.token()
    assert await tokens.token() == first  # fresh: reused
    # Still valid for a minute, but inside the 5-minute margin: a long download could outlive it.
    assert tokens._current is not None
    tokens._current = dataclasses.replace(tokens._current, expires_at=time.time() + 60)
    second = await tokens.token()
    assert second != first and len(world.drive.token_requests) == 2


def _key_variants(world: DriveWorld, tmp: Path) -> dict[str, tuple[Path, str]]:
    tmp.mkdir()
    variants: dict[str, tuple[Path, str]] = {}

    def write(name: str, content: str) -> Path:
        path = tmp / name
        path.write_text(content)
        return path

    variants["missing"] = (tmp / "nope.json", "does not exist")
    folder = tmp / "a-folder.json"
    folder.mkdir()
    variants["a directory"] = (folder, "not readable")
    variants["not json"] = (
        write("notjson.json", "-----BEGIN PRIVATE KEY-----\n"),
        "not valid JSON",
    )
    oauth_client = {
        "installed": {"client_id": "x.apps.googleusercontent.com", "client_secret": "s"}
    }
    variants["oauth client"] = (
        write("client.json", json.dumps(oauth_client)),
        "not a Google service-account key",
    )  # noqa: E501
    user = {
        "type": "authorized_user",
        "refresh_token": "1//r",
        "client_id": "c",
        "client_secret": "s",
    }
    variants["user credentials"] = (
        write("user.json", json.dumps(user)),
        "not a Google service-account key",
    )  # noqa: E501
    incomplete = {k: v for k, v in world.key.items() if k != "client_email"}
    variants["incomplete"] = (
        write("incomplete.json", json.dumps(incomplete)),
        "has no client_email",
    )
    bad = world.key | {
        "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    }  # noqa: E501
    variants["bad private key"] = (write("bad.json", json.dumps(bad)), "private key cannot be read")
    return variants  # fmt: skip


async def test_key_file_problems_get_admin_messages_without_key_material(
    world: DriveWorld, tmp_path: Path
) -> None:
    secret = world.key["private_key"].splitlines()[2]
    for name, (path, expected) in _key_variants(world, tmp_path / "keys").items():
        with pytest.raises(ConfigurationError) as error:
            await pull_drive(
                world, world.folder_url(world.course), credentials=world.key_credentials(path)
            )  # noqa: E501
        assert expected in error.value.message, name
        assert secret not in str(error.value) and world.key["private_key_id"] not in str(
            error.value
        )
        # nothing chained that could carry key material into a traceback
        assert error.value.__cause__ is None
        assert error.value.__context__ is None or error.value.__suppress_context__


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
async def test_unreadable_key_file(world: DriveWorld) -> None:
    world.key_file.chmod(0)
    with pytest.raises(ConfigurationError, match="not readable"):
        await pull_drive(world, world.folder_url(world.course))


async def test_key_the_token_endpoint_rejects(world: DriveWorld, tmp_path: Path) -> None:
    stranger = world.key | {"client_email": "someone-else@other-project.iam.gserviceaccount.com"}
    path = tmp_path / "stranger.json"
    path.write_text(json.dumps(stranger))
    with pytest.raises(ConfigurationError, match="could not get an access token") as error:
        await pull_drive(
            world, world.folder_url(world.course), credentials=world.key_credentials(path)
        )  # noqa: E501
    assert "invalid_grant" in error.value.message


# --- retries ---------------------------------------------------------------------------

TRANSIENT = ["429", "403_userRateLimitExceeded", "403_rateLimitExceeded", "500", "503", "502_html"]


@pytest.mark.parametrize("kind", TRANSIENT)
async def test_transient_errors_are_retried(world: DriveWorld, kind: str) -> None:
    data = world.child(world.course, "data")
    # twice on the first listing of "data", twice on a download, twice on an export
    world.drive.inject_fault(rf"/files\?q=[^&]*{data.id}", kind, times=2)  # type: ignore[arg-type]
    iris = world.child(data, "iris.csv")
    world.drive.inject_fault(rf"/files/{iris.id}\?", kind, times=2)  # type: ignore[arg-type]
    world.drive.inject_fault(r"/export\?", kind, times=2)  # type: ignore[arg-type]
    report = await pull_drive(world, world.folder_url(world.course))
    assert (report.target / "data/iris.csv").read_bytes() == b"sepal_length,species\n5.1,setosa\n"
    faulted = [r for r in world.drive.requests if r.fault == kind]
    assert len(faulted) == 6, [r.path_qs[:80] for r in faulted]


@pytest.mark.parametrize(
    ("flag", "reason"),
    [("download_quota_exceeded", "download_quota"), ("abusive", "abusive")],
)
async def test_final_per_file_403s_are_not_retried_and_skip_only_that_file(
    world: DriveWorld, flag: str, reason: str
) -> None:
    bad = world.drive.add_file("model.bin", world.course.id, b"weights", **{flag: True})
    report = await pull_drive(world, world.folder_url(world.course))
    assert ("model.bin", reason) in {(s.path, s.reason) for s in report.skipped}
    assert len(content_requests(world.drive, bad)) == 1
    assert not (report.target / "model.bin").exists()
    assert (report.target / "01-welcome.ipynb").exists()


async def test_insufficient_file_permissions_on_download(world: DriveWorld) -> None:
    locked = world.drive.add_file("key.pdf", world.course.id, b"%PDF", can_download=False)
    repo = GoogleDriveFolder(world.course.id, "Intro to Data")
    async with open_repo(repo, world.credentials, FAST) as source:
        file = RemoteFile("key.pdf", 4, "k", DriveDownload(locked.id, None, (world.course.id,)))
        with pytest.raises(SkipFile) as skip:
            await source.download(file, world.workdir / "x", max_bytes=None, on_bytes=print)
    assert skip.value.reason == "download_disabled"
    assert "allow downloading" in skip.value.detail
    assert len(content_requests(world.drive, locked)) == 1
    assert not (world.workdir / "x").exists()


async def test_quota_exhausted_past_the_budget_leaves_the_folder_as_it_was(
    world: DriveWorld,
) -> None:
    url = world.folder_url(world.course)
    report = await pull_drive(world, url)
    mine = report.target / "02-pandas.ipynb"
    mine.write_bytes(mine.read_bytes() + b"\n")  # the student's edit
    before = tree(report.target)
    origin = origin_for(world.config, f"gdrive:{world.drive.base_url}/folders/{world.course.id}")
    head = origin.head()
    world.drive.update_file(world.child(world.course, "01-welcome.ipynb").id, notebook())
    world.drive.inject_fault(r"/drive/v3/", "403_userRateLimitExceeded", times=10**6)

    with pytest.raises(RateLimited) as error:
        await pull_drive(world, url)
    assert "try again in a few minutes" in error.value.message
    assert "quota" in error.value.message
    assert tree(report.target) == before
    assert origin.head() == head
    attempts = [r for r in world.drive.requests if r.fault]
    assert len(attempts) == GOOGLE_POLICY.max_attempts  # the whole budget, then stop


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    from gdrive_helpers import make_world

    class Waits(NullProgress):
        def __init__(self) -> None:
            self.seen: list[float] = []

        def waiting(self, seconds: float, provider: str) -> None:
            self.seen.append(seconds)

    async with FakeDrive(quota=QuotaPolicy(rate=1, burst=2, retry_after=1)) as drive:
        world = await make_world(tmp_path, drive)
        iris = world.child(world.child(world.course, "data"), "iris.csv")
        waits = Waits()
        started = time.monotonic()
        await pull_drive(world, f"https://drive.google.com/file/d/{iris.id}/view", progress=waits)
        assert drive.throttled_count >= 1
        # Retry-After: 1 wins over the (100x faster) exponential schedule's 0.01 s
        assert waits.seen and all(s == 1.0 for s in waits.seen)
        assert time.monotonic() - started >= 1.0


# --- secrets ---------------------------------------------------------------------------


async def test_no_token_or_key_material_in_output_logs_errors_or_files(
    world: DriveWorld,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    url = world.folder_url(world.course)
    report = await pull_drive(world, url)
    texts.append(summary(report))
    static = world.drive.issue_token(world.email)
    bare = world.static_credentials(static)
    report = await pull_drive(world, url, credentials=bare, parent_dir=tmp_path / "other")
    texts.append(summary(report) + repr(report))

    failures = [
        lambda: pull_drive(
            world, world.folder_url(world.drive.add_folder("hidden")), credentials=bare
        ),  # noqa: E501
        lambda: pull_drive(world, "https://docs.google.com/document/d/e/2PACX-x/pub"),
    ]
    for attempt in failures:
        try:
            await attempt()
        except PullError as error:
            texts += [str(error), repr(error), error.message]
    world.drive.revoke_token(static)
    try:
        await pull_drive(world, url, credentials=bare, parent_dir=tmp_path / "other")
    except PullError as error:
        texts += [str(error), repr(error)]
    texts += [repr(world.credentials), repr(await world.credentials.google())]

    secrets = set(world.drive.tokens) | {world.key["private_key_id"]}
    secrets |= {line for line in world.key["private_key"].splitlines() if "-----" not in line}
    assert len(world.drive.tokens) >= 2
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    for folder in (world.workdir, tmp_path / "other", world.config.home):
        for path in folder.rglob("*"):
            if path.is_file():
                texts.append(path.read_bytes().decode("latin-1"))
    # git objects are compressed: read the snapshots' and clones' history through git
    for git_dir in [*world.config.origins_dir.glob("*.git"), *world.workdir.glob("*/.git")]:
        history = subprocess.run(
            ["git", "--git-dir", str(git_dir), "log", "--all", "-p", "--format=%H %an %ae %B"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "Syllabus" in history
        texts.append(history)
    blob = "\n".join(texts)
    leaked = [s for s in secrets if s in blob]
    assert leaked == []
    assert len(blob) > 10_000  # the scan looked at something (git objects are compressed)


async def test_progress_is_told_about_throttling(world: DriveWorld) -> None:
    class Waits(NullProgress):
        def __init__(self) -> None:
            self.seen: list[tuple[float, str]] = []

        def waiting(self, seconds: float, provider: str) -> None:
            self.seen.append((seconds, provider))

    world.drive.inject_fault(r"/drive/v3/files\?", "429", times=3)
    waits = Waits()
    await pull_drive(world, world.folder_url(world.course), progress=waits)
    assert [p for _, p in waits.seen] == ["google"] * 3
    assert all(0 < s < 1 for s, _ in waits.seen)  # the scaled exponential schedule
    assert len([r for r in list_requests(world.drive) if r.fault == "429"]) == 3
