"""Our providers are registered into repoproviders, ahead of its built-ins, and claim only the
URLs they can serve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import repoproviders
from repoproviders.resolvers.base import DoesNotExist, Exists, MaybeExists
from repoproviders.resolvers.rclone import GoogleDriveFolder as PublicDriveFolder
from repoproviders.resolvers.resolver import RESOLVER_BY_TYPE
from yarl import URL

from conftest import CanvasWorld
from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.providers.canvas.links import CanvasFolder, CanvasFolderLink
from privatepuller.providers.repoproviders import Resolver, register

FID = "1AbCdEfGhIjKlMnOpQrStUvWxYz_-012"


@pytest.fixture(autouse=True)
def restore_registries() -> Iterator[None]:
    """Each test registers with its own credentials; the registries are left as found."""
    saved = {t: list(chain) for t, chain in RESOLVER_BY_TYPE.items()}
    yield
    RESOLVER_BY_TYPE.clear()
    RESOLVER_BY_TYPE.update(saved)


@pytest.fixture
def registered(world: CanvasWorld, monkeypatch: pytest.MonkeyPatch) -> CanvasWorld:
    monkeypatch.setenv("CANVAS_BASE_URL", world.canvas.base_url)
    monkeypatch.setenv("CANVAS_ACCESS_TOKEN", world.student.token)
    register()
    return world


async def test_repoproviders_resolve_and_fetch_use_our_canvas_types(
    registered: CanvasWorld, tmp_path: Path
) -> None:
    answers = await repoproviders.resolve(registered.url("/folder/Week%201"), recursive=True)
    assert answers is not None
    assert isinstance(answers[0], MaybeExists) and isinstance(answers[0].repo, CanvasFolderLink)
    assert isinstance(answers[-1], Exists) and isinstance(answers[-1].repo, CanvasFolder)
    assert answers[-1].repo.name == "Week 1"

    out = tmp_path / "out"
    await repoproviders.fetch(answers[-1].repo, out)
    assert (out / "data/iris.csv").read_bytes() == b"a,b\n1,2\n"
    assert (out / "intro.ipynb").exists()


async def test_registering_twice_keeps_one_instance_first(registered: CanvasWorld) -> None:
    register()
    chain = RESOLVER_BY_TYPE[CanvasFolderLink]
    assert isinstance(chain[0], Resolver)
    assert sum(isinstance(r, Resolver) for r in chain) == 1
    assert type(RESOLVER_BY_TYPE[URL][0]).__module__.startswith("privatepuller")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/files",
        "https://git.example.edu/users/42/files/folder/x",
        "https://example.com/courses/1/files/folder/Week%201",
    ],
)
async def test_canvas_shaped_urls_elsewhere_are_not_claimed(url: str) -> None:
    canvas = {"CANVAS_BASE_URL": "https://canvas.example.edu", "CANVAS_ACCESS_TOKEN": "t"}
    for environ in (canvas, {}):  # another Canvas configured, or none at all
        assert await Resolver(EnvCredentialSource(environ)).resolve(URL(url)) is None


async def test_canvas_urls_on_the_configured_canvas_are_claimed() -> None:
    canvas = {"CANVAS_BASE_URL": "https://canvas.example.edu", "CANVAS_ACCESS_TOKEN": "t"}
    url = URL("https://canvas.example.edu/courses/1/files/folder/Week%201")
    answer = await Resolver(EnvCredentialSource(canvas)).resolve(url)
    assert answer == MaybeExists(
        CanvasFolderLink("https://canvas.example.edu", "courses", "1", ("Week 1",))
    )


async def test_a_public_drive_folder_without_a_service_account_is_left_to_repoproviders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("GOOGLE_DRIVE_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    register(EnvCredentialSource({}))
    url = f"https://drive.google.com/drive/folders/{FID}"
    answers = await repoproviders.resolve(url, recursive=False)
    assert answers == [MaybeExists(PublicDriveFolder(FID))]


async def test_a_drive_link_that_cannot_be_resolved_is_an_answer_not_an_exception() -> None:
    # Drive credentials for an API nobody answers: resolving fails, and says so.
    env = {"GOOGLE_DRIVE_ACCESS_TOKEN": "t", "GOOGLE_DRIVE_API_URL": "http://127.0.0.1:9/drive/v3/"}
    from privatepuller.sync.config import SyncConfig

    register(EnvCredentialSource(env), SyncConfig(backoff_scale=0.0001))
    url = f"https://drive.google.com/drive/folders/{FID}"
    answers = await repoproviders.resolve(url, recursive=True)
    assert answers is not None and isinstance(answers[-1], DoesNotExist)
    assert answers[-1].message
