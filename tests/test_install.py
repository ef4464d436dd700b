"""Install as docs/admin.md says, before privatepuller is on the package index: build the wheel
(`pip wheel --no-deps -w <dir> .`), install it into a fresh virtual environment (its
dependencies come from the package index pip uses here, through pip's cache), and Jupyter there
lists the `privatepuller` server extension as enabled and importable.

Marked `install` (pytest -m install / -m "not install"): it needs the package index and takes
about half a minute with a warm pip cache.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "src/privatepuller/server/templates"
EXTENSION_CONFIG = REPO / "jupyter-config/jupyter_server_config.d/privatepuller.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(
    command: list[str], *, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        timeout=180,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [path] = out.glob("privatepuller-*-py3-none-any.whl")
    return path


def version_of(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def test_the_wheel_carries_the_extension_config_and_the_templates(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        config = (
            f"privatepuller-{version_of(wheel)}.data/data/"
            "etc/jupyter/jupyter_server_config.d/privatepuller.json"
        )
        assert config in names  # pip puts it in <env>/etc/jupyter/, where Jupyter looks
        assert json.loads(archive.read(config)) == json.loads(EXTENSION_CONFIG.read_text())
        assert json.loads(archive.read(config)) == {
            "ServerApp": {"jpserver_extensions": {"privatepuller": True}}
        }
        templates = sorted(p.name for p in TEMPLATES.glob("*.html"))
        assert templates  # the progress page and the link builder
        for name in templates:
            assert f"privatepuller/server/templates/{name}" in names
            assert (
                archive.read(f"privatepuller/server/templates/{name}")
                == (TEMPLATES / name).read_bytes()
            )


def test_a_fresh_environment_lists_the_extension_enabled(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    created = run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    assert created.returncode == 0, created.stderr[-3000:]
    # Nothing of this test run's environment leaks in (no JUPYTER_* paths, no other venv);
    # a fresh config dir keeps the user's own ~/.jupyter out of the listing.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER", "PYTHON", "VIRTUAL_ENV", "CONDA"))
    }
    env |= {"JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"), "JUPYTER_PLATFORM_DIRS": "1"}
    installed = run(
        [str(venv / "bin/python"), "-m", "pip", "install", str(wheel)], timeout=600, env=env
    )
    assert installed.returncode == 0, (
        "pip could not install the wheel and its dependencies from the package index:\n"
        + installed.stderr[-3000:]
    )

    listed = run([str(venv / "bin/jupyter"), "server", "extension", "list"], timeout=120, env=env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    text = ANSI.sub("", listed.stdout)
    # The section of the new environment's own config dir (where the wheel's data file went).
    sections = re.split(r"^Config dir: ", text, flags=re.MULTILINE)
    [ours] = [s for s in sections if s.startswith(f"{venv / 'etc' / 'jupyter'}\n")]
    assert re.search(r"^ +privatepuller enabled$", ours, re.MULTILINE), text
    # "OK": jupyter_server imported privatepuller and found its extension points.
    assert re.search(rf"^ +privatepuller {re.escape(version_of(wheel))} OK$", ours, re.MULTILINE)
    assert re.search(r"^ +nbgitpuller enabled$", ours, re.MULTILINE), text  # a dependency
    assert (venv / "etc/jupyter/jupyter_server_config.d/privatepuller.json").is_file()
