"""privatepuller pull | demo | link | resolve"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from .console import BarProgress, summary
from .credentials.hub import default_credential_source
from .demo import run_demo
from .errors import PullError, UnsupportedURL
from .link import make_link, urlpath_warning
from .pull import NOT_OURS, default_target_name, parse_link, pull, resolve_link
from .sizes import MiB
from .sync.config import SyncConfig


def megabytes(text: str) -> float:
    """An argparse type: a size in MB, more than 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"“{text}” is not a size: give a number of MB greater than 0, e.g. 100 or 0.5"
        )
    return value


def seconds(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"“{text}” is not a time: give a number of seconds, 0 or more, e.g. 30"
        )
    return value


URL_HELP = (
    "a Canvas files URL (https://canvas.example.edu/courses/123/files/folder/Week%%201) or a "
    "Google Drive folder or file URL"
)


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
    return replace(config, **overrides)


async def _pull(args: argparse.Namespace, progress: BarProgress) -> int:
    target = Path(args.target) if args.target else None
    report = await pull(
        args.url,
        target,
        credentials=default_credential_source(),
        config=_config(args),
        progress=progress,
    )
    print(summary(report))
    return 0


async def _resolve(args: argparse.Namespace) -> int:
    """What the link names, checked with the credentials `pull` would use; nothing is
    downloaded."""
    link = parse_link(args.url)
    if link is None:
        raise UnsupportedURL(NOT_OURS)
    resolved = await resolve_link(link, default_credential_source())
    provider = resolved.provider
    facts = {
        "provider": provider.name,
        "kind": "file" if provider.is_file(resolved.repo) else "folder",
        "name": resolved.name,
        "folder": default_target_name(resolved),
    }
    if args.json:
        print(json.dumps(facts, ensure_ascii=False, indent=2))
        return 0
    print(f"{provider.title} {facts['kind']} “{facts['name']}”")
    inside = f", with the file “{facts['name']}” in it" if facts["kind"] == "file" else ""
    print(f"  privatepuller pull makes the folder “{facts['folder']}”{inside}")
    return 0


def _link(args: argparse.Namespace) -> int:
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

    pull = commands.add_parser(
        "pull",
        help="pull a Canvas or Drive folder into TARGET_DIR",
        description="Pull a Canvas or Google Drive folder (or file) into TARGET_DIR; run it "
        "again later to get the changes, merged like nbgitpuller does: your own edits win.",
    )
    pull.add_argument("url", metavar="URL", help=URL_HELP)
    pull.add_argument(
        "target",
        metavar="TARGET_DIR",
        nargs="?",
        help="the folder to create, or to update when an earlier pull of URL made it "
        "(default: the Canvas or Drive folder's own name, in the current folder)",
    )
    pull.add_argument(
        "--max-file-size",
        type=megabytes,
        metavar="MB",
        help="size in MB (1 MB = 1024 × 1024 bytes); larger files are left out and listed "
        "(default: 100)",
    )
    pull.add_argument(
        "--max-total-size",
        type=megabytes,
        metavar="MB",
        help="size in MB; files past this total (in path order) are left out and listed "
        "(default: 1024)",
    )
    pull.add_argument(
        "--home",
        metavar="DIR",
        help="where privatepuller keeps its copy of each folder it pulls, and its locks "
        "(default: $PRIVATEPULLER_HOME, else ~/.privatepuller)",
    )
    pull.add_argument(
        "--wait",
        type=seconds,
        metavar="SECONDS",
        help="how long to wait when another pull into TARGET_DIR is running (default: 0, "
        "give up at once)",
    )
    pull.add_argument(
        "--deadline",
        type=seconds,
        metavar="SECONDS",
        help="how long listing and downloading may take; 0 for no limit (default: 3600)",
    )

    demo = commands.add_parser(
        "demo",
        help="pull a sample course from a bundled fake Canvas",
        description="Pull a sample course from a bundled fake Canvas (or Drive), change it "
        "as an instructor would and pull again: no credentials needed. Runs any number of "
        "times.",
    )
    demo.add_argument("--drive", action="store_true", help="use the bundled fake Google Drive")
    demo.add_argument(
        "target",
        metavar="DIR",
        nargs="?",
        help="the folder to put the course's folder in; an earlier demo's copy there is "
        "replaced (default: a new temporary folder, named at the end)",
    )

    link = commands.add_parser(
        "link",
        help="print the nbgitpuller link for a Canvas/Drive URL",
        description="Print the nbgitpuller link to put in Canvas. The link builder page on "
        "the hub (https://hub.example.edu/hub/user-redirect/privatepuller/link) makes the same "
        "link and also shows what students will get.",
    )
    link.add_argument(
        "url",
        metavar="URL",
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

    resolve = commands.add_parser(
        "resolve",
        help="show what a URL names (checked with your credentials, nothing downloaded)",
        description="Show what a Canvas or Drive URL names: which service, a folder or a file, "
        "its name, and the folder `privatepuller pull URL` would make for it.",
    )
    resolve.add_argument("url", metavar="URL", help=URL_HELP)
    resolve.add_argument(
        "--json",
        action="store_true",
        help='print JSON for programs: {"provider", "kind", "name", "folder"}',
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    progress = BarProgress()
    try:
        if args.command == "pull":
            return asyncio.run(_pull(args, progress))
        if args.command == "resolve":
            return asyncio.run(_resolve(args))
        if args.command == "link":
            return _link(args)
        if args.command == "demo":
            return asyncio.run(
                run_demo(
                    Path(args.target) if args.target else None,
                    drive=args.drive,
                    progress=progress,
                )
            )
    except PullError as error:
        progress.end_line()
        print(f"privatepuller: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C: what was stored so far is kept (the next run does not download it again),
        # and a merge that was cut short is undone by the next run.
        progress.end_line()
        print(
            "privatepuller: interrupted. Nothing is lost: run the same command again to "
            "finish; what was downloaded so far is kept.",
            file=sys.stderr,
        )
        return 130
    except Exception as error:
        # A bug of ours, not something the person did: one line, details with --verbose.
        progress.end_line()
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
