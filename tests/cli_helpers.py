"""Running the real command line (`python -m privatepuller`) in a subprocess, as a person would."""

from __future__ import annotations

import asyncio
import ctypes
import os
import pty
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from conftest import CanvasWorld
from leak_scan import observe

CLI = [sys.executable, "-m", "privatepuller"]

# Linux capabilities that let root ignore file permissions (capability.h).
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
PR_CAPBSET_DROP = 24


def _drop_root_powers() -> None:
    """In the child, before exec: give up the capabilities that let root write anywhere, so
    that a folder without write permission is one for root too (tests often run as root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def as_a_user() -> Callable[[], None] | None:
    """`preexec_fn` for a child that must respect file permissions, as a student's would."""
    return _drop_root_powers if os.geteuid() == 0 else None


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any credential or hub variable, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CANVAS_", "GOOGLE_", "JUPYTERHUB_", "PRIVATEPULLER_"))
    }
    return {**env, **extra}


async def run(
    *args: str,
    env: dict[str, str],
    cwd: Path,
    preexec_fn: Callable[[], None] | None = None,
    inherit: bool = True,
) -> tuple[int, str]:
    """Exit code and output (stdout and stderr together) of `privatepuller ARGS`, with `env`
    added to this process's environment (`inherit`) or as its whole environment."""
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        env={**os.environ, **env} if inherit else env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=preexec_fn,
    )
    out, _ = await process.communicate()
    observe(f"the output of privatepuller {args[0]}", out)
    return process.returncode or 0, out.decode()


def canvas_env(world: CanvasWorld) -> dict[str, str]:
    return {
        "CANVAS_BASE_URL": world.canvas.base_url,
        "CANVAS_ACCESS_TOKEN": world.student.token,
        "PRIVATEPULLER_HOME": str(world.config.home),
    }


class Running:
    """A `privatepuller` process whose output is read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process, args: tuple[str, ...]) -> None:
        self.process = process
        self.args = args
        self.output = b""

    @classmethod
    async def start(cls, *args: str, env: dict[str, str], cwd: Path, **kwargs: object) -> Running:
        process = await asyncio.create_subprocess_exec(
            *CLI,
            *args,
            env={**os.environ, **env},
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            **kwargs,  # type: ignore[arg-type]
        )
        return cls(process, args)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    async def until(self, words: str, timeout: float = 30.0) -> None:
        """Read the output until it contains `words` (or fail, showing what it said)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while words not in self.text:
                chunk = await self.process.stdout.read(4096)
                assert chunk, f"{words!r} never came: {self.text}"
                self.output += chunk

    async def finish(self) -> tuple[int, str]:
        out, _ = await self.process.communicate()
        self.output += out
        observe(f"the output of privatepuller {self.args[0]}", self.output)
        return self.process.returncode or 0, self.text


class Terminal:
    """A `privatepuller` process on a pseudo-terminal (as a person runs it: the progress bar
    is drawn), in a session of its own, so that Ctrl-C can be sent to it as a terminal does:
    SIGINT to its whole process group (git included)."""

    def __init__(self, process: asyncio.subprocess.Process, master: int) -> None:
        self.process = process
        self._master = master
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    async def start(cls, *args: str, env: dict[str, str], cwd: Path) -> Terminal:
        master, slave = pty.openpty()
        try:
            process = await asyncio.create_subprocess_exec(
                *CLI,
                *args,
                env={**os.environ, **env},
                cwd=cwd,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        return cls(process, master)

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            self._chunks.append(chunk)
        os.close(self._master)

    @property
    def text(self) -> str:
        """What the terminal showed so far (its "\\r\\n" line ends as "\\n")."""
        return b"".join(self._chunks).decode(errors="replace").replace("\r\n", "\n")

    async def until(self, words: str, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while words not in self.text:
                assert self.process.returncode is None, self.text
                await asyncio.sleep(0.05)

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)

    async def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            await asyncio.to_thread(self._reader.join)
        observe("the terminal of privatepuller", self.text)
        return code, self.text
