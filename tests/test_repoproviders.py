"""Our resolvers and fetchers are registered into repoproviders, ahead of its built-ins."""

from __future__ import annotations

from pathlib import Path

import pytest
import repoproviders
from repoproviders.resolvers.base import Exists, MaybeExists
from repoproviders.resolvers.resolver import RESOLVER_BY_TYPE
from yarl import URL

from conftest import CanvasWorld
from privatepuller.providers.canvas.links import CanvasFolder, CanvasFolderLink, CanvasResolver
from privatepuller.providers.repoproviders import register


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
    assert isinstance(chain[0], CanvasResolver)
    assert sum(isinstance(r, CanvasResolver) for r in chain) == 1
    assert type(RESOLVER_BY_TYPE[URL][0]).__module__.startswith("privatepuller")
