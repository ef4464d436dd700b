"""Property-based tests of the two places where untrusted text becomes something we act on:
links (which origin a credential may go to) and remote names (which local path is written).

Drive's own link forms have their properties in tests/test_gdrive_urls.py
(`test_every_form_round_trips_its_id_and_resource_key`,
`test_any_google_url_parses_to_safe_ids_or_a_clear_refusal`).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from yarl import URL

from privatepuller.errors import UnsafeRequest, UnsupportedURL, WrongHost
from privatepuller.http.origin import Origin
from privatepuller.providers.canvas.links import CanvasFileLink, CanvasFolderLink, parse_canvas_url
from privatepuller.providers.canvas.provider import check_same_canvas
from privatepuller.providers.gdrive.links import (
    ID_RE,
    RESOURCE_KEY_RE,
    GoogleDriveFileLink,
    GoogleDriveFolderLink,
)
from privatepuller.pull import parse_link
from privatepuller.sync.names import MAX_COMPONENT_BYTES, LocalNamer, sanitize_component
from privatepuller.targets import BadTargetPath, safe_target

# -- links -------------------------------------------------------------------------------------

schemes = st.sampled_from(["http", "https", "HTTPS", "hTtP", "ftp", "file", "javascript", ""])
hosts = st.sampled_from(
    [
        "canvas.example.edu",
        "CANVAS.Example.edu",
        "canvas.example.edu.",
        "canvas.example.edu.evil.example",
        "evil.example",
        "127.0.0.1",
        "127.1",
        "0x7f.0.0.1",
        "2130706433",
        "localhost",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "xn--80ak6aa92e.com",
        "b\u00fccher.example",
        "c\u0430nvas.example.edu",
        "canvas.example.edu%2eevil.example",
        "canvas.example.edu%40evil.example",
        "drive.google.com",
        "docs.google.com",
        "",
    ]
)
userinfos = st.sampled_from(["", "user@", "user:pw@", "canvas.example.edu@", ":@", "@", "%40@"])
ports = st.sampled_from(["", ":443", ":80", ":8443", ":0", ":65536", ":-1", ":x", ":"])
paths = st.sampled_from(
    [
        "/courses/1/files",
        "/courses/12/files/folder/Week%201",
        "/courses/1/files/folder/a%2Fb",
        "/courses/1/files/folder/..%2F..",
        "/courses/1/files/folder/%2e%2e",
        "/courses/1~2/files/3/download",
        "/groups/7/files",
        "/users/self/files",
        "/files",
        "/files/9",
        "/drive/folders/1aaaaaaaaaaaaaaaaaaa",
        "/file/d/1aaaaaaaaaaaaaaaaaaa/view",
        "/courses/1/files/../../../etc",
        "",
        "/",
    ]
)
tails = st.sampled_from(["", "?preview=3", "?resourcekey=0-abc", "#x", "?a=%zz", "%", "\\"])
url_like = st.builds(
    lambda s, u, h, p, path, t, junk: f"{s}://{u}{h}{p}{path}{t}{junk}",
    schemes,
    userinfos,
    hosts,
    ports,
    paths,
    tails,
    st.sampled_from(["", " ", "\n"]) | st.text(max_size=8),
)


def check_parse_contract(text: str) -> None:
    """None, a Canvas link whose origin is the URL's own, a Drive link with safe ids, or a
    refusal (`UnsupportedURL`); never another exception."""
    try:
        link = parse_link(text)
    except UnsupportedURL as refused:
        assert refused.message
        return
    if isinstance(link, CanvasFolderLink | CanvasFileLink):
        url = URL(text.strip())
        assert url.user is None and url.password is None
        assert Origin.of(link.base_url) == Origin.of(url)
    elif isinstance(link, GoogleDriveFolderLink | GoogleDriveFileLink):
        item_id = link.folder_id if isinstance(link, GoogleDriveFolderLink) else link.file_id
        assert ID_RE.match(item_id)
        assert link.resource_key is None or RESOURCE_KEY_RE.match(link.resource_key)
    else:
        assert link is None


@settings(max_examples=1000)
@given(url_like)
def test_parse_link_gives_the_urls_own_origin_or_nothing_or_a_refusal(text: str) -> None:
    check_parse_contract(text)


@given(st.text(max_size=200))
def test_parsing_arbitrary_text_never_crashes(text: str) -> None:
    check_parse_contract(text)
    check_parse_contract("https://canvas.example.edu/courses/1/files/" + text)
    check_parse_contract("https://drive.google.com/drive/folders/" + text)


CONFIGURED = Origin.of("https://canvas.example.edu")


@settings(max_examples=500)
@given(url_like)
def test_only_the_configured_canvas_origin_passes_the_host_check(text: str) -> None:
    try:
        link = parse_link(text)
    except UnsupportedURL:
        return
    if not isinstance(link, CanvasFolderLink | CanvasFileLink):
        return
    try:
        check_same_canvas(link.base_url, CONFIGURED)
    except WrongHost as refused:
        assert Origin.of(URL(text.strip())) != CONFIGURED
        assert "only ever sent to canvas.example.edu" in refused.message
    else:  # accepted: the link's origin is the configured one, however it was spelt
        url = URL(text.strip())
        assert url.scheme.lower() == "https" and url.port in (None, 443)
        assert url.host is not None and url.host.rstrip(".").lower() == "canvas.example.edu"


@given(
    host=st.sampled_from(["canvas.example.edu", "Canvas.Example.EDU", "canvas.example.edu."]),
    port=st.sampled_from(["", ":443"]),
    scheme=st.sampled_from(["https", "HTTPS"]),
)
def test_spellings_of_the_same_origin_are_equal(host: str, port: str, scheme: str) -> None:
    assert Origin.of(f"{scheme}://{host}{port}/x") == CONFIGURED


@given(
    scheme=st.sampled_from(["http", "https"]),
    host=st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}", fullmatch=True),
    port=st.integers(1, 65535),
)
def test_any_other_host_port_or_scheme_is_another_origin(scheme: str, host: str, port: int) -> None:
    assume((scheme, host, port) != ("https", "canvas.example.edu", 443))
    try:
        other = Origin.of(f"{scheme}://{host}:{port}/")
    except UnsafeRequest:
        return
    assert other != CONFIGURED


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


@given(st.integers(1, 10**12), st.sampled_from(["", "/preview", "/download"]))
def test_file_urls(file_id: int, tail: str) -> None:
    link = parse_link(f"https://c.example.edu/courses/5/files/{file_id}{tail}?module_item_id=3")
    assert link == CanvasFileLink("https://c.example.edu", str(file_id), "courses", "5")


@given(st.text(max_size=30), st.sampled_from(["", "x:y", "user", "a@b"]))
def test_user_info_in_a_canvas_link_is_always_refused(name: str, user: str) -> None:
    url = URL.build(
        scheme="https",
        user=user.split(":")[0] or None,
        password=user.split(":")[1] if ":" in user else None,
        host="canvas.example.edu",
        path="/courses/1/files/folder/" + name.replace("/", "_"),
    )
    if url.user is None:
        return
    with pytest.raises(UnsupportedURL):
        parse_link(str(url))


# -- local names -------------------------------------------------------------------------------

BIDI = {chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


def assert_safe_component(part: str) -> None:
    assert part and "/" not in part and "\\" not in part and "\x00" not in part
    assert part not in (".", "..") and part.casefold() not in (".git", "git~1")
    assert not part.endswith((".", " ")) and not part.startswith(" ")
    assert len(part.encode()) <= MAX_COMPONENT_BYTES
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in BIDI for c in part)


@given(st.text(max_size=600))
def test_any_name_becomes_one_safe_component(name: str) -> None:
    safe = sanitize_component(name)
    assert_safe_component(safe)
    assert sanitize_component(safe) == safe  # already safe: left alone


remote_names = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [".", "..", ".git", ".GIT", "git~1", "a/b", "a_b", "A_B", "a\\b", "con", "x" * 300]
        + ["Data.csv", "data.csv", "DATA.CSV", "caf\u00e9", "cafe\u0301", "", " ", "\x00"]
    ),
)


@st.composite
def remote_trees(draw: st.DrawFn) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Folders as (parent index, name) (index 0 is the root, folder i is index i+1), and files
    as (folder index, name)."""
    folders: list[tuple[int, str]] = []
    for i in range(draw(st.integers(0, 8))):
        folders.append((draw(st.integers(0, i)), draw(remote_names)))
    files = draw(st.lists(st.tuples(st.integers(0, len(folders)), remote_names), max_size=25))
    return folders, files


