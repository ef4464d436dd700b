"""Bad input on the command line: a specific message and a non-zero exit, never "unexpected
error", and nothing misleading printed before it."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from cli_helpers import CLI, as_a_user, canvas_env, clean_env, run
from conftest import CanvasWorld
from privatepuller.cli import build_parser

DRIVE_URL = "https://drive.google.com/drive/folders/1AbCdEfGhIjKlMnOpQrStUvWxYz012345"
NO_PROGRESS = ("Downloading", "up to date", "nothing to download", "Synced")


def assert_refused(code: int, out: str) -> None:
    assert code == 1, out
    assert "unexpected error" not in out and "Traceback" not in out, out
    assert not any(words in out for words in NO_PROGRESS), out


# --- where the folder goes ----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["notes.txt", "notes.txt/course", "notes.txt/a/b"])
async def test_a_target_that_is_or_is_inside_a_file(world: CanvasWorld, target: str) -> None:
    (world.workdir / "notes.txt").write_text("mine\n")
    code, out = await run("pull", world.url(), target, env=canvas_env(world), cwd=world.workdir)
    assert_refused(code, out)
    assert "“notes.txt” already exists and is a file" in out, out
    assert (world.workdir / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in world.workdir.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("target", ["locked/course", "locked/a/course"])
async def test_a_target_in_a_folder_the_user_cannot_write(world: CanvasWorld, target: str) -> None:
    locked = world.workdir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, out = await run(
            "pull",
            world.url(),
            target,
            env=canvas_env(world),
            cwd=world.workdir,
            preexec_fn=as_a_user(),
        )
    finally:
        locked.chmod(0o755)
    assert_refused(code, out)
    assert "You cannot write in “locked”" in out, out
    assert "git clone" not in out and "rename" not in out, out
    assert list(locked.iterdir()) == []


async def test_an_existing_copy_the_user_cannot_write(world: CanvasWorld) -> None:
    env = canvas_env(world)
    code, out = await run("pull", world.url(), "course", env=env, cwd=world.workdir)
    assert code == 0, out
    target = world.workdir / "course"
    target.chmod(0o555)
    try:
        code, out = await run(
            "pull", world.url(), "course", env=env, cwd=world.workdir, preexec_fn=as_a_user()
        )
    finally:
        target.chmod(0o755)
    assert_refused(code, out)
    assert "You cannot write in “course”" in out, out


@pytest.mark.parametrize("home", ["locked/home", "notes.txt", "notes.txt/home"])
async def test_a_home_the_user_cannot_write(world: CanvasWorld, home: str) -> None:
    locked = world.workdir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    (world.workdir / "notes.txt").write_text("mine\n")
    try:
        code, out = await run(
            "pull",
            world.url(),
            "course",
            "--home",
            home,
            env=canvas_env(world),
            cwd=world.workdir,
            preexec_fn=as_a_user(),
        )
    finally:
        locked.chmod(0o755)
    assert_refused(code, out)
    assert out.startswith("privatepuller: Cannot write in “"), out
    assert "where privatepuller keeps a copy of each folder it pulls" in out and "--home" in out
    assert not (world.workdir / "course").exists()


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [
        ["--max-file-size", "-5"],
        ["--max-file-size", "0"],
        ["--max-total-size", "0"],
        ["--max-total-size=-1e3"],
        ["--max-file-size", "nan"],
        ["--max-file-size", "inf"],
        ["--max-file-size", "ten"],
        ["--wait", "-1"],
        ["--deadline", "-5"],
    ],
)
def test_nonsense_sizes_and_times_are_refused(option: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "pull", "https://canvas.example.edu/courses/1/files", *option],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean_env(),
    )
    assert result.returncode == 2, result
    [error] = [line for line in result.stderr.splitlines() if "error:" in line]
    name = option[0].split("=")[0]
    assert f"argument {name}:" in error
    assert ("number of MB" in error) == ("size" in name), error
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def test_every_argument_of_pull_resolve_and_link_has_help() -> None:
    for command, expected in {
        "pull": ["URL", "TARGET_DIR", "--max-file-size", "in MB", "--home", "--wait"],
        "resolve": ["URL", "--json"],
        "link": ["URL", "--hub", "--urlpath", "--targetpath"],
    }.items():
        result = subprocess.run(
            [*CLI, command, "--help"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0
        text = " ".join(result.stdout.split())
        for words in expected:
            assert words in text, (command, words, text)
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        for action in parser._actions:
            assert action.help, (name, action.dest)


# --- credentials: words that depend on where privatepuller runs -----------------------------------

HUB = {"JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api"}


async def test_no_canvas_token_outside_a_hub_names_the_variables(tmp_path: Path) -> None:
    url = "https://canvas.example.edu/courses/1/files"
    env = clean_env(PRIVATEPULLER_HOME=str(tmp_path / "home"))
    code, out = await run("pull", url, env=env, cwd=tmp_path, inherit=False)
    assert_refused(code, out)
    assert "CANVAS_BASE_URL" in out and "CANVAS_ACCESS_TOKEN" in out, out
    assert "hub administrator" not in out
    code, out = await run("pull", url, env={**env, **HUB}, cwd=tmp_path, inherit=False)
    assert_refused(code, out)
    assert "Ask your hub administrator" in out and "CANVAS_ACCESS_TOKEN" not in out, out


async def test_no_google_credentials_outside_a_hub_names_the_variables(tmp_path: Path) -> None:
    env = clean_env(PRIVATEPULLER_HOME=str(tmp_path / "home"))
    code, out = await run("pull", DRIVE_URL, env=env, cwd=tmp_path, inherit=False)
    assert_refused(code, out)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in out and "GOOGLE_DRIVE_ACCESS_TOKEN" in out, out
    assert "hub administrator" not in out
    code, out = await run("pull", DRIVE_URL, env={**env, **HUB}, cwd=tmp_path, inherit=False)
    assert_refused(code, out)
    assert "Ask your hub administrator" in out and "GOOGLE_APPLICATION" not in out, out


async def test_a_wrong_token_outside_a_hub_does_not_mention_the_hub(world: CanvasWorld) -> None:
    world.canvas.revoke_token(world.student.token)
    env = clean_env(**canvas_env(world))
    code, out = await run("pull", world.url(), env=env, cwd=world.workdir, inherit=False)
    assert_refused(code, out)
    assert "hub" not in out.lower(), out
    assert "CANVAS_ACCESS_TOKEN" in out, out
    code, out = await run("pull", world.url(), env={**env, **HUB}, cwd=world.workdir)
    assert_refused(code, out)
    assert "Log out of the hub and log in again" in out, out
    assert list(world.workdir.iterdir()) == []
