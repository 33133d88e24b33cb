"""The nightly question on the local device, for real: a run while CPU hogs share the agent's core
is judged slower than a quiet run, and two quiet runs are judged the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgebench.compare import compare_runs
from edgebench.run_lookup import load
from tests.test_quantize_command import run_edgebench

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")


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
        completed = run_edgebench(*command)
        assert completed.returncode == 0, completed.stderr

    one_run()
    hog = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(2)]
    try:
        one_run()
    finally:
        for process in hogs:
            process.kill()
            process.wait()
    one_run()
    return results, sorted(p for p in (results / "local").iterdir() if p.is_dir())


def test_a_run_sharing_its_core_with_cpu_hogs_is_slower(three_runs):
    _, (quiet, hogged, _) = three_runs
    (verdict,) = compare_runs(load(quiet), load(hogged)).variants
    assert verdict.verdict == "slower", verdict.reason


def test_two_quiet_runs_of_the_same_setup_are_the_same(three_runs):
    _, (quiet, _, quiet_again) = three_runs
    (verdict,) = compare_runs(load(quiet), load(quiet_again)).variants
    assert verdict.verdict == "same", verdict.reason


def test_check_against_the_last_run_and_the_index(three_runs):
    results, (_, hogged, quiet_again) = three_runs
    # The hogged run is the last one before the final quiet run: the final run is faster, not a regression.
    completed = run_edgebench("check", "--results-dir", str(results), "--baseline", "last")
    assert completed.returncode == 0, completed.stdout
    assert "faster" in completed.stdout
    # Every run was indexed as it finished.
    listing = run_edgebench("history", "--results-dir", str(results), "--variant", "int8", "--format", "json")
    indexed = [row["run_id"] for row in json.loads(listing.stdout)["runs"]]
    assert indexed[-2:] == [hogged.name, quiet_again.name] and len(indexed) == 3
