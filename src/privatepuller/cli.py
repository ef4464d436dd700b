"""privatepuller pull | demo | link | resolve"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .errors import PullError
from .sync.engine import MiB, SyncConfig, SyncReport

log = logging.getLogger("privatepuller")


class BarProgress:
    """A one-line progress bar (files and bytes) on a terminal; plain lines otherwise."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.files_total = self.files_done = 0
        self.bytes_total = self.bytes_done = 0
        self._last_draw = 0.0

    def listed(self, files: int, total_bytes: int) -> None:
        self.files_total, self.bytes_total = files, total_bytes
        if files:
            self._line(f"Downloading {files} file(s), {_mb(total_bytes)}")
        else:
            self._line("Everything is up to date; nothing to download")

    def advanced(self, nbytes: int) -> None:
        self.bytes_done += nbytes
        self._draw()

    def file_done(self, path: str, size: int) -> None:
        self.files_done += 1
        if not self.tty:
            self._line(f"  {path} ({_mb(size)})")
        self._draw(force=self.files_done == self.files_total)

    def waiting(self, seconds: float, provider: str) -> None:
        self._line(f"  {provider} asks us to slow down; retrying in {seconds:.0f} s")

    def git_output(self, line: str) -> None:
        log.debug("git: %s", line)

    def _draw(self, force: bool = False) -> None:
        if not self.tty or (not force and time.monotonic() - self._last_draw < 0.1):
            return
        self._last_draw = time.monotonic()
        fraction = self.bytes_done / self.bytes_total if self.bytes_total else 1.0
        bar = "#" * int(30 * fraction)
        self.stream.write(
            f"\r[{bar:<30}] {self.files_done}/{self.files_total} files, "
            f"{_mb(self.bytes_done)} of {_mb(self.bytes_total)}"
        )
        if force:
            self.stream.write("\n")
        self.stream.flush()

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def _mb(size: int) -> str:
    if size < MiB:
        return f"{size / 1024:.1f} KB"
    return f"{size / MiB:.1f} MB"


# The command line's own words for its limits (the options that set them).
CLI_REASONS = {
    "too_large": "larger than the limit for one file (--max-file-size)",
    "total_cap": "past the limit for the whole folder (--max-total-size)",
}


def summary(report: SyncReport) -> str:
    from .server.events import KEPT, SKIP_REASONS, kept_copy

    kept = set(report.kept)
    lines = [
        f"Synced “{report.name}” into {report.target}",
        f"  added {len(report.added)}, updated {len(report.updated)}, "
        f"removed {len(report.removed)}, unchanged {report.unchanged}"
        + (f", kept {len(kept)}" if kept else "")
        + f"; downloaded {report.downloaded_files} file(s), {_mb(report.downloaded_bytes)}",
    ]
    for title, files in (("excluded", report.excluded), ("skipped", report.skipped)):
        if files:
            lines.append(f"  {title} ({len(files)}):")
        for s in files:
            why = CLI_REASONS.get(s.reason) or SKIP_REASONS.get(s.reason, s.reason)
            detail = f" ({s.detail})" if s.detail else ""
            if s.reason in CLI_REASONS:
                line = f"    {s.path}{detail}: {why}"
            else:
                line = f"    {s.path}: {why}{detail}"
            lines.append(line + (f"; {KEPT}" if kept_copy(kept, s.path) else ""))
    return "\n".join(lines)


def _config(args: argparse.Namespace) -> SyncConfig:
    config = SyncConfig()
    overrides: dict[str, Any] = {}
    if args.home:
        overrides["home"] = Path(args.home)
    if args.max_file_size is not None:
        overrides["max_file_size"] = int(args.max_file_size * MiB)
    if args.max_total_size is not None:
        overrides["max_total_size"] = int(args.max_total_size * MiB)
    if args.wait is not None:
        overrides["lock_wait"] = args.wait
    if args.deadline is not None:
        overrides["deadline"] = args.deadline
    from dataclasses import replace

    return replace(config, **overrides)


