"""Accuracy that stops once the change against float32 is settled: the rule, on real models, and in a run."""

import json

import numpy as np
import pytest

from edgebench.accuracy.evaluate import host_runner
from edgebench.agent import agent
from edgebench.core.settings import ALL_SAMPLES, BY_NAME, read_table
from edgebench.results.layout import run_folders
from tests.helpers import run_edgebench


def quiet(*_args, **_kwargs):
    return None


def test_the_change_is_paired_and_its_interval_decides_which_side_of_the_tolerance_it_is():
    labels = np.zeros(1000, dtype=int)
    same = np.zeros(1000, dtype=int)
    change = agent.settled_change(same, same, labels, 0.5)
    assert change["delta_pp"] == 0 and change["agrees"] == 1000
    assert -0.5 < change["interval_pp"][0] < 0 < change["interval_pp"][1] < 0.5 and change["settled"]
    # Twenty lost, none gained: -2 pp, and no chance that it is within 0.5 pp.
    worse = same.copy()
    worse[:20] = 1
    change = agent.settled_change(worse, same, labels, 0.5)
    assert change["delta_pp"] == -2.0 and change["interval_pp"][1] < -0.5 and change["settled"]
    # Three lost on 1000: -0.3 pp, but the interval still reaches past -0.5: not settled, evaluate more.
    change = agent.settled_change(np.r_[np.ones(3, int), np.zeros(997, int)], same, labels, 0.5)
    assert change["interval_pp"][0] < -0.5 < change["interval_pp"][1] and not change["settled"]


@pytest.fixture(scope="module")
def float32_predictions(mnist_variants, mnist):
    dataset = agent.load_npz(mnist.dataset_path)
    return dataset, agent.evaluate(host_runner(mnist_variants["float32"].path), dataset, None, quiet)["predictions"]


def test_a_faithful_variant_stops_at_the_first_look_with_the_full_sets_decision(mnist_variants, float32_predictions):
    dataset, float32 = float32_predictions
    runner = host_runner(mnist_variants["int8"].path)
    settled = agent.evaluate(runner, dataset, None, quiet, float32=float32, tolerance_pp=0.5)
    full = agent.evaluate(runner, dataset, len(float32), quiet, float32=float32, tolerance_pp=0.5)
    assert settled["total"] < 2000 and len(settled["indices"]) == settled["total"] == len(settled["predictions"])
    assert full["total"] == 10_000 and "indices" not in full
    assert settled["change"]["settled"] and settled["change"]["interval_pp"][0] > -0.5
    assert full["change"]["delta_pp"] > -0.5  # the same decision: within the tolerance
    # The samples are a fixed random draw: the same on every device and every run.
    again = agent.evaluate(runner, dataset, None, quiet, float32=float32, tolerance_pp=0.5)
    assert again["indices"] == settled["indices"] and sorted(settled["indices"]) != settled["indices"]


@pytest.mark.slow
def test_a_variant_that_loses_accuracy_is_settled_as_losing(mnist_variants, float32_predictions):
    """Against a reference that is right on every sample, int4-weights (about 0.6% wrong) loses more than
    0.2 pp: evaluation stops as soon as that is certain, and the full set says the same."""
    dataset, _ = float32_predictions
    perfect = np.asarray(dataset["y"])
    runner = host_runner(mnist_variants["int4-weights"].path)
    settled = agent.evaluate(runner, dataset, None, quiet, float32=perfect, tolerance_pp=0.2)
    assert settled["total"] < 10_000 and settled["change"]["interval_pp"][1] < -0.2
    full = agent.evaluate(runner, dataset, 10_000, quiet, float32=perfect, tolerance_pp=0.2)
    assert full["change"]["delta_pp"] < -0.2


def test_samples_all_is_a_word_on_the_command_line_and_in_a_farm_file():
    samples = BY_NAME["samples"]
    assert samples.parse_text("all") == ALL_SAMPLES and samples.parse_text("300") == 300
    assert read_table({"samples": "all"}, "run.") == {"samples": ALL_SAMPLES}
    with pytest.raises(ValueError, match=r"key 'run.samples' must be int or 'all', got 'most'"):
        read_table({"samples": "most"}, "run.")


@pytest.mark.slow
def test_a_run_evaluates_float32_on_every_sample_and_stops_the_others_once_settled(tmp_path, variant_cache):
    common = ["run", "--device", "local", "--model", "mnist", "--variants", "float32,dynamic-int8", "--rounds", "1",
              "--min-runs", "5", "--min-seconds", "0.05", "--warmup-seconds", "0",
              "--cache-dir", str(variant_cache)]  # fmt: skip
    settled = run_edgebench(*common, "--results-dir", str(tmp_path / "settled"), "--json")
    assert settled.returncode == 0, settled.stderr
    every = run_edgebench(*common, "--samples", "all", "--results-dir", str(tmp_path / "all"), "--json")
    assert every.returncode == 0, every.stderr
    shown = {v["name"]: v for v in json.loads(settled.stdout)["variants"]}
    assert shown["float32"]["evaluated"] == 10_000 and shown["dynamic-int8"]["evaluated"] < 2000
    assert shown["dynamic-int8"]["accuracy_settled"] and shown["dynamic-int8"]["top1_delta_interval"]
    assert "dynamic-int8: 3.98x smaller" in settled.stderr  # its line, as soon as it was measured
    full = {v["name"]: v for v in json.loads(every.stdout)["variants"]}
    assert full["dynamic-int8"]["evaluated"] == 10_000 and not full["dynamic-int8"]["accuracy_settled"]
    record = json.loads((run_folders(tmp_path / "all")[-1] / "run.json").read_text())
    assert record["settings"]["samples"] == 10_000  # 'all', as the data set's size: it compares with --samples 10000
