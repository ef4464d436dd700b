"""The local bare git origin that snapshots of one source are committed to.

Snapshots are built with git plumbing in a temporary index: unchanged files reuse their
blobs, downloaded files are hashed into the object store, and `refs/heads/main` moves only
after the whole tree exists. An interrupted sync therefore leaves the origin at its old commit
(loose unreferenced objects at worst, which git gc removes); the temporary files and git lock
files a killed sync leaves are removed by the next one (`ensure`, under the origin's lock).
A write that fails on a full disk raises `DiskFull`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiskFull
from .manifest import Manifest
from .space import STORE_FAILED, looks_full, store_failed

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


# Commands that only read: their failures say nothing about the disk.
READING = frozenset({"rev-parse", "ls-tree", "cat-file", "diff-tree", "log", "show"})


class GitError(Exception):
    pass


@dataclass(frozen=True)
class LocalOrigin:
    path: Path  # .../<source-hash>.git

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()

    @property
    def manifest_path(self) -> Path:
        return self.path / "privatepuller-manifest.json"

    @property
    def staging_dir(self) -> Path:
        return self.path / "privatepuller-staging"

    def git(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
        env = {**os.environ, **GIT_ENV, "HOME": str(self.path), **(env or {})}
        result = subprocess.run(
            ["git", "--git-dir", str(self.path), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
        )
        if result.returncode != 0:
            if args[0] not in READING and looks_full(self.path, result.stderr):
                raise DiskFull(STORE_FAILED)
            raise GitError(f"git {args[0]} failed: {result.stderr.strip()[:500]}")
        return result.stdout

    def ensure(self) -> None:
        """Create the origin if needed, and clear what an interrupted sync left in it.

        Call with the origin's lock held: every write to an origin happens under it, so a
        staging file or a git lock file found now belongs to a sync that was killed.
        """
        try:
            self._create()
        except (OSError, subprocess.CalledProcessError) as error:
            full = store_failed(self.path.parent, error)
            if full is None:
                raise
            raise full from error
        for lock in [*self.path.glob("*.lock"), *(self.path / "refs").rglob("*.lock")]:
            lock.unlink(missing_ok=True)
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

    def _blob_sizes(self, commit: str) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for entry in self.git("ls-tree", "-r", "-l", "-z", commit).split("\0"):
            fields = entry.split("\t", 1)[0].split()
            if len(fields) == 4 and fields[1] == "blob":
                sizes[fields[2]] = int(fields[3])
        return sizes

    def hash_files(self, files: Sequence[Path]) -> list[str]:
        """Write files into the object store (streamed by git), returning their blob ids."""
        if not files:
            return []
        out = self.git("hash-object", "-w", "--stdin-paths", input="".join(f"{p}\n" for p in files))
        blobs = out.split()
        if len(blobs) != len(files):
            raise GitError("git hash-object returned the wrong number of ids")
        return blobs

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