async def _pull(args: argparse.Namespace) -> int:
    from .auth.hub import default_credential_source
    from .pull import pull

    target = Path(args.target) if args.target else None
    report = await pull(
        args.url,
        target,
        credentials=default_credential_source(),
        config=_config(args),
        progress=BarProgress(),
    )
    print(summary(report))
    return 0


async def _resolve(args: argparse.Namespace) -> int:
    from .auth.hub import default_credential_source
    from .pull import parse_link, resolve_link

    link = parse_link(args.url)
    if link is None:
        print("Not a Canvas or Google Drive link that privatepuller pulls.")
        return 1
    print(link)
    print(await resolve_link(link, default_credential_source()))
    return 0


def _link(args: argparse.Namespace) -> int:
    from .link import make_link, urlpath_warning

    # make_link refuses a targetpath the server would refuse (PullError: one line, exit 1).
    link = make_link(args.url, hub=args.hub, urlpath=args.urlpath, targetpath=args.targetpath)
    if warning := urlpath_warning(args.urlpath, args.targetpath):
        print(f"privatepuller: warning: {warning}", file=sys.stderr)
    print(link)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privatepuller",
        description="Pull private Canvas files and Google Drive folders, merged like nbgitpuller.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log git and HTTP details")
    commands = parser.add_subparsers(dest="command", required=True)

    pull = commands.add_parser("pull", help="pull a Canvas or Drive folder into TARGET_DIR")
    pull.add_argument("url", help="a Canvas files URL or a Google Drive folder URL")
    pull.add_argument("target", nargs="?", help="folder to create or update (default: its name)")
    pull.add_argument("--max-file-size", type=float, help="MB; larger files are excluded")
    pull.add_argument("--max-total-size", type=float, help="MB; files past this are excluded")
    pull.add_argument("--home", help="where local origins live (default ~/.privatepuller)")
    pull.add_argument("--wait", type=float, help="seconds to wait for another sync of TARGET")
    pull.add_argument(
        "--deadline", type=float, help="seconds listing and downloading may take (default 3600)"
    )

    demo = commands.add_parser("demo", help="pull a sample course from a bundled fake Canvas")
    demo.add_argument("--drive", action="store_true", help="use the bundled fake Google Drive")
    demo.add_argument("target", nargs="?", default="privatepuller-demo", help="parent folder")

    link = commands.add_parser(
        "link",
        help="print the nbgitpuller link for a Canvas/Drive URL",
        description="Print the nbgitpuller link to put in Canvas. The link builder page on "
        "the hub (https://hub.example.edu/hub/user-redirect/privatepuller/link) makes the same "
        "link and also shows what students will get.",
    )
    link.add_argument(
        "url",
        help="a Canvas files URL (…/courses/123/files/folder/Week%%201) or a Google Drive "
        "folder or file URL shared with the hub's service account",
    )
    link.add_argument(
        "--hub",
        required=True,
        help="the hub's address that students use, e.g. https://hub.example.edu",
    )
    link.add_argument(
        "--urlpath",
        help="where students land after the sync, relative to their server, e.g. "
        "'lab/tree/Week 1/intro.ipynb' (default: the folder); give --targetpath too",
    )
    link.add_argument(
        "--targetpath",
        help="the folder name in each student's home, e.g. 'Week 1' (default: the Canvas or "
        "Drive folder's own name); a visible folder: no '..', no name starting with '.'",
    )

    resolve = commands.add_parser("resolve", help="show what a URL resolves to")
    resolve.add_argument("url")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "pull":
            return asyncio.run(_pull(args))
        if args.command == "resolve":
            return asyncio.run(_resolve(args))
        if args.command == "link":
            return _link(args)
        if args.command == "demo":
            from .demo import run_demo

            return asyncio.run(run_demo(Path(args.target), drive=args.drive))
    except PullError as error:
        print(f"privatepuller: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("privatepuller: interrupted; your folder was not changed.", file=sys.stderr)
        return 130
    except Exception as error:
        # A bug of ours, not something the person did: one line, details with --verbose.
        if args.verbose:
            raise
        print(
            f"privatepuller: unexpected error ({type(error).__name__}); nothing was lost. "
            "Run again with --verbose and report the output.",
            file=sys.stderr,
        )
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
