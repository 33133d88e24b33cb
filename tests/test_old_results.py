"""Results folders written before the run record had failure kinds (run.json version 1, edgebench at 504fd3e:
two `edgebench run`s and one `farm run` of mnist on this machine, in tests/data/results-v1) are still read by
history, compare, check, farm check and report, migrated in memory and left as they are on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgebench.results.layout import run_file, run_folders
from edgebench.results.store import RUN_SCHEMA_VERSION, FailureKind, load, migrate_run
from tests.helpers import run_main

OLD = Path(__file__).parent / "data" / "results-v1"


@pytest.fixture
def results(tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(OLD, copy)
    return copy


def test_the_fixture_is_version_1():
    versions = {json.loads(run_file(folder).read_text())["schema_version"] for folder in run_folders(OLD)}
    assert versions == {1} and RUN_SCHEMA_VERSION == 2


def test_an_old_run_is_migrated_in_memory_and_not_rewritten(results):
    folder = run_folders(results)[0]
    before = run_file(folder).read_bytes()
    run = load(folder)
    assert run.record["schema_version"] == 2
    assert [m.kind for m in run.measurements] == [None, None]  # both ok
    assert run.latency("int8").p50_us > 0
    assert run_file(folder).read_bytes() == before


def test_history_rebuild_and_listing_read_old_runs(results, capfd):
    rebuilt = run_main(capfd, "history", "rebuild", "--results-dir", results)
    assert rebuilt.returncode == 0 and "indexed 3 run(s)" in rebuilt.stderr, rebuilt.stderr
    listed = run_main(capfd, "history", "--results-dir", results, "--format", "json")
    assert listed.returncode == 0
    assert {row["variant"] for row in json.loads(listed.stdout)["runs"]} == {"float32", "int8"}


def test_compare_and_check_read_old_runs(results, capfd):
    first, second, _ = (folder.name for folder in run_folders(results))
    compared = run_main(capfd, "compare", first, second, "--results-dir", results, "--format", "json")
    assert compared.returncode == 0, compared.stderr
    verdicts = {v["variant"]: v["verdict"] for v in json.loads(compared.stdout)["variants"]}
    assert set(verdicts) == {"float32", "int8"} and "not comparable" not in verdicts.values()
    checked = run_main(capfd, "check", second, "--baseline", first, "--results-dir", results, "--format", "json")
    assert checked.returncode in (0, 1) and "Traceback" not in checked.stderr, checked.stderr


def test_farm_check_and_report_read_an_old_farm_run(results, capfd, tmp_path):
    checked = run_main(capfd, "farm", "check", "--results-dir", results, "--format", "json")
    assert checked.returncode in (0, 1), checked.stderr  # the two earlier runs are its baseline
    cells = [c for d in json.loads(checked.stdout)["devices"] for c in d["cells"]]
    assert {(c["variant"], c["status"]) for c in cells} == {("float32", "ok"), ("int8", "ok")}
    report = run_main(capfd, "report", "--farm-run", "--results-dir", results, "-o", tmp_path / "farm.html")
    assert report.returncode == 0, report.stderr
    assert "int8" in (tmp_path / "farm.html").read_text()


@pytest.mark.parametrize(
    ("error", "file", "kind"),
    [
        ("stalled: the device sent nothing for 45s", None, FailureKind.STALLED),
        ("not measured: connection lost", None, FailureKind.NOT_MEASURED),
        ("unsupported on this device: model-load-failed", "int4.json", FailureKind.UNSUPPORTED),
        ("agent timed out after 1800s", None, FailureKind.TIMED_OUT),
        ("agent crashed (exit code 139) without a result", None, FailureKind.CRASHED),
        ("device 'pi4' is out of disk space in /tmp: 10 bytes needed, 1 free", None, FailureKind.DISK_FULL),
        ("invoke-failed: boom", "int8.json", FailureKind.AGENT_ERROR),
        ("cannot push int8.tflite", None, FailureKind.DEVICE_ERROR),
    ],
)
def test_a_version_1_failure_gets_its_kind_from_the_old_message(error, file, kind):
    entry = {"variant": "int8", "round": 1, "status": "failed", "file": file, "error": error}
    migrated = migrate_run({"schema_version": 1, "measurements": [entry]})
    assert migrated["measurements"][0]["kind"] == kind.value