def assign(folders: list[tuple[int, str]], files: list[tuple[int, str]]) -> list[str]:
    namer = LocalNamer()
    namer.root("f0")
    paths = [
        namer.folder(f"f{i + 1}", f"f{parent}", name) for i, (parent, name) in enumerate(folders)
    ]
    paths += [namer.file(f"file{j}", f"f{folder}", name) for j, (folder, name) in enumerate(files)]
    return paths


@settings(max_examples=300)
@given(remote_trees())
def test_local_names_are_safe_unique_and_deterministic(
    tree: tuple[list[tuple[int, str]], list[tuple[int, str]]],
) -> None:
    folders, files = tree
    paths = assign(folders, files)
    assert paths == assign(folders, files)  # the same listing, the same names
    # Unique even on a case-insensitive disk (folders and files share one namespace).
    assert len({p.casefold() for p in paths}) == len(paths)
    for path in paths:
        parts = path.split("/")
        for part in parts:
            assert_safe_component(part)
        # Joined under any folder, the path stays inside it.
        assert PurePosixPath("/target", path).parts[:2] == ("/", "target")
        assert os.path.normpath(f"/target/{path}") == f"/target/{path}"
    # A file lies in its own folder.
    folder_paths = [""] + paths[: len(folders)]
    for (folder, _), path in zip(files, paths[len(folders) :], strict=True):
        parent = folder_paths[folder]
        assert path.rsplit("/", 1)[0] == parent if parent else "/" not in path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("targets")
    (root / "home").mkdir()
    (root / "home" / "escape").symlink_to(root)
    (root / "home" / "real").mkdir()
    (root / "home" / "alias").symlink_to(root / "home" / "real")  # a link inside the home
    yield root / "home"


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from(
            [
                *["..", ".", "", "~", "escape", "alias", "real", ".git", ".local", ".ssh", "a"],
                *["Week 1", "/", "\\", "\x00", "\x1b", ". ", ".."],
            ]
        )
        | st.text(max_size=10),
        max_size=5,
    )
)
def test_a_targetpath_is_refused_or_stays_inside_the_home_folder(
    home: Path, parts: list[str]
) -> None:
    targetpath = "/".join(parts)
    try:
        target = safe_target(home, targetpath)
    except BadTargetPath as refused:
        assert "Ask your instructor to fix the link" in refused.message
        return
    real = os.path.realpath(target)
    assert real.startswith(os.path.realpath(home) + os.sep)
    relative = target.relative_to(home)
    # Visible folders only (tools keep their settings, and code, in hidden ones) ...
    assert not any(part.startswith(".") for part in relative.parts)
    # ... never reached through a symbolic link, and free of control characters.
    assert real == os.path.join(os.path.realpath(home), *relative.parts)
    assert not any(unicodedata.category(c) == "Cc" for c in targetpath)
