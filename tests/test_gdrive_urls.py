"""Google Drive link forms -> our link types, without network (plus properties, with hypothesis)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from privatepuller.credentials.sources import EnvCredentialSource
from privatepuller.errors import UnsupportedURL
from privatepuller.providers.base import DoesNotExist, MaybeExists
from privatepuller.providers.gdrive.links import (
    ID_RE,
    RESOURCE_KEY_RE,
    GoogleDriveFileLink,
    GoogleDriveFolderLink,
    parse_drive_url,
)
from privatepuller.providers.repoproviders import Resolver
from privatepuller.pull import parse_link

FID = "1AbCdEfGhIjKlMnOpQrStUvWxYz_-012"
DRIVE_ID = "0ABCDEF-01234567890"
RK = "0-ABCDEFGHIXJQpIGqBJq3MC"


def parse(url: str) -> GoogleDriveFolderLink | GoogleDriveFileLink | None:
    return parse_drive_url(URL(url))


@pytest.mark.parametrize(
    "url",
    [
        f"https://drive.google.com/drive/folders/{FID}",
        f"https://drive.google.com/drive/folders/{FID}?usp=sharing",
        f"https://drive.google.com/drive/folders/{FID}?usp=drive_link",
        f"https://drive.google.com/drive/folders/{FID}/",
        f"https://drive.google.com/drive/u/0/folders/{FID}",
        f"https://drive.google.com/drive/u/3/folders/{FID}?usp=sharing",
        f"https://drive.google.com/drive/mobile/folders/{FID}",
        f"https://drive.google.com/folderview?id={FID}",
        f"http://drive.google.com/drive/folders/{FID}",
        f"https://DRIVE.GOOGLE.COM/drive/folders/{FID}",
    ],
)
def test_folder_links(url: str) -> None:
    assert parse(url) == GoogleDriveFolderLink(FID, None)


@pytest.mark.parametrize(
    "url",
    [
        f"https://drive.google.com/drive/folders/{DRIVE_ID}",
        f"https://drive.google.com/drive/u/1/folders/{DRIVE_ID}",
    ],
)
def test_shared_drive_roots_are_folder_links(url: str) -> None:
    assert parse(url) == GoogleDriveFolderLink(DRIVE_ID)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://drive.google.com/file/d/{FID}/view", "file"),
        (f"https://drive.google.com/file/d/{FID}/view?usp=sharing", "file"),
        (f"https://drive.google.com/file/d/{FID}/edit", "file"),
        (f"https://drive.google.com/file/d/{FID}/preview", "file"),
        (f"https://drive.google.com/file/d/{FID}", "file"),
        (f"https://drive.google.com/file/u/2/d/{FID}/view", "file"),
        (f"https://drive.google.com/open?id={FID}", "any"),
        (f"https://drive.google.com/uc?id={FID}&export=download", "any"),
        (f"https://drive.google.com/uc?export=download&id={FID}", "any"),
        (f"https://drive.usercontent.google.com/download?id={FID}&export=download", "any"),
        (f"https://docs.google.com/document/d/{FID}/edit", "document"),
        (f"https://docs.google.com/document/d/{FID}/edit?usp=sharing", "document"),
        (f"https://docs.google.com/document/u/1/d/{FID}/htmlview", "document"),
        (f"https://docs.google.com/spreadsheets/d/{FID}/edit#gid=0", "spreadsheet"),
        (f"https://docs.google.com/spreadsheet/ccc?key={FID}", "spreadsheet"),
        (f"https://docs.google.com/presentation/d/{FID}/edit#slide=id.p", "presentation"),
        (f"https://docs.google.com/drawings/d/{FID}/edit", "drawing"),
        (f"https://docs.google.com/forms/d/{FID}/edit", "form"),
        (f"https://colab.research.google.com/drive/{FID}", "colab"),
        (f"https://colab.research.google.com/drive/{FID}#scrollTo=abc", "colab"),
        (f"https://colab.research.google.com/drive/{FID}?usp=sharing", "colab"),
    ],
)
def test_file_links(url: str, expected: str) -> None:
    assert parse(url) == GoogleDriveFileLink(FID, None, expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "link"),
    [
        (
            f"https://drive.google.com/drive/folders/{FID}?resourcekey={RK}&usp=sharing",
            GoogleDriveFolderLink(FID, RK),
        ),
        (
            f"https://drive.google.com/drive/folders/{FID}?usp=sharing&resourcekey={RK}",
            GoogleDriveFolderLink(FID, RK),
        ),
        (
            f"https://drive.google.com/file/d/{FID}/view?usp=drivesdk&resourcekey={RK}",
            GoogleDriveFileLink(FID, RK, "file"),
        ),
        (
            f"https://docs.google.com/document/d/{FID}/edit?usp=drivesdk&resourcekey={RK}",
            GoogleDriveFileLink(FID, RK, "document"),
        ),
        (f"https://drive.google.com/open?id={FID}&resourcekey={RK}", GoogleDriveFileLink(FID, RK, "any")),  # noqa: E501
    ],
)  # fmt: skip
def test_resource_keys_are_picked_up(url: str, link: object) -> None:
    assert parse(url) == link


@pytest.mark.parametrize(
    "url",
    [
        "https://docs.google.com/document/d/e/2PACX-1vQabcdefghijklmnop/pub",
        "https://docs.google.com/spreadsheets/d/e/2PACX-1vQabcdefghijklmnop/pubhtml",
        "https://docs.google.com/presentation/d/e/2PACX-1vQabcdefghijklmnop/pub?start=false",
        "https://docs.google.com/forms/d/e/1FAIpQLSfabcdefghijklmnop/viewform",
        "https://docs.google.com/spreadsheet/pub?key=0AabcdefghijklmnopQRST",
    ],
)
def test_published_copies_are_refused_saying_why(url: str) -> None:
    with pytest.raises(UnsupportedURL, match="published copy") as refused:
        parse(url)
    assert "Share" in refused.value.message  # says what to copy instead
    with pytest.raises(UnsupportedURL, match="published copy"):
        parse_link(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://drive.google.com/drive/my-drive",
        "https://drive.google.com/drive/u/0/shared-with-me",
        "https://drive.google.com/drive",
        "https://drive.google.com/",
        "https://docs.google.com/document/u/0/",
    ],
)
def test_drive_pages_that_name_no_item_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedURL, match="not the address of a Drive folder or file"):
        parse(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://drive.google.com/drive/folders/short",  # too short to be a Drive id
        "https://drive.google.com/drive/folders/abc%2F..%2F..%2Fetc%2Fpasswd",
        "https://drive.google.com/open?id=../../about",
        f"https://drive.google.com/drive/folders/{FID}?resourcekey=0-abc%0d%0aX-Evil:%201",
    ],
)
def test_malformed_ids_and_keys_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedURL):
        parse(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/repo",
        "https://colab.research.google.com/github/org/repo/blob/main/nb.ipynb",
        "https://colab.research.google.com/",
        "https://canvas.example.edu/courses/12/files",
        "https://www.google.com/drive/folders/abc",
        "file:///drive/folders/1AbCdEfGhIjKlMnOpQrStUvWxYz",
    ],
)
def test_other_links_are_not_drive_links(url: str) -> None:
    assert parse(url) is None


def test_parse_link_dispatches_drive_urls() -> None:
    assert parse_link(f" https://drive.google.com/drive/folders/{FID}?usp=sharing ") == (
        GoogleDriveFolderLink(FID)
    )
    assert parse_link(f"https://colab.research.google.com/drive/{FID}") == GoogleDriveFileLink(
        FID, None, "colab"
    )


async def test_url_resolver_answers_maybe_exists_or_explains_a_refusal() -> None:
    # Claimed when this server has Drive credentials (else repoproviders' own resolvers may).
    resolver = Resolver(EnvCredentialSource({"GOOGLE_DRIVE_ACCESS_TOKEN": "t"}))
    answer = await resolver.resolve(URL(f"https://drive.google.com/drive/folders/{FID}"))
    assert answer == MaybeExists(GoogleDriveFolderLink(FID))
    refused = await resolver.resolve(URL("https://docs.google.com/document/d/e/2PACX-1vQx/pub"))
    assert isinstance(refused, DoesNotExist) and "published copy" in refused.message
    assert await resolver.resolve(URL("https://github.com/org/repo")) is None


# --- properties ----------------------------------------------------------------------------

ids = st.from_regex(r"[A-Za-z0-9_-]{10,60}", fullmatch=True)
keys = st.from_regex(r"0-[A-Za-z0-9_-]{5,30}", fullmatch=True)
noise = st.sampled_from(["usp=sharing", "usp=drive_link", "usp=drivesdk", "authuser=0", ""])
fragments = st.sampled_from(["", "#gid=0", "#scrollTo=xyz", "#slide=id.p"])
accounts = st.none() | st.integers(min_value=0, max_value=9)

FOLDER_FORMS = ["https://drive.google.com/drive/{u}folders/{id}"]
FILE_FORMS = {
    "https://drive.google.com/file/{u}d/{id}/view": "file",
    "https://docs.google.com/document/{u}d/{id}/edit": "document",
    "https://docs.google.com/spreadsheets/{u}d/{id}/edit": "spreadsheet",
    "https://docs.google.com/presentation/{u}d/{id}/edit": "presentation",
    "https://colab.research.google.com/drive/{id}": "colab",
}


def _build(form: str, item_id: str, account: int | None, key: str | None, extra: str) -> str:
    url = form.format(u="" if account is None else f"u/{account}/", id=item_id)
    query = [q for q in (extra, f"resourcekey={key}" if key else "") if q]
    return url + ("?" + "&".join(query) if query else "")


@given(
    item_id=ids,
    key=st.none() | keys,
    account=accounts,
    extra=noise,
    fragment=fragments,
    form=st.sampled_from(FOLDER_FORMS + list(FILE_FORMS)),
)
def test_every_form_round_trips_its_id_and_resource_key(
    item_id: str, key: str | None, account: int | None, extra: str, fragment: str, form: str
) -> None:
    link = parse(_build(form, item_id, account, key, extra) + fragment)
    if form in FILE_FORMS:
        assert link == GoogleDriveFileLink(item_id, key, FILE_FORMS[form])  # type: ignore[arg-type]
    else:
        assert link == GoogleDriveFolderLink(item_id, key)


segment = st.text(min_size=0, max_size=30)
google_hosts = st.sampled_from(
    [
        "drive.google.com",
        "docs.google.com",
        "colab.research.google.com",
        "drive.usercontent.google.com",
    ]
)


@settings(max_examples=300)
@given(
    host=google_hosts,
    parts=st.lists(
        st.sampled_from(["drive", "folders", "file", "d", "e", "u", "0", "open", "document"])
        | segment,
        max_size=6,
    ),
    query=st.dictionaries(st.sampled_from(["id", "resourcekey", "key", "usp"]), segment),
)
def test_any_google_url_parses_to_safe_ids_or_a_clear_refusal(
    host: str, parts: list[str], query: dict[str, str]
) -> None:
    path = "/".join(quote(p, safe="") for p in parts)
    qs = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    url = f"https://{host}/{path}" + (f"?{qs}" if qs else "")
    try:
        link = parse(url)
    except UnsupportedURL as refused:
        assert refused.message  # a sentence, never a traceback
        return
    if link is None:
        assert host == "colab.research.google.com"
        return
    item_id = link.folder_id if isinstance(link, GoogleDriveFolderLink) else link.file_id
    # Ids end up in API paths and keys in a header: only the safe alphabet gets through.
    assert ID_RE.match(item_id)
    assert link.resource_key is None or RESOURCE_KEY_RE.match(link.resource_key)
