"""Leak scan: a test fails when any credential it used can be read anywhere it left traces.

DESIGN rule 2: a token never appears "in a URL, a log line, an error message, an SSE event, a
git remote, a commit, or a file in the student's folder". This plugin (registered in
conftest.py) checks that for every test, without the test asking:

- **what is secret**: every credential a fake minted while the test ran, or minted earlier by a
  fake that was still running when the test started (module-scoped servers): Canvas access and
  refresh tokens, OAuth codes, developer-key secrets, file-store URL signatures, Google access
  tokens, the service-account private key (its PEM body lines). The fakes report them through
  `privatepuller.testing.issued`. A test can add its own with `secret(value, label)`.
- **where it looks**, at the end of the test's teardown (so servers have stopped and flushed):
  log records of every logger (the `privatepuller` logger is turned up to DEBUG, so debug lines
  count too), pytest's captured stdout/stderr/log sections, the failure report, the message and
  traceback of every exception `pytest.raises` caught and of every `PullError` created, texts
  handed to `observe` (the SSE events tests/server_helpers.py reads), and every file under the
  temporary directories created during the test (`tmp_path`, `tmp_path_factory.mktemp`) and under
  PRIVATEPULLER_HOME, git objects decompressed (loose objects with zlib, packs through
  `git cat-file --batch-all-objects --batch`). Directories made by module-scoped fixtures (a
  Jupyter server's or JupyterHub's workdir and logs) are rescanned after each later test for the
  files changed since the previous scan.
- **what a hit does**: the test's teardown fails with a message naming the secret's kind and the
  file or record, the line and column, and the text before it on that line (long token-like
  runs masked) -- never the secret.

Files that are meant to hold a credential are not findings: Google service-account key files
(what the hub admin installs) and files a test declares with `allow_file(path, reason)` (a hub's
own config with its client secret). Files over 32 MiB (synthetic datasets) are read at their
first and last 4 MiB; git objects and logs are always read whole.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import threading
import time
import traceback
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _pytest._code.code import ExceptionInfo
from _pytest.tmpdir import TempPathFactory

from privatepuller.errors import PullError
from privatepuller.testing import issued

CHUNK = 1 << 20
HUGE_FILE = 32 << 20  # larger files (not logs) are read at both ends only
HUGE_FILE_ENDS = 4 << 20
SLACK_NS = 2_000_000_000  # file timestamps come from a coarse clock: rescan a little early
LOG_NAMES = re.compile(r"(\.log|\.txt|\.json|\.out|\.err)$|log", re.IGNORECASE)
# Masked in the context shown: runs that could be (part of) a secret, i.e. long or with digits.
TOKENISH = re.compile(
    rb"[A-Za-z0-9+/=_~.%-]{24,}|(?=[A-Za-z+/=_~.%-]*[0-9])[A-Za-z0-9+/=_~.%-]{12,}"
)

__all__ = ["Finding", "Scanner", "allow_file", "observe", "scan_tree_now", "secret"]


# --- the public helpers tests call --------------------------------------------------------------


def observe(where: str, text: str | bytes) -> None:
    """Have the running test's scan read `text` (an SSE event, a subprocess's output ...)."""
    plugin = _PLUGIN
    if plugin is not None:
        plugin.observe(where, text)


def secret(value: str, label: str) -> None:
    """A credential the fakes do not know about (e.g. a hub's crypt key) is secret as well,
    for the rest of the test module."""
    plugin = _PLUGIN
    if plugin is not None:
        plugin.extra_secret(value, label)


def scan_tree_now(root: Path) -> None:
    """Scan `root` at once, for a folder that is gone by the end of the test (an unmounted
    tmpfs); what it finds fails the test like any other finding."""
    plugin = _PLUGIN
    if plugin is not None:
        plugin.scan_now(root)


def allow_file(path: Path, reason: str) -> None:
    """`path` holds a credential on purpose (`reason` says why); findings in it are ignored."""
    plugin = _PLUGIN
    if plugin is not None:
        plugin.allowed[Path(os.path.abspath(path))] = reason


# --- the scanner ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    label: str  # the kind of secret, e.g. "Canvas access token"
    where: str  # the file or record
    position: str  # "line 3, column 17" (or a byte offset)
    context: str  # text before the secret on its line, token-like runs masked

    def __str__(self) -> str:
        before = f" after {self.context!r}" if self.context else ""
        return f"{self.label} in {self.where} ({self.position}{before})"


def needles_of(value: str) -> list[bytes]:
    """The forms a secret takes in text: as is, percent-encoded (in a URL or a form), and its
    longest alphanumeric run (the random core of "1~<64 characters>", whatever encodes the "~")."""
    forms = {value, quote(value, safe=""), quote(value, safe="/")}
    core = max(re.findall(r"[A-Za-z0-9]+", value), key=len, default="")
    if len(core) >= 20:
        forms.add(core)
    return [f.encode() for f in sorted(forms)]


class Scanner:
    """Finds any of a set of secrets in bytes, text, files, folders and git object stores."""

    def __init__(self, secrets: dict[str, str]) -> None:
        # value -> label; values shorter than 12 characters would match by chance.
        self.needles: list[tuple[bytes, str]] = []
        for value, label in secrets.items():
            if len(value) >= 12:
                self.needles += [(n, label) for n in needles_of(value)]
        self.needles.sort(key=lambda item: -len(item[0]))  # whole secrets before their cores
        self.longest = max((len(n) for n, _ in self.needles), default=0)

    def __bool__(self) -> bool:
        return bool(self.needles)

    # -- bytes and text ----------------------------------------------------------------------

    def scan(self, where: str, data: bytes | str) -> list[Finding]:
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        first: dict[str, int] = {}  # label -> where its earliest form starts
        for needle, label in self.needles:
            at = data.find(needle)
            if at >= 0 and at < first.get(label, len(data)):
                first[label] = at
        return [self._finding(label, where, data, at) for label, at in first.items()]

    def scan_stream(self, where: str, chunks: Iterable[bytes], offset: int = 0) -> list[Finding]:
        """Scan a stream in chunks, overlapping them so a secret split across two is found."""
        found: dict[str, Finding] = {}
        tail = b""
        for chunk in chunks:
            window = tail + chunk
            for f in self.scan(where, window):
                found.setdefault(f.label, f)
            offset += len(window) - len(tail)
            tail = window[-(self.longest - 1) :] if self.longest > 1 else b""
        return list(found.values())

    def _finding(self, label: str, where: str, data: bytes, at: int) -> Finding:
        line_start = data.rfind(b"\n", 0, at) + 1
        line = data.count(b"\n", 0, at) + 1
        before = data[max(line_start, at - 80) : at]
        for needle, _ in self.needles:  # never print a (partial) secret
            before = before.replace(needle, b"<secret>")
        before = TOKENISH.sub(b"<...>", before)
        return Finding(
            label, where, f"line {line}, column {at - line_start + 1}", before.decode("latin-1")
        )

    # -- files and folders ----------------------------------------------------------------------

    def scan_file(self, path: Path, where: str | None = None) -> list[Finding]:
        where = where or str(path)
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                if size <= HUGE_FILE or LOG_NAMES.search(path.name):
                    return self.scan_stream(where, iter(lambda: f.read(CHUNK), b""))
                head = self.scan_stream(where, [f.read(HUGE_FILE_ENDS)])
                f.seek(size - HUGE_FILE_ENDS)
                return head + self.scan_stream(where, [f.read(HUGE_FILE_ENDS)])
        except OSError:
            return []  # gone meanwhile, or unreadable: nothing a person could read either

    def scan_tree(self, root: Path, since_ns: int = 0) -> list[Finding]:
        """Every regular file under `root` changed at or after `since_ns`; git object stores
        are read through git (their files are compressed)."""
        findings: list[Finding] = []
        for path, git_dir in _walk(root, since_ns):
            if git_dir is not None:
                findings += self.scan_git_objects(git_dir)
            else:
                findings += self.scan_file(path)
        return findings

    def scan_git_objects(self, git_dir: Path) -> list[Finding]:
        """Every object in a repository (a `.git` folder or a bare origin), decompressed."""
        objects = git_dir / "objects"
        where = f"git objects of {git_dir}"
        if any((objects / "pack").glob("*.pack")) or (objects / "info/alternates").exists():
            process = subprocess.Popen(
                ["git", "--git-dir", str(git_dir), "cat-file", "--batch-all-objects", "--batch"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull},
            )
            out = process.stdout
            assert out is not None
            with process:
                return self.scan_stream(where, iter(lambda: out.read(CHUNK), b""))
        findings: list[Finding] = []
        for fan in objects.glob("[0-9a-f][0-9a-f]"):
            for loose in fan.iterdir():
                try:
                    data = zlib.decompress(loose.read_bytes())
                except (OSError, zlib.error):
                    continue  # being written, or not an object
                findings += self.scan(f"{where} ({fan.name}{loose.name})", data)
        return findings


def _walk(root: Path, since_ns: int) -> Iterator[tuple[Path, Path | None]]:
    """(file, None) for changed regular files; (git dir, git dir) once per repository whose
    object store changed. Symlinks are not followed."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        names = {e.name for e in entries}
        if {"HEAD", "objects", "refs"} <= names and (folder / "objects").is_dir():
            if since_ns == 0 or _changed_since(folder / "objects", since_ns):
                yield folder, folder
            entries = [e for e in entries if e.name != "objects"]
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode) and max(info.st_mtime_ns, info.st_ctime_ns) >= since_ns:
                yield Path(entry.path), None


