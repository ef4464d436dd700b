"""Local names: nothing escapes the target, collisions are deterministic.

The property-based tests are in tests/test_adversarial_properties.py.
"""

from __future__ import annotations

from privatepuller.sync.names import LocalNamer, sanitize_component


def test_hostile_names_are_neutralised() -> None:
    assert sanitize_component("..") == "_"
    assert sanitize_component("../../etc/passwd") == ".._.._etc_passwd"
    assert sanitize_component("/abs") == "_abs"
    assert sanitize_component("a\x00b") == "a_b"
    assert sanitize_component(".git") == "_.git"
    long = sanitize_component("x" * 1000 + ".ipynb")
    assert long.endswith(".ipynb") and len(long.encode()) <= 255


def test_case_only_and_sanitised_collisions_get_stable_distinct_names() -> None:
    def assign() -> list[str]:
        namer = LocalNamer()
        namer.root("root")
        return [
            namer.file("id1", "root", "Data.csv"),
            namer.file("id2", "root", "data.csv"),
            namer.file("id3", "root", "a/b.txt"),
            namer.file("id4", "root", "a_b.txt"),
        ]

    first = assign()
    assert first == assign()  # deterministic
    assert len({n.casefold() for n in first}) == 4
    assert first[0] == "Data.csv" and first[1] == "data (id2).csv"


def test_folders_and_files_share_a_namespace() -> None:
    namer = LocalNamer()
    namer.root("r")
    folder = namer.folder("f1", "r", "data")
    file = namer.file("x9", "r", "DATA")
    assert folder == "data" and file != "DATA" and file.casefold() != "data"
    assert namer.file("x1", "f1", "in.csv") == "data/in.csv"
