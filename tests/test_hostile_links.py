"""Hostile links: nothing but the configured Canvas origin ever receives the student's token."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from conftest import CanvasWorld
from privatepuller.errors import PullError, UnsupportedURL, WrongHost
from privatepuller.pull import parse_link, pull
from privatepuller.resolvers.canvas import CanvasFileLink, CanvasFolderLink, parse_canvas_url


def hostile_variants(base: URL, course: int) -> list[str]:
    port = base.port
    path = f"/courses/{course}/files"
    return [
        f"https://evil.example{path}",
        f"http://127.0.0.1:{port}@evil.example{path}",  # userinfo trick: the host is evil
        f"http://{base.host}:{port}.evil.example{path}",
        f"http://evil.example.:{port}{path}",  # trailing dot
        f"http://localhost:{port}{path}",  # same machine, another name: another origin
        f"http://127.0.0.1:{(port or 0) + 1}{path}",  # another port
        f"https://127.0.0.1:{port}{path}",  # another scheme
        f"http://xn--80ak6aa92e.com{path}",  # an IDN
        f"http://EVIL.example{path}/folder/Week%201",  # mixed case
    ]


async def test_hostile_hosts_never_receive_a_request(world: CanvasWorld) -> None:
    base = URL(world.canvas.base_url)
    for url in hostile_variants(base, world.course.id):
        # Refused as another host, or as not a URL at all (a port that is not a number).
        with pytest.raises((WrongHost, UnsupportedURL)):
            await pull(url, parent_dir=world.workdir, credentials=world.credentials)
    assert world.canvas.requests == []
    assert list(world.workdir.iterdir()) == []


@pytest.mark.parametrize(
    "suffix",
    ["/folder/..%2F..%2Fusers%2Fself", "/folder/a%2Fb", "/folder/a%00b", "/folder/x/..%2f"],
)
async def test_percent_encoded_path_tricks_are_refused(world: CanvasWorld, suffix: str) -> None:
    with pytest.raises(UnsupportedURL):
        await pull(world.url(suffix), parent_dir=world.workdir, credentials=world.credentials)
    assert world.canvas.requests == []


async def test_dot_segments_are_normalised_within_the_same_course(world: CanvasWorld) -> None:
    # yarl resolves "." and "%2e%2e" segments before we see them: still this course's files.
    assert parse_link(world.url("/folder/%2e%2e")) == parse_link(world.url())
    assert parse_link(world.url("/folder/.")) == parse_link(world.url())


async def test_mixed_case_of_the_real_host_is_the_same_canvas(world: CanvasWorld) -> None:
    url = world.url().replace("http://", "HTTP://")
    report = await pull(
        url, parent_dir=world.workdir, credentials=world.credentials, config=world.config
    )
    assert (report.target / "README.md").exists()


folder_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1,
    max_size=40,
).filter(lambda s: s not in (".", ".."))


@given(st.lists(folder_names, min_size=1, max_size=4), st.integers(1, 10**9))
def test_folder_urls_round_trip(names: list[str], course: int) -> None:
    url = f"https://canvas.example.edu/courses/{course}/files/folder/" + "/".join(
        quote(n, safe="") for n in names
    )
    link = parse_canvas_url(URL(url, encoded=True))
    assert isinstance(link, CanvasFolderLink)
    assert link.path == tuple(names) and link.context_id == str(course)
    assert link.base_url == "https://canvas.example.edu"


@given(st.text(max_size=200))
def test_parsing_arbitrary_text_never_crashes(text: str) -> None:
    try:
        parse_link(text)
        parse_link("https://canvas.example.edu/courses/1/files/" + text)
    except PullError:
        pass


@given(st.integers(1, 10**12), st.sampled_from(["", "/preview", "/download"]))
def test_file_urls(file_id: int, tail: str) -> None:
    link = parse_link(f"https://c.example.edu/courses/5/files/{file_id}{tail}?module_item_id=3")
    assert link == CanvasFileLink("https://c.example.edu", str(file_id), "courses", "5")