def _changed_since(folder: Path, since_ns: int) -> bool:
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if max(info.st_mtime_ns, info.st_ctime_ns) >= since_ns:
                return True
    return False


def is_service_account_key(path: Path) -> bool:
    """A Google service-account key file: where the hub admin keeps the key, on purpose."""
    try:
        if path.stat().st_size > 64 * 1024:
            return False
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("type") == "service_account"


# --- the plugin ---------------------------------------------------------------------------------


def _loggers() -> list[logging.Logger]:
    """The root logger, and those whose records do not reach it (`propagate = False`)."""
    others = logging.Logger.manager.loggerDict.values()
    alone = [g for g in others if isinstance(g, logging.Logger) and not g.propagate]
    return [logging.getLogger(), *alone]


class _RecordHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.texts: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not break the test
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + record.stack_info
        where = f"log record {record.name}:{record.levelname} ({record.pathname})"
        self.texts.append((where, text))


@dataclass
class _TestScan:
    seq: int
    owners: frozenset[int]
    started_ns: int
    handler: _RecordHandler
    loggers: list[logging.Logger]  # the handler's
    module: str
    texts: list[tuple[str, str | bytes]] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)  # made by tmp_path_factory meanwhile
    homes: set[Path] = field(default_factory=set)  # PRIVATEPULLER_HOME values seen
    failure: str | None = None  # the call phase's failure report
    reports: list[pytest.TestReport] = field(default_factory=list)  # setup's and call's
    findings: list[Finding] = field(default_factory=list)  # from `scan_tree_now`


