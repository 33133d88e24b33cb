"""The nightly question on the local device, for real: a run while CPU hogs share the agent's core
is judged slower than a quiet run, and two quiet runs are judged the same."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from edgebench.compare.verdicts import compare_runs
from edgebench.history.lookup import load
from tests.helpers import run_edgebench

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")

# Quiet runs on this shared VM drift 9-17% apart in noisy spells, steady as each one is
# inside: between-run variation the samples of one run cannot show. The default 5% is for
# pinned, quiet farm boards; here the bar is 20%, which CPU hogs clear many times over.
THRESHOLD = 0.20


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory, variant_cache, mnist_variants):
    """quiet, hogged, quiet: the same settings each time, the agent pinned to one CPU."""
    results = tmp_path_factory.mktemp("nightly")
    cpu = min(os.sched_getaffinity(0))
    command = [
        "run", "--device", "local", "--model", "mnist", "--variants", "int8", "--samples", "0",
        "--cpus", str(cpu), "--min-runs", "500", "--min-seconds", "2",
        "--results-dir", str(results), "--cache-dir", str(variant_cache),
    ]  # fmt: skip

    def one_run():
        before = set((results / "local").glob("*")) if (results / "local").exists() else set()
        completed = run_edgebench(*command)
        assert completed.returncode == 0, completed.stderr
        (folder,) = set((results / "local").glob("*")) - before
        return folder

    def quiet_run():
        """A run with no hog of ours. A run the agent flags as high-variance (robust spread of the
        samples around their median) is re-measured, as a farm would, at most twice; the third is
        kept whatever it says: the test must hold on a shared, busy machine, not wait for a quiet one."""
        for _ in range(2):
            folder = one_run()
            warnings = json.loads((folder / "int8.json").read_text())["warnings"]
            if not any(w["code"] == "high-variance" for w in warnings):
                return folder
            shutil.rmtree(folder)
        return one_run()

    quiet = quiet_run()
    hog = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(2)]
    try:
        hogged = one_run()
    finally:
        for process in hogs:
            process.kill()
            process.wait()
    # quiet_run comes along for a re-measured pair, in the same results folder.
    return results, (quiet, hogged, quiet_run()), quiet_run


def test_a_run_sharing_its_core_with_cpu_hogs_is_slower(three_runs):
    _, (quiet, hogged, _), _ = three_runs
    (verdict,) = compare_runs(load(quiet), load(hogged), THRESHOLD).variants
    assert verdict.verdict == "slower", verdict.reason


def test_two_quiet_runs_of_the_same_setup_are_the_same(three_runs):
    """No false alarm between two runs of the same setup under the same conditions.

    On a shared machine the conditions are not ours: other jobs come and go between two runs
    (seen in CI: median +11%, mean +37% between two hog-free runs while a training job used
    both cores). A pair judged different is therefore measured again back to back, so both
    runs share whatever load there is, at most three pairs; a verdict machinery that cries
    wolf fails all three, and every verdict is reported."""
    _, (quiet, _, quiet_again), quiet_run = three_runs
    pair, reasons = (quiet, quiet_again), []
    for _ in range(3):
        (verdict,) = compare_runs(load(pair[0]), load(pair[1]), THRESHOLD).variants
        if verdict.verdict == "same":
            return
        reasons.append(f"{verdict.verdict}: {verdict.reason}")
        pair = (quiet_run(), quiet_run())
    pytest.fail("three pairs of quiet runs were judged different: " + " | ".join(reasons))


def test_check_against_the_last_run_and_the_index(three_runs):
    results, (quiet, hogged, quiet_again), _ = three_runs
    threshold = f"{THRESHOLD:.0%}"
    regression = run_edgebench("check", "--results-dir", str(results), "--baseline", quiet.name, str(hogged),
                               "--threshold", threshold)  # fmt: skip
    assert regression.returncode == 1, regression.stdout
    assert "REGRESSION int8" in regression.stdout
    # The newest run against the one before it (the hogged one): not a regression.
    recovered = run_edgebench("check", "--results-dir", str(results), "--baseline", "last", "--threshold", threshold)
    assert recovered.returncode == 0, recovered.stdout
    assert "no regression" in recovered.stdout
    # Every run was indexed as it finished.
    listing = run_edgebench("history", "--results-dir", str(results), "--variant", "int8", "--format", "json")
    indexed = [row["run_id"] for row in json.loads(listing.stdout)["runs"]]
    kept = [name for name in indexed if name in (quiet.name, hogged.name, quiet_again.name)]
    assert kept == [quiet.name, hogged.name, quiet_again.name]  # re-measured quiet runs may sit between
