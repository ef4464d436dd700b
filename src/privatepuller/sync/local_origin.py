"""The local bare git origin that snapshots of one source are committed to.

Snapshots are built with git plumbing in a temporary index: unchanged files reuse their
blobs, downloaded files are hashed into the object store, and `refs/heads/main` moves only
after the whole tree exists. An interrupted sync therefore leaves the origin at its old commit
(loose unreferenced objects at worst, which git gc removes); the temporary files and git lock
files a killed sync leaves are removed by the next one (`ensure`, under the origin's lock).
A write that fails on a full disk raises `DiskFull`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiskFull
from .journal import Journal
from .manifest import Manifest, ManifestEntry
from .space import STORE_FAILED, home_unusable, looks_full, store_failed

BRANCH = "main"
# Fixed identity and no user config: commits must not depend on (or leak) the student's setup.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "privatepuller",
    "GIT_AUTHOR_EMAIL": "privatepuller@localhost",
    "GIT_COMMITTER_NAME": "privatepuller",
    "GIT_COMMITTER_EMAIL": "privatepuller@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}
# Set in every origin. nbgitpuller's `git fetch` packs the new blobs of a snapshot: unrelated
# files (often incompressible) whose delta search costs more time than it saves bytes locally.
ORIGIN_CONFIG = {"pack.window": "0"}


# Commands that only read: their failures say nothing about the disk.
READING = frozenset({"rev-parse", "ls-tree", "cat-file", "diff-tree", "log", "show"})


class GitError(Exception):
    pass


@dataclass(frozen=True)
class LocalOrigin:
    path: Path  # .../<source-hash>.git

    @property
    def location(self) -> str:
        """What nbgitpuller clones from: a plain path, not a file:// URL, so that a first clone
        hard-links the origin's objects (never rewritten) instead of packing them anew."""
        return str(self.path.resolve())

    @property
    def manifest_path(self) -> Path:
        return self.path / "privatepuller-manifest.json"

    @property
    def journal_path(self) -> Path:
        return self.path / "privatepuller-journal.jsonl"

    @property
    def staging_dir(self) -> Path:
        return self.path / "privatepuller-staging"

    def git(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["git", "--git-dir", str(self.path), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self._env(env),
        )
        if result.returncode != 0:
            raise self._failed(args[0], result.stderr)
        return result.stdout

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, **GIT_ENV, "HOME": str(self.path), **(extra or {})}

    def _failed(self, command: str, stderr: str) -> Exception:
        if command not in READING and looks_full(self.path, stderr):
            return DiskFull(STORE_FAILED)
        return GitError(f"git {command} failed: {stderr.strip()[:500]}")

    def ensure(self) -> None:
        """Create the origin if needed, and clear what an interrupted sync left in it.

        Call with the origin's lock held: every write to an origin happens under it, so a
        staging file or a git lock file found now belongs to a sync that was killed.
        """
        try:
            self._create()
        except OSError as error:
            raise home_unusable(self.path.parent, error) from error
        except subprocess.CalledProcessError as error:
            full = store_failed(self.path.parent, error)
            if full is None:
                raise
            raise full from error
        for lock in [*self.path.glob("*.lock"), *(self.path / "refs").rglob("*.lock")]:
            lock.unlink(missing_ok=True)
        for name, value in ORIGIN_CONFIG.items():  # origins made by older versions too
            if self.git("config", "--default", "", "--get", name).strip() != value:
                self.git("config", name, value)
        for leftover in self.staging_dir.iterdir():
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

    def _create(self) -> None:
        if not (self.path / "HEAD").exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=".init-"))
            subprocess.run(
                ["git", "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(tmp)],
                check=True,
                capture_output=True,
                env={**os.environ, **GIT_ENV},
            )
            try:
                os.rename(tmp, self.path)
            except OSError:  # another process created it first
                subprocess.run(["rm", "-rf", str(tmp)], check=False)
        self.staging_dir.mkdir(exist_ok=True)

    def head(self) -> str | None:
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{BRANCH}").strip()
        except GitError:
            return None

    def manifest(self) -> Manifest:
        """The manifest of the current commit; a stale one (crash after commit) is ignored."""
        manifest = Manifest.load(self.manifest_path)
        head = self.head()
        if head is None or manifest.commit != head:
            return Manifest.empty()
        return manifest

    def stored_earlier(self, manifest: Manifest) -> dict[str, ManifestEntry]:
        """Files an interrupted store put into git that `manifest` does not have, by change
        key (`sync/journal.py`): only those whose blob git has, with the size recorded."""
        known = manifest.by_change_key()
        journaled = {
            key: entry for key, entry in Journal.read(self.journal_path).items() if key not in known
        }
        if not journaled:
            return {}
        blobs = sorted({entry.blob for entry in journaled.values()})
        answer = self.git("cat-file", "--batch-check", input="".join(f"{b}\n" for b in blobs))
        present: dict[str, int] = {}
        for line in answer.splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[1] == "blob":
                present[fields[0]] = int(fields[2])
        return {
            key: entry for key, entry in journaled.items() if present.get(entry.blob) == entry.size
        }

    def bytes_new_since(self, commit: str | None) -> int:
        """Bytes of the branch's files whose content `commit` lacks (all of them without a
        `commit`): about what fetching and checking out the branch over `commit` writes."""
        head = self.head()
        if head is None or head == commit:
            return 0
        before: dict[str, int] = {}
        if commit is not None:
            with contextlib.suppress(GitError):  # not a commit of this origin (made anew)
                before = self._blob_sizes(commit)
        return sum(size for blob, size in self._blob_sizes(head).items() if blob not in before)

    def export(self, commit: str, folder: Path) -> None:
        """Write the files of `commit` into `folder` (no git there)."""
        folder.mkdir(parents=True, exist_ok=True)
        with subprocess.Popen(
            ["git", "--git-dir", str(self.path), "archive", "--format=tar", commit],
            stdout=subprocess.PIPE,
            env=self._env(),
        ) as archive:
            assert archive.stdout is not None
            with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:  # streamed
                tar.extractall(folder, filter="data")
        if archive.returncode != 0:
            raise GitError(f"git archive {commit} failed")

    def files(self, commit: str) -> dict[str, tuple[str, int]]:
        """Every file of `commit`: {path: (blob id, size)}."""
        return files_of(self.path, commit)

    def _blob_sizes(self, commit: str) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for entry in self.git("ls-tree", "-r", "-l", "-z", commit).split("\0"):
            fields = entry.split("\t", 1)[0].split()
            if len(fields) == 4 and fields[1] == "blob":
                sizes[fields[2]] = int(fields[3])
        return sizes

    @contextlib.asynccontextmanager
    async def blob_writer(
        self, on_stored: Callable[[str, str], None] | None = None
    ) -> AsyncIterator[BlobWriter]:
        """A `BlobWriter` for this origin; its git process is stopped on the way out."""
        try:
            process = await asyncio.create_subprocess_exec(
                *("git", "--git-dir", str(self.path), "hash-object", "-w", "--stdin-paths"),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env(),
            )
        except OSError as error:
            raise store_failed(self.path, error) or error from None
        writer = BlobWriter(self, process, on_stored)
        try:
            yield writer
        finally:
            await writer.stop()

    def commit_tree(self, blobs: dict[str, str], message: str) -> str | None:
        """Commit a snapshot {path: blob}; None when it equals the current commit's tree."""
        fd, index = tempfile.mkstemp(dir=self.staging_dir, prefix="index-")
        os.close(fd)
        os.unlink(index)  # git wants to create the index itself
        env_index = {"GIT_INDEX_FILE": index}
        try:
            lines = "".join(f"100644 blob {blob}\t{path}\n" for path, blob in sorted(blobs.items()))
            self.git("update-index", "--add", "--index-info", input=lines, env=env_index)
            tree = self.git("write-tree", env=env_index).strip()
        finally:
            Path(index).unlink(missing_ok=True)
        head = self.head()
        if head is not None and self.git("rev-parse", f"{head}^{{tree}}").strip() == tree:
            return None
        parents = ["-p", head] if head else []
        commit = self.git("commit-tree", tree, *parents, "-m", message).strip()
        # Compare-and-swap: never overwrite a commit another process made meanwhile.
        self.git("update-ref", f"refs/heads/{BRANCH}", commit, head or "0" * 40)
        return commit


def files_of(git_dir: Path, commit: str) -> dict[str, tuple[str, int]]:
    """Every file of `commit` in the repository `git_dir` (an origin, or a folder's `.git`):
    {path: (blob id, size)}. Only reads objects: no hook, filter or worktree is involved."""
    result = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-l", "-z", commit],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    )
    if result.returncode != 0:
        raise GitError(f"git ls-tree failed: {result.stderr.strip()[:500]}")
    files: dict[str, tuple[str, int]] = {}
    for entry in result.stdout.split("\0"):
        meta, _, path = entry.partition("\t")
        fields = meta.split()
        if len(fields) == 4 and fields[1] == "blob":
            files[path] = (fields[2], int(fields[3]))
    return files


class BlobWriter:
    """Files handed to one `git hash-object -w --stdin-paths` as they land, so that git
    compresses and stores each file while the others are still downloading. git answers each
    file's id as soon as it has stored it: `on_stored(change_key, blob)` is called then."""

    def __init__(
        self,
        origin: LocalOrigin,
        process: asyncio.subprocess.Process,
        on_stored: Callable[[str, str], None] | None = None,
    ) -> None:
        assert process.stdin and process.stdout and process.stderr
        self._origin = origin
        self._process = process
        self._stdin = process.stdin
        self._on_stored = on_stored
        # Change keys in the order handed to git, which answers in that order.
        self._change_keys: list[str] = []
        self._blobs: dict[str, str] = {}
        # Read as git writes, so that neither of its output pipes can fill up and stall it.
        self._out = asyncio.ensure_future(self._read_ids(process.stdout))
        self._err = asyncio.ensure_future(process.stderr.read())

    async def _read_ids(self, stdout: asyncio.StreamReader) -> None:
        while line := await stdout.readline():
            if len(self._blobs) >= len(self._change_keys):
                raise GitError("git hash-object returned more ids than files")
            change_key, blob = self._change_keys[len(self._blobs)], line.decode().strip()
            self._blobs[change_key] = blob
            if self._on_stored is not None:
                self._on_stored(change_key, blob)

    async def add(self, change_key: str, path: Path) -> None:
        """Store the file at `path` as `change_key`'s (one not added before); `finish` gives
        its blob id."""
        self._change_keys.append(change_key)
        if self._stdin.is_closing():
            return  # git has stopped; `finish` says why
        self._stdin.write(f"{path}\n".encode())
        with contextlib.suppress(ConnectionError):
            await self._stdin.drain()

    async def finish(self) -> dict[str, str]:
        """Blob ids by change key, in the order added, once git has stored every file."""
        self._stdin.close()
        with contextlib.suppress(ConnectionError):
            await self._stdin.wait_closed()
        await self._out
        err = await self._err
        if await self._process.wait() != 0:
            raise self._origin._failed("hash-object", err.decode(errors="replace"))
        if len(self._blobs) != len(self._change_keys):
            raise GitError("git hash-object returned the wrong number of ids")
        return dict(self._blobs)

    async def stop(self) -> None:
        if self._process.returncode is None:
            self._process.kill()
        await self._process.wait()
        for reader in (self._out, self._err):
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, GitError):
                await reader
