"""The benchmark command runs end to end on tiny sizes, so it cannot rot.

Benchmarks are not tests: nothing here checks a time. It checks that `python -m benchmarks
--quick` prints a row for every workload and provider, and that the invariants that do not
depend on the machine hold (a re-sync of an unchanged folder downloads nothing; five changed
files mean exactly five downloads; every student's pull succeeds; memory was measured).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--latency", "5", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout, json.loads(out.read_text())


def providers(results: dict) -> set[str]:
    return {row["provider"] for row in results["rows"]}


def rows(results: dict, key: str) -> list[dict]:
    return [row for row in results["rows"] if row["key"] == key]


def test_the_table_has_every_workload(quick_run: tuple[str, dict]) -> None:
    stdout, results = quick_run
    assert "canvas" in providers(results)
    table = [line for line in stdout.splitlines() if line.startswith("| ")]
    assert table[0].split("|")[1].strip() == "workload"
    for provider in providers(results):
        for label in (
            "cold pull,",
            "cold pull lower bound",
            "re-sync, nothing changed",
            "re-sync, 5 files changed",
            "file: peak RSS",
            "students in",
        ):
            assert any(label in line and f"({provider}" in line for line in table), label
    students = [r for r in results["rows"] if r["key"] == "students"]
    # Canvas: documented defaults and the tighter bucket; Drive: the one shared quota.
    assert len(students) == 2 + ("drive" in providers(results))
    assert "machine:" in stdout and "baselines: canvasapi" in stdout


def test_a_cold_pull_downloads_everything_and_fails_no_request(
    quick_run: tuple[str, dict],
) -> None:
    _, results = quick_run
    for row in rows(results, "cold"):
        ours, baseline = row["data"]["ours"], row["data"]["baseline"]
        assert ours["downloads"] == baseline["downloads"] == results["sizes"]["cold_files"]
        assert ours["failed"] == 0
    for row in rows(results, "cold-bound"):
        assert row["data"]["bound_s"] > 0


def test_a_resync_of_an_unchanged_folder_downloads_nothing(
    quick_run: tuple[str, dict],
) -> None:
    _, results = quick_run
    for row in rows(results, "resync"):
        data = row["data"]
        assert data["ours_downloaded_files"] == 0 and data["ours"]["downloads"] == 0
        assert data["ours"]["bytes"] == 0
        assert data["ours"]["requests"] <= data["ours"]["listing_pages"] + 2
        assert data["baseline"]["downloads"] == results["sizes"]["cold_files"]
        assert row["met"] is True


def test_five_changed_files_are_exactly_five_downloads(quick_run: tuple[str, dict]) -> None:
    _, results = quick_run
    for row in rows(results, "changed"):
        data = row["data"]
        assert data["ours_downloaded_files"] == 5 and data["ours"]["downloads"] == 5
        assert len(data["ours_updated"]) == 5
        assert row["met"] is True


def test_peak_memory_is_measured_for_both(quick_run: tuple[str, dict]) -> None:
    _, results = quick_run
    for row in rows(results, "large"):
        ours, baseline = row["data"]["ours"], row["data"]["baseline"]
        assert ours["bytes"] == baseline["bytes"] == results["sizes"]["large"]
        assert ours["vmhwm_kb"] > 0 and baseline["vmhwm_kb"] > 0
        assert ours["samples"] > 0


def test_every_student_succeeds(quick_run: tuple[str, dict]) -> None:
    _, results = quick_run
    for row in rows(results, "students"):
        ours = row["data"]["ours"]
        assert all(ours["ok"]), ours["errors"]
        assert len(ours["ok"]) == results["sizes"]["students"]
