"""The leak scan itself (tests/leak_scan.py): it finds planted credentials wherever they hide,
names the place without printing the secret, and leaves clean tests alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from leak_scan import Scanner, is_service_account_key

TOKEN = "1~" + "Q7xv" * 16
SECRETS = {TOKEN: "Canvas access token"}
TESTS_DIR = Path(__file__).resolve().parent


def test_finds_a_secret_as_is_percent_encoded_and_across_chunks(tmp_path: Path) -> None:
    scanner = Scanner(SECRETS)
    assert scanner.scan("text", "nothing to see") == []
    [finding] = scanner.scan("a log line", f"GET /x\nAuthorization: Bearer {TOKEN} sent")
    assert finding.label == "Canvas access token" and finding.where == "a log line"
    assert finding.position == "line 2, column 23"
    assert finding.context == "Authorization: Bearer "
    assert TOKEN not in str(finding) and TOKEN[2:20] not in str(finding)
    assert scanner.scan("url", "?access_token=" + TOKEN.replace("~", "%7E")) != []
    data = b"x" * 1000 + TOKEN.encode() + b"y" * 1000
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]  # the token spans many chunks
    assert len(scanner.scan_stream("stream", chunks)) == 1
    path = tmp_path / "notes.txt"
    path.write_bytes(data)
    assert [f.where for f in scanner.scan_file(path)] == [str(path)]


def test_the_context_never_shows_part_of_another_secret() -> None:
    other = "ya29.c." + "k" * 40
    scanner = Scanner({TOKEN: "Canvas access token", other: "Google access token"})
    findings = scanner.scan("x", f"a={other[:-3]}; b={TOKEN}")
    assert [f.label for f in findings] == ["Canvas access token"]
    assert "kkkk" not in findings[0].context


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_git_objects_are_read_loose_and_packed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    (repo / "f.txt").write_text(f"token: {TOKEN}\n")
    _git("add", "f.txt", cwd=repo)
    _git("commit", "-q", "-m", "x", cwd=repo)
    (repo / "f.txt").write_text("clean now\n")  # only git's compressed objects have it
    _git("commit", "-q", "-am", "clean", cwd=repo)
    scanner = Scanner(SECRETS)
    [loose] = scanner.scan_tree(tmp_path)
    assert loose.where.startswith(f"git objects of {repo / '.git'}")
    _git("gc", "-q", "--aggressive", cwd=repo)  # now in a (delta-compressed) pack
    assert not list((repo / ".git/objects").glob("[0-9a-f][0-9a-f]/*"))
    assert [f.where for f in scanner.scan_tree(tmp_path)] == [f"git objects of {repo / '.git'}"]
    bare = tmp_path / "origin.git"
    _git("clone", "-q", "--bare", str(repo), str(bare), cwd=tmp_path)
    assert {f.where for f in scanner.scan_tree(tmp_path)} == {
        f"git objects of {repo / '.git'}",
        f"git objects of {bare}",
    }


def test_only_files_changed_since_are_rescanned(tmp_path: Path) -> None:
    (tmp_path / "server.log").write_text(TOKEN)
    scanner = Scanner(SECRETS)
    assert scanner.scan_tree(tmp_path, since_ns=time.time_ns() + 10**10) == []
    assert len(scanner.scan_tree(tmp_path, since_ns=time.time_ns() - 10**10)) == 1


def test_service_account_key_files_hold_the_key_on_purpose(tmp_path: Path) -> None:
    key = tmp_path / "sa.json"
    key.write_text(json.dumps({"type": "service_account", "private_key": "..."}))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"token": TOKEN}))
    assert is_service_account_key(key) and not is_service_account_key(other)


PLANTED = '''
import asyncio
import logging
import subprocess

import pytest

from leak_scan import observe
from privatepuller.errors import DownloadFailed
from privatepuller.testing.canvas.fake import FakeCanvas


def token() -> str:
    return FakeCanvas().add_user("Ada").token


def test_clean(tmp_path):
    token()
    (tmp_path / "a.txt").write_text("nothing secret")
    logging.getLogger("privatepuller").debug("synced %s files", 3)
    print("all good")


def test_in_a_file(tmp_path):
    (tmp_path / "home" / "course").mkdir(parents=True)
    (tmp_path / "home" / "course" / "notes.md").write_text("Bearer " + token())


def test_in_a_debug_log_line():
    logging.getLogger("privatepuller.sync").debug("GET with %s", token())


def test_in_a_git_object(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text(token())
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    (tmp_path / "f").unlink()


def test_in_an_error_message():
    with pytest.raises(DownloadFailed):
        raise DownloadFailed("could not download with " + token())


def test_in_an_sse_event():
    observe("an SSE event", 'data: {"phase": "error", "message": "%s"}' % token())


def test_printed():
    print(token())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server for the whole module, with its own folder (its log, say)."""
    loop = asyncio.new_event_loop()
    canvas = FakeCanvas()
    loop.run_until_complete(canvas.start())
    yield canvas.add_user("Ada").token, tmp_path_factory.mktemp("server")
    loop.run_until_complete(canvas.stop())
    loop.close()


def test_module_server_first(server):
    pass


def test_module_server_later_logs_a_token_minted_before_the_test(server):
    token, folder = server
    (folder / "server.log").write_text("GET /api/v1/courses Authorization: Bearer " + token)
'''


def test_the_plugin_fails_each_planted_leak_and_passes_a_clean_test(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["leak_scan"]\n')
    (tmp_path / "test_planted.py").write_text(PLANTED)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "test_planted.py"],
        cwd=tmp_path,
        # The caller's PYTHONPATH stays: it may name the sources under test.
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.getenv("PYTHONPATH")])),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "PASSED test_planted.py::test_clean" in out
    assert "PASSED test_planted.py::test_module_server_first" in out
    for name, where in [
        ("test_in_a_file", "home/course/notes.md (line 1, column 8 after 'Bearer ')"),
        ("test_in_a_debug_log_line", "log record privatepuller.sync:DEBUG"),
        ("test_in_a_git_object", "git objects of"),
        ("test_in_an_error_message", "DownloadFailed message"),
        ("test_in_an_sse_event", "an SSE event"),
        ("test_printed", "pytest's “Captured stdout call”"),
        ("test_module_server_later_logs_a_token_minted_before_the_test", "server0/server.log"),
    ]:
        assert f"ERROR test_planted.py::{name}" in out, out
        assert where in out, (where, out)
    assert "Canvas access token in" in out
    assert "1~" not in out  # the report names places, never the tokens (captures redacted)