class LeakScanPlugin:
    def __init__(self) -> None:
        self.allowed: dict[Path, str] = {}
        self.current: _TestScan | None = None
        self._lock = threading.Lock()
        # Folders of longer-lived fixtures: module name and when they were last scanned.
        self._shared: dict[Path, tuple[str, int]] = {}
        # Secrets a test module declared with `secret()`: {value: label}, for the whole module.
        self._extra: dict[str, str] = {}
        self._module = ""
        self._saved_level = logging.NOTSET
        self._undo: list[tuple[Any, str, Any]] = []
        self.scanned = 0  # tests whose traces were scanned
        self.seconds = 0.0  # spent scanning

    # -- API used by the helpers above ---------------------------------------------------------

    def observe(self, where: str, text: str | bytes) -> None:
        with self._lock:
            if self.current is not None:
                self.current.texts.append((where, text))

    def scan_now(self, root: Path) -> None:
        scan = self.current
        if scan is not None:
            scan.findings += Scanner(self.secrets_of(scan)).scan_tree(root)

    def extra_secret(self, value: str, label: str) -> None:
        with self._lock:
            self._extra[value] = label

    # -- wrapping pytest and privatepuller ---------------------------------------------------------

    def install(self) -> None:
        plugin = self
        original_mktemp = TempPathFactory.mktemp
        original_fill = ExceptionInfo.fill_unfilled
        original_init = PullError.__init__

        def mktemp(factory: TempPathFactory, basename: str, numbered: bool = True) -> Path:
            path = original_mktemp(factory, basename, numbered)
            with plugin._lock:
                if plugin.current is not None:
                    plugin.current.roots.append(path)
            return path

        def fill_unfilled(info: ExceptionInfo[Any], exc_info: Any) -> None:
            original_fill(info, exc_info)
            error = exc_info[1]
            plugin.observe(
                f"exception caught by pytest.raises ({type(error).__name__})",
                "".join(traceback.format_exception(error)) + repr(getattr(error, "__dict__", "")),
            )

        def pull_error_init(error: PullError, message: str) -> None:
            original_init(error, message)
            plugin.observe(f"{type(error).__name__} message", message)

        for owner, name, replacement in (
            (TempPathFactory, "mktemp", mktemp),
            (ExceptionInfo, "fill_unfilled", fill_unfilled),
            (PullError, "__init__", pull_error_init),
        ):
            self._undo.append((owner, name, owner.__dict__[name]))
            setattr(owner, name, replacement)

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()

    # -- the test protocol ----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        seq, owners = issued.snapshot()
        handler = _RecordHandler()
        loggers = _loggers()
        for logger in loggers:
            logger.addHandler(handler)
        ours = logging.getLogger("privatepuller")
        self._saved_level = ours.level
        ours.setLevel(logging.DEBUG)
        module = item.nodeid.split("::", 1)[0]
        with self._lock:
            self._shared = {p: v for p, v in self._shared.items() if v[0] == module}
            if module != self._module:
                self._module, self._extra = module, {}
            self.current = _TestScan(seq, owners, time.time_ns(), handler, loggers, module)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            self._remember_home()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        scan = self.current
        if scan is None:
            return report
        if call.when == "setup":
            self._remember_home()
        if call.when == "call" and report.failed:
            scan.failure = report.longreprtext
        if call.when != "teardown":
            scan.reports.append(report)
            return report
        started = time.perf_counter()
        try:
            findings = self.finish(item, report)
        finally:
            self.seconds += time.perf_counter() - started
            with self._lock:
                self.current = None
            for logger in scan.loggers:
                logger.removeHandler(scan.handler)
            logging.getLogger("privatepuller").setLevel(self._saved_level)
        if findings:
            # pytest prints the captured sections of a failed test: not with the secrets in them.
            secrets = self.secrets_of(scan)
            for shown_later in [*scan.reports, report]:
                shown_later.sections = [(t, _redact(c, secrets)) for t, c in shown_later.sections]
                if shown_later.failed and shown_later.longrepr is not None:
                    shown_later.longrepr = _redact(str(shown_later.longrepr), secrets)
            shown = "\n  ".join(str(f) for f in findings[:20])
            more = f"\n  ... and {len(findings) - 20} more" if len(findings) > 20 else ""
            report.outcome = "failed"
            report.longrepr = (
                f"leak scan: a credential this test used can be read where it must not be "
                f"(DESIGN rule 2):\n  {shown}{more}"
            )
        return report

    def _remember_home(self) -> None:
        home = os.environ.get("PRIVATEPULLER_HOME")
        if home and self.current is not None:
            self.current.homes.add(Path(os.path.abspath(home)))

    def finish(self, item: pytest.Item, report: pytest.TestReport) -> list[Finding]:
        scan = self.current
        assert scan is not None
        scanner = Scanner(self.secrets_of(scan))
        now = time.time_ns()
        if not scanner:
            self._share(scan, now)
            return []
        self.scanned += 1
        findings = list(scan.findings)
        for where, text in [*scan.handler.texts, *scan.texts]:
            findings += scanner.scan(where, text)
        for title, content in report.sections:
            findings += scanner.scan(f"pytest's “{title}”", content)
        if scan.failure:
            findings += scanner.scan("the test's failure report", scan.failure)

        tmp_path = item.funcargs.get("tmp_path") if hasattr(item, "funcargs") else None
        full = {Path(p) for p in scan.roots}
        if isinstance(tmp_path, Path):
            full.add(tmp_path)
        incremental = {p: since - SLACK_NS for p, (_, since) in self._shared.items()}
        for home in scan.homes:
            if not any(home.is_relative_to(r) for r in full):
                incremental.setdefault(home, scan.started_ns - SLACK_NS)
        for root in sorted(full):
            findings += scanner.scan_tree(root)
        for root, since in sorted(incremental.items()):
            if root not in full and root.exists():
                findings += scanner.scan_tree(root, since)
        self._share(scan, now, exclude=tmp_path)
        return [f for f in findings if not self._allowed(f)]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_line(
            f"leak scan: traces of {self.scanned} tests that used credentials scanned "
            f"in {self.seconds:.1f} s"
        )

    def secrets_of(self, scan: _TestScan) -> dict[str, str]:
        secrets = {i.value: i.kind for i in issued.since(scan.seq, scan.owners)}
        with self._lock:
            secrets.update(self._extra)
        return secrets

    def _share(self, scan: _TestScan, now: int, exclude: object = None) -> None:
        """Folders made during this test by longer-lived fixtures stay under watch."""
        for path in list(self._shared):
            self._shared[path] = (scan.module, now)
        for root in scan.roots:
            if root != exclude:
                self._shared[Path(root)] = (scan.module, now)

    def _allowed(self, finding: Finding) -> bool:
        path = Path(finding.where)
        if not path.is_absolute():
            return False
        return path in self.allowed or is_service_account_key(path)


def _redact(text: str, secrets: dict[str, str]) -> str:
    for value, label in secrets.items():
        if len(value) >= 12:
            for form in sorted(needles_of(value), key=len, reverse=True):  # the whole first
                text = text.replace(form.decode(), f"<{label}>")
    return text


_PLUGIN: LeakScanPlugin | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _PLUGIN
    _PLUGIN = LeakScanPlugin()
    _PLUGIN.install()
    config.pluginmanager.register(_PLUGIN, "privatepuller-leak-scan")


def pytest_unconfigure(config: pytest.Config) -> None:
    global _PLUGIN
    if _PLUGIN is not None:
        _PLUGIN.uninstall()
        _PLUGIN = None
