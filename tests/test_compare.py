"""Cross-run verdicts on recorded result documents whose differences are known by construction."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3

import numpy as np
import pytest
from filelock import FileLock

from edgebench.compare.noise import noise_floor
from edgebench.compare.verdicts import accuracy_verdict, compare_runs, parse_threshold, stalls
from edgebench.history import index as history
from edgebench.history.lookup import load, resolve_baseline
from edgebench.results.latency import early_stopping, latency
from edgebench.results.store import Measurement, ResultsError, RunStore
from tests.helpers import BASE_US, agent_document, assert_one_line_error, latency_samples, run_edgebench, run_main


def record_run(
    results, run_id, documents, *, device="pi4", threads=1, delegate="xnnpack", sha="a" * 64, model_sha="m" * 64,
    dataset_sha="d" * 64, settings=None,
):  # fmt: skip
    summary = {
        "device": {"name": device, "emulated": False},
        "model": {"name": "mnist", "sha256": model_sha},
        "dataset": {"sha256": dataset_sha, "samples": 10_000},
        "settings": {"threads": threads, "delegate": delegate, "cpus": [], **(settings or {})},
        "rounds": 1,
        "variants": [{"name": name, "bytes": 3_309_008, "sha256": sha} for name in documents],
    }
    store = RunStore.create(results, device, run_id, summary)
    for name, document in documents.items():
        store.add(Measurement(name, 1, "ok", document))
    store.finish("ok")
    return store.folder


def verdict(results, a_documents, b_documents, threshold=0.05, **b_options):
    a = load(record_run(results, "20260101T000000Z-mnist-aaaa", a_documents))
    b = load(record_run(results, "20260102T000000Z-mnist-bbbb", b_documents, **b_options))
    return compare_runs(a, b, threshold)


def test_pure_noise_between_two_runs_of_the_same_setup_is_same(tmp_path):
    result = verdict(
        tmp_path, {"int8": agent_document(latency_samples(1))}, {"int8": agent_document(latency_samples(2))}
    )
    (v,) = result.variants
    assert v.verdict == "same" and not result.regressions


def test_a_10_percent_slowdown_is_slower(tmp_path):
    result = verdict(
        tmp_path, {"int8": agent_document(latency_samples(1))}, {"int8": agent_document(latency_samples(2, scale=1.10))}
    )
    (v,) = result.variants
    assert v.verdict == "slower" and v.ratio == pytest.approx(1.10, abs=0.01) and v.p_value < 1e-10
    assert result.regressions == [v]


def test_a_10_percent_speedup_is_faster_and_no_regression(tmp_path):
    result = verdict(
        tmp_path, {"int8": agent_document(latency_samples(1))}, {"int8": agent_document(latency_samples(2, scale=0.90))}
    )
    assert result.variants[0].verdict == "faster" and not result.regressions


def test_a_3_percent_change_is_same_under_the_default_threshold(tmp_path):
    result = verdict(
        tmp_path, {"int8": agent_document(latency_samples(1))}, {"int8": agent_document(latency_samples(2, scale=1.03))}
    )
    (v,) = result.variants
    assert v.p_value < 0.01, "the shift is real..."
    assert v.verdict == "same", "...but smaller than the 5% that counts"
    assert "within the 5% threshold" in v.reason
    assert v.mean_ratio == pytest.approx(1.03, abs=0.01)


def test_a_3_percent_change_is_slower_with_a_2_percent_threshold(tmp_path):
    a, b = agent_document(latency_samples(1)), agent_document(latency_samples(2, scale=1.03))
    result = verdict(tmp_path, {"int8": a}, {"int8": b}, threshold=0.02)
    assert result.variants[0].verdict == "slower"


def test_a_1_percent_shift_on_a_million_samples_is_not_slower(tmp_path):
    a = agent_document(latency_samples(1, count=1_000_000))
    b = agent_document(latency_samples(2, count=1_000_000, scale=1.01))
    (v,) = verdict(tmp_path, {"int8": a}, {"int8": b}).variants
    assert v.p_value < 1e-12 and v.verdict == "same"


def test_stalls_that_leave_the_median_alone_are_slower(tmp_path):
    """One inference in eight waits 8 ms for the CPU, as with busy processes on the agent's core."""
    quiet = latency_samples(1)
    stalled = [s + 8000.0 if i % 8 == 0 else s for i, s in enumerate(latency_samples(2))]
    (v,) = verdict(tmp_path, {"int8": agent_document(quiet)}, {"int8": agent_document(stalled)}).variants
    assert v.ratio < 1.05 < v.mean_ratio and v.verdict == "slower"


def stalled(seed):
    return [s + 8000.0 if i % 8 == 0 else s for i, s in enumerate(latency_samples(seed))]


def test_stalls_in_one_process_of_three_are_a_busy_spell_not_a_slower_board(tmp_path):
    """Another job took the core during one of tonight's three processes: its samples stall, the other two
    are as quiet as last night's; the processes' means do not move beyond their spread, so: same."""
    a = record_documents(
        tmp_path, "20260101T000000Z-mnist-0001", [agent_document(latency_samples(s)) for s in (1, 2, 3)]
    )
    spell = [agent_document(stalled(4)), agent_document(latency_samples(5)), agent_document(latency_samples(6))]
    (v,) = compare_runs(a, record_documents(tmp_path, "20260102T000000Z-mnist-0002", spell)).variants
    assert v.verdict == "same", v.reason
    assert stalls([*latency_samples(1), *latency_samples(2)], [*stalled(4), *latency_samples(5)]).flagged, (
        "pooled, the samples show stalls: judged per process, they are one process's"
    )
    every = [agent_document(stalled(s)) for s in (7, 8, 9)]  # stalls in every process: the board is slower
    (v,) = compare_runs(a, record_documents(tmp_path, "20260103T000000Z-mnist-0003", every)).variants
    assert v.verdict == "slower" and ": stalls, " in v.reason and v.statistic == "mean"


def test_a_few_outliers_are_not_a_regression(tmp_path):
    """The old criterion's false alarm: a quiet run with 15 of 5,000 inferences 50x slow (mean +15%)."""
    quiet = latency_samples(1, count=5000)
    outliers = [s * 50 if i % 333 == 0 else s for i, s in enumerate(latency_samples(2, count=5000))]
    (v,) = verdict(tmp_path, {"int8": agent_document(quiet)}, {"int8": agent_document(outliers)}).variants
    assert v.mean_ratio > 1.10 and v.verdict == "same", v.reason


def record_documents(results, run_id, documents, rounds=None):
    summary = {
        "device": {"name": "pi4", "emulated": False}, "model": {"name": "mnist", "sha256": "m" * 64},
        "settings": {"threads": 1, "delegate": "xnnpack", "cpus": []}, "rounds": rounds or len(documents),
        "variants": [{"name": "int8", "bytes": 3_309_008, "sha256": "a" * 64}],
    }  # fmt: skip
    store = RunStore.create(results, "pi4", run_id, summary)
    for number, document in enumerate(documents, 1):
        store.add(Measurement("int8", number, "ok", document))
    store.finish("ok")
    return load(store.folder)


def record_rounds(results, run_id, scales, rounds=None):
    documents = [agent_document(latency_samples(hash((run_id, n)) % 999, scale=s)) for n, s in enumerate(scales, 1)]
    return record_documents(results, run_id, documents, rounds)


def test_rounds_that_overlap_are_drift_not_a_regression(tmp_path):
    """Round medians 1.00, 1.12, 1.02 against 1.10, 1.18, 1.15: the median moved 10%, but the processes
    of each run spread as far, so the shift is within the runs' own drift: the unit of evidence is a
    process, and millions of samples inside each one do not make the shift significant."""
    a = record_rounds(tmp_path, "20260101T000000Z-mnist-0001", [1.00, 1.12, 1.02])
    b = record_rounds(tmp_path, "20260102T000000Z-mnist-0002", [1.10, 1.18, 1.15])
    (v,) = compare_runs(a, b).variants
    assert v.ratio > 1.05 and v.verdict == "same" and "not significant (3 vs 3 processes" in v.reason
    assert (v.processes_a, v.processes_b) == (3, 3) and v.p_value > 0.01


def test_rounds_that_all_moved_are_a_regression(tmp_path):
    a = record_rounds(tmp_path, "20260101T000000Z-mnist-0001", [1.00, 1.02, 0.99])
    b = record_rounds(tmp_path, "20260102T000000Z-mnist-0002", [1.10, 1.12, 1.09])
    (v,) = compare_runs(a, b).variants
    assert v.verdict == "slower" and "3 vs 3 processes" in v.reason and v.p_value < 0.01


def test_one_candidate_process_is_judged_against_the_spread_of_a_baselines_processes(tmp_path):
    """'last:5' merges five nights into one baseline of five processes: a one-round candidate is one more
    process, and the baseline's own spread (here about 5%) says whether +10% is beyond it."""
    a = record_rounds(tmp_path, "20260101T000000Z-mnist-0001", [1.00, 1.06, 0.97, 1.04, 0.95], rounds=1)  # merged
    within = record_rounds(tmp_path, "20260102T000000Z-mnist-0002", [1.08])
    beyond = record_rounds(tmp_path, "20260103T000000Z-mnist-0003", [1.30])
    (v,) = compare_runs(a, within).variants
    assert v.verdict == "same" and "5 vs 1 processes" in v.reason
    (v,) = compare_runs(a, beyond).variants
    assert v.verdict == "slower" and "5 vs 1 processes" in v.reason


def test_a_large_change_on_few_samples_is_not_yet_evidence(tmp_path):
    a = agent_document(latency_samples(1, count=5))
    b = agent_document(latency_samples(2, count=5, scale=1.06))
    (v,) = verdict(tmp_path, {"int8": a}, {"int8": b}).variants
    assert v.verdict == "same" and "not significant" in v.reason


def test_an_accuracy_drop_of_2_points_on_10000_samples_is_flagged(tmp_path):
    samples = latency_samples(1)
    (v,) = verdict(
        tmp_path, {"int8": agent_document(samples)}, {"int8": agent_document(samples, correct=9700)}
    ).variants
    assert v.accuracy == "worse" and v.regression


def test_an_accuracy_drop_of_a_tenth_of_a_point_is_not(tmp_path):
    samples = latency_samples(1)
    (v,) = verdict(
        tmp_path, {"int8": agent_document(samples)}, {"int8": agent_document(samples, correct=9890)}
    ).variants
    assert v.accuracy == "same" and not v.regression


def test_accuracy_is_judged_on_the_counts_with_newcombes_interval(tmp_path):
    # A 0.4-point drop on 10,000 samples near 99%: the two Wilson intervals still overlap (the old rule said
    # "same"), but the interval of the difference excludes 0.
    samples = latency_samples(1)
    (v,) = verdict(
        tmp_path, {"int8": agent_document(samples)}, {"int8": agent_document(samples, correct=9860)}
    ).variants
    assert v.accuracy == "worse" and v.regression
    difference, low, high = v.accuracy_delta_pp
    assert difference == pytest.approx(-0.4) and low < difference < high < 0


def test_newcombes_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80 = 0.2000, method 10: 0.0524 to 0.3339
    verdict_, (difference, low, high) = accuracy_verdict((48, 80), (56, 70))
    assert verdict_ == "better"
    assert (difference, low, high) == pytest.approx((20.0, 5.24, 33.39), abs=0.005)


def test_more_peak_memory_is_flagged(tmp_path):
    samples = latency_samples(1)
    a, b = agent_document(samples), agent_document(samples, peak=80_000_000)
    (v,) = verdict(tmp_path, {"int8": a}, {"int8": b}).variants
    assert v.memory == "more" and v.memory_delta_bytes == 10_000_000 and v.regression


def test_memory_is_judged_on_the_models_figure_not_the_harnesss(tmp_path):
    # Another evaluation set and 600k latency samples moved the process's peak by 7.7 MB; the model's own
    # memory (above the baseline, before the timed runs) did not move: no memory regression.
    samples = latency_samples(1)
    a, b = agent_document(samples), agent_document(samples, peak=77_700_000)
    for document in (a, b):
        document["memory"]["model_delta"] = 14_000_000
    (v,) = verdict(tmp_path, {"int8": a}, {"int8": b}).variants
    assert v.memory == "same" and v.memory_delta_bytes == 0 and not v.regression
    b["memory"]["model_delta"] = 19_000_000  # the model itself needs 5 MB more
    (v,) = verdict(tmp_path / "again", {"int8": a}, {"int8": b}).variants
    assert v.memory == "more" and v.memory_delta_bytes == 5_000_000 and v.regression


def test_memory_rests_on_processes_so_one_allocation_under_load_is_no_regression():
    from edgebench.compare.verdicts import memory_verdict

    # A micro model's three processes a night on a busy machine (model figure, bytes): two of tonight's made a
    # 1.4 MB allocation the others did not. It was called "memory more" (exit 1) on the larger of each side.
    before, tonight = [7_221_248, 7_249_920, 7_208_960], [8_630_272, 8_613_888, 7_098_368]
    assert memory_verdict(before, tonight, 0.05) == ("same", 1_392_640)
    grown = [figure + 5_000_000 for figure in before]  # the model itself needs 5 MB more: every process moves
    assert memory_verdict(before, grown, 0.05) == ("more", 5_000_000)
    assert memory_verdict(grown, before, 0.05) == ("less", -5_000_000)
    # Another night of the same file on that machine: every process 1.4 MB up. Below the 2 MiB floor.
    assert memory_verdict(before, [8_568_832, 8_556_544, 8_470_528], 0.05)[0] == "same"
    grown_once = [figure + 3_000_000 for figure in tonight]
    assert memory_verdict(before[:1], grown_once[:1], 0.05)[0] == "more"  # one process a side: nothing to weigh


def test_a_changed_variant_file_is_compared_and_named_as_the_suspect(tmp_path):
    """A new quantizer made another int8 file: a slower verdict is worth knowing (exit 1, not 2), and its
    cause is the file until an A/B confirmation says otherwise."""
    same = verdict(
        tmp_path, {"int8": agent_document(latency_samples(1))}, {"int8": agent_document(latency_samples(2))},
        sha="b" * 64,
    ).variants[0]  # fmt: skip
    assert same.size == "changed" and same.verdict == "same" and same.cause is None
    (v,) = verdict(
        tmp_path / "slower", {"int8": agent_document(latency_samples(1))},
        {"int8": agent_document(latency_samples(2, scale=1.2))}, sha="b" * 64,
    ).variants  # fmt: skip
    assert v.size == "changed" and v.verdict == "slower" and v.regression
    assert v.cause == "the int8 file changed (sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb)"


def test_runs_of_another_model_file_are_not_comparable(tmp_path):
    samples = latency_samples(1)
    result = verdict(tmp_path, {"int8": agent_document(samples)}, {"int8": agent_document(samples)}, model_sha="n" * 64)
    assert not result.comparable
    assert result.not_comparable == ("different model files: mnist sha256 mmmmmmmmmmmm vs nnnnnnnnnnnn",)


def test_a_changed_data_set_is_not_an_accuracy_regression(tmp_path):
    a, b = agent_document(latency_samples(1)), agent_document(latency_samples(2), correct=9700)
    (v,) = verdict(tmp_path, {"int8": a}, {"int8": b}, dataset_sha="e" * 64).variants
    assert v.accuracy == "not comparable" and "accuracy not comparable: different data sets" in v.reason
    assert not v.regression


@pytest.mark.parametrize(
    ("b_options", "b_runtime", "reason"),
    [
        ({"threads": 4}, ("tflite_runtime", "2.14.0"), "different threads: 1 vs 4"),
        ({"delegate": "none"}, ("tflite_runtime", "2.14.0"), "different delegate: xnnpack vs none"),
        ({}, ("ai_edge_litert", "2.3.0"), "different runtimes: tflite_runtime 2.14.0 vs ai_edge_litert 2.3.0"),
        ({"device": "pi5"}, ("tflite_runtime", "2.14.0"), "different devices: pi4 vs pi5"),
    ],
)
def test_different_settings_are_not_comparable(tmp_path, b_options, b_runtime, reason):
    samples = latency_samples(1)
    result = verdict(
        tmp_path, {"int8": agent_document(samples)}, {"int8": agent_document(samples, runtime=b_runtime)}, **b_options
    )
    assert not result.comparable and reason in result.not_comparable and result.variants == ()


@pytest.mark.parametrize(("text", "value"), [("5%", 0.05), ("0.05", 0.05), ("12.5%", 0.125), ("0.9", 0.9)])
def test_thresholds_parse(text, value):
    assert parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["1", "5", "90"])
def test_a_bare_threshold_of_one_or_more_is_refused_not_guessed(text):
    with pytest.raises(ValueError, match=f"write {text}% for a percentage, or a fraction below 1"):
        parse_threshold(text)


def test_bad_threshold():
    with pytest.raises(ValueError, match="percentage"):
        parse_threshold("fast")


class TestCheckCommand:
    """`edgebench check`: the same judgement as an exit code, with markdown for CI summaries."""

    @pytest.fixture
    def farm(self, tmp_path):
        results = tmp_path / "results"
        record_run(results, "20260101T000000Z-mnist-0001", {"int8": agent_document(latency_samples(1, scale=0.95))})
        record_run(results, "20260102T000000Z-mnist-0002", {"int8": agent_document(latency_samples(2))})
        return results

    def check(self, results, *args):
        return run_edgebench("check", "--results-dir", str(results), *args)

    def test_no_regression_exits_0(self, farm):
        record_run(farm, "20260103T000000Z-mnist-0003", {"int8": agent_document(latency_samples(3))})
        completed = self.check(farm, "--baseline", "last")
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert "no regression" in completed.stdout

    def test_a_confirmation_that_cannot_run_is_one_line_and_exit_2(self, farm, tmp_path):
        """The run's device (pi4) has no device file here, and its files are in no cache: nothing re-measured."""
        record_run(farm, "20260103T000000Z-mnist-0003", {"int8": agent_document(latency_samples(3, scale=1.2))})
        completed = self.check(farm, "--baseline", "last", "--confirm", "--devices-dir", str(tmp_path / "none"),
                               "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
        assert_one_line_error(completed, "pi4")

    def test_a_regression_exits_1_with_markdown(self, farm):
        record_run(farm, "20260103T000000Z-mnist-0003", {"int8": agent_document(latency_samples(3, scale=1.2))})
        completed = self.check(farm, "--baseline", "last", "--format", "markdown")
        assert completed.returncode == 1
        assert "| int8 |" in completed.stdout and "SLOWER" in completed.stdout
        assert "REGRESSION int8" in completed.stdout

    def test_not_comparable_exits_2(self, farm):
        record_run(farm, "20260103T000000Z-mnist-0003", {"int8": agent_document(latency_samples(3))}, threads=4)
        completed = self.check(farm, "--baseline", "last")
        assert_one_line_error(completed, "passed over run 20260102T000000Z-mnist-0002 (different threads: 1 vs 4)")
        completed = self.check(farm, "--baseline", "20260102T000000Z-mnist-0002")  # asked for by name: compared
        assert completed.returncode == 2
        assert "not comparable: different threads: 1 vs 4" in " ".join(completed.stdout.split())

    def test_a_first_night_after_manual_runs_of_other_settings_has_no_baseline(self, farm):
        """Manual runs with other stopping rules are no baseline for a farm's first night: exit 2 and why, never
        a regression (the night is 20% slower than them, which other settings can explain)."""
        slower = agent_document(latency_samples(3, scale=1.2))
        record_run(farm, "20260103T000000Z-mnist-0003", {"int8": slower}, settings={"min_runs": 64, "samples": None})
        completed = self.check(farm, "--baseline", "last")
        assert_one_line_error(completed, "no earlier run of mnist on pi4 is comparable with run 20260103T000000Z-mn")
        assert "passed over run 20260102T000000Z-mnist-0002 (different minimum runs: default vs 64)" in completed.stderr

    def test_newer_runs_passed_over_are_named_under_the_comparison(self, farm):
        record_run(farm, "20260103T000000Z-mnist-0003", {"int8": agent_document(latency_samples(3))}, threads=4)
        record_run(farm, "20260104T000000Z-mnist-0004", {"float32": agent_document(latency_samples(5))})
        record_run(farm, "20260105T000000Z-mnist-0005", {"int8": agent_document(latency_samples(4))})
        completed = self.check(farm, "--baseline", "last")
        assert completed.returncode == 0, completed.stdout + completed.stderr
        said = " ".join(completed.stdout.split())
        assert "baseline 20260102T000000Z-mnist-0002 → candidate 20260105T000000Z-mnist-0005" in said
        assert "passed over as baseline: run 20260104T000000Z-mnist-0004 (did not measure int8)" in said
        assert "passed over as baseline: run 20260103T000000Z-mnist-0003 (different threads: 4 vs 1)" in said

    def test_no_baseline_exits_2_with_one_line(self, tmp_path):
        results = tmp_path / "results"
        record_run(results, "20260101T000000Z-mnist-0001", {"int8": agent_document(latency_samples(1))})
        completed = self.check(results, "--baseline", "last")
        assert completed.returncode == 2 and completed.stderr.startswith("edgebench: error: no earlier run")

    def test_last_skips_a_run_that_lacks_the_variant(self, farm):
        record_run(farm, "20260103T000000Z-mnist-0003", {"float32": agent_document(latency_samples(5))})
        candidate = load(record_run(farm, "20260104T000000Z-mnist-0004", {"int8": agent_document(latency_samples(3))}))
        assert resolve_baseline("last", candidate, farm).name == "20260102T000000Z-mnist-0002"

    def test_a_damaged_run_is_named_by_compare_and_skipped_by_check(self, farm):
        """A missing and a half-written variant JSON: one line and exit 2 where the run is asked for by
        name; 'last' skips it instead of crashing every later night."""
        missing = record_run(farm, "20260103T000000Z-mnist-0003", {"int8": agent_document(latency_samples(3))})
        (missing / "int8.json").unlink()
        half = record_run(farm, "20260104T000000Z-mnist-0004", {"int8": agent_document(latency_samples(4))})
        (half / "int8.json").write_text((half / "int8.json").read_text()[:500])
        record_run(farm, "20260105T000000Z-mnist-0005", {"int8": agent_document(latency_samples(5))})
        for folder, what in ((missing, "is missing"), (half, "is damaged")):
            completed = run_edgebench(
                "compare", "--results-dir", str(farm), str(folder.parent / "20260102T000000Z-mnist-0002"), str(folder)
            )
            assert completed.returncode == 2 and "Traceback" not in completed.stderr
            assert completed.stderr.count("\n") == 1 and f"{folder / 'int8.json'} {what}" in completed.stderr
        completed = self.check(farm, "--baseline", "last", "--format", "json")
        assert completed.returncode == 0, completed.stderr
        assert json.loads(completed.stdout)["baseline"] == "20260102T000000Z-mnist-0002"

    def test_last_n_judges_against_the_spread_of_several_nights(self, farm):
        """Nights at 0.95, 1.00, 0.97, 1.03: tonight at 1.02 sits inside their spread (same, where
        'last' alone would compare with 1.03 or 0.97 only); tonight at 1.20 is beyond all of them."""
        record_run(farm, "20260103T000000Z-mnist-0003", {"int8": agent_document(latency_samples(3, scale=0.97))})
        record_run(farm, "20260104T000000Z-mnist-0004", {"int8": agent_document(latency_samples(4, scale=1.03))})
        record_run(farm, "20260105T000000Z-mnist-0005", {"int8": agent_document(latency_samples(5, scale=1.02))})
        quiet = self.check(farm, "--baseline", "last:4", "--format", "json")
        assert quiet.returncode == 0, quiet.stdout + quiet.stderr
        document = json.loads(quiet.stdout)
        assert document["baseline"] == "20260101T000000Z-mnist-0001..20260104T000000Z-mnist-0004 (4 runs)"
        record_run(farm, "20260106T000000Z-mnist-0006", {"int8": agent_document(latency_samples(6, scale=1.20))})
        slow = self.check(farm, "--baseline", "last:4", "--format", "json")
        assert slow.returncode == 1 and "4 vs 1 processes" in json.loads(slow.stdout)["variants"][0]["reason"]
        too_many = self.check(farm, "--baseline", "last:9")
        assert too_many.returncode == 2 and "only 5 earlier comparable run(s)" in too_many.stderr

    def test_best_picks_the_fastest_earlier_run(self, farm):
        candidate = load(record_run(farm, "20260103T000000Z-mnist-0003", {"int8": agent_document(latency_samples(3))}))
        assert resolve_baseline("best", candidate, farm).name == "20260101T000000Z-mnist-0001"
        assert resolve_baseline("last", candidate, farm).name == "20260102T000000Z-mnist-0002"

    def test_compare_by_run_ids_as_json(self, farm):
        completed = run_edgebench(
            "compare", "--results-dir", str(farm), "20260101T000000Z-mnist-0001", "20260102T000000Z-mnist-0002",
            "--format", "json",
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        document = json.loads(completed.stdout)
        assert document["variants"][0]["verdict"] == "slower"  # 0.95 -> 1.00 is +5.3%
        assert document["regression"] is True


class TestHistory:
    def test_rebuild_and_query(self, tmp_path):
        results = tmp_path / "results"
        for day, scale in ((1, 1.0), (2, 1.0), (3, 1.2)):
            record_run(
                results,
                f"2026010{day}T000000Z-mnist-000{day}",
                {"int8": agent_document(latency_samples(day, scale=scale))},
            )
        completed = run_edgebench("history", "rebuild", "--results-dir", str(results))
        assert completed.returncode == 0 and "indexed 3 run(s)" in completed.stderr
        listing = run_edgebench("history", "--results-dir", str(results), "--device", "pi4", "--variant", "int8")
        lines = [line for line in listing.stdout.splitlines() if "mnist-000" in line]
        assert len(lines) == 3
        assert "▲ slower" in lines[2] and "=" in lines[1]
        last = run_edgebench("history", "--results-dir", str(results), "--last", "1", "--format", "json")
        assert [r["run_id"] for r in json.loads(last.stdout)["runs"]] == ["20260103T000000Z-mnist-0003"]

    def test_an_index_of_an_unknown_version_says_what_to_do(self, tmp_path):
        path = tmp_path / "history.sqlite"
        with history.connect(path) as connection:
            connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        with pytest.raises(history.HistoryError, match="history rebuild"):
            history.query(path)

    @pytest.mark.parametrize("damage", ["corrupt", "truncated", "foreign", "newer"])
    def test_rebuild_repairs_an_index_in_any_state(self, tmp_path, damage):
        """The error message sends users to 'history rebuild': it must work whatever the file holds."""
        results = tmp_path / "results"
        record_run(results, "20260101T000000Z-mnist-0001", {"int8": agent_document(latency_samples(1))})
        path = results / "history.sqlite"
        assert run_edgebench("history", "rebuild", "--results-dir", str(results)).returncode == 0
        if damage == "corrupt":
            path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)
        elif damage == "truncated":
            path.write_bytes(path.read_bytes()[:3000])
        elif damage == "foreign":
            path.unlink()
            other = sqlite3.connect(path)
            other.execute("CREATE TABLE photos (id INTEGER, caption TEXT)")
            other.commit()
            other.close()
        else:
            with history.connect(path) as connection:
                connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        broken = run_edgebench("history", "--results-dir", str(results))
        assert broken.returncode == 2 and "history rebuild" in broken.stderr and "Traceback" not in broken.stderr
        repaired = run_edgebench("history", "rebuild", "--results-dir", str(results))
        assert repaired.returncode == 0, repaired.stderr
        assert f"{path} was moved aside to {path}.broken-" in repaired.stderr and "indexed 1 run(s)" in repaired.stderr
        moved = [p for p in results.glob("history.sqlite.broken-*") if not p.name.endswith(("-wal", "-shm"))]
        assert len(moved) == 1  # its WAL and shared-memory files went with it
        listing = run_edgebench("history", "--results-dir", str(results), "--format", "json")
        assert [r["run_id"] for r in json.loads(listing.stdout)["runs"]] == ["20260101T000000Z-mnist-0001"]

    def test_an_index_whose_setup_stays_locked_says_so_in_one_line(self, tmp_path, monkeypatch):
        path = tmp_path / "history.sqlite"
        monkeypatch.setattr(history, "BUSY_TIMEOUT_MS", 300)
        held_by_another = FileLock(f"{path}.lock")
        locked = pytest.raises(history.HistoryError, match="stayed locked by another edgebench")
        with held_by_another, locked, history.connect(path):  # a writer's set-up (a query reads without any lock)
            pass
        with history.connect(path) as connection:  # usable once the other edgebench lets go
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    def test_concurrent_writers_do_not_corrupt_it(self, tmp_path):
        results = tmp_path / "results"
        folders = [
            record_run(
                results, f"20260101T0000{i:02d}Z-mnist-{i:04d}", {"int8": agent_document(latency_samples(i, 200))}
            )
            for i in range(40)
        ]
        path = tmp_path / "history.sqlite"
        with multiprocessing.get_context("spawn").Pool(4) as pool:
            pool.starmap(history.index_run, [(path, folder) for folder in folders])
        connection = sqlite3.connect(path)
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone() == (40,)
        assert connection.execute("SELECT COUNT(*) FROM variants").fetchone() == (40,)
        connection.close()


def test_one_latency_figure_in_the_table_the_index_and_compare(tmp_path):
    """Three rounds whose medians differ (480, 624, 504 µs): the table, the history index, the baseline choice
    and compare all read results.latency (median over rounds, 504), where they once took the median, the
    minimum, round 1 and the pooled samples."""
    from edgebench.compare.run_summary import summarize
    from edgebench.results.store import latency

    results = tmp_path / "results"
    summary = {
        "device": {"name": "pi4", "emulated": False}, "model": {"name": "mnist", "sha256": "m" * 64},
        "settings": {"threads": 1, "delegate": "xnnpack", "cpus": []}, "rounds": 3,
        "variants": [{"name": "int8", "bytes": 3_309_008, "sha256": "a" * 64}],
    }  # fmt: skip
    store = RunStore.create(results, "pi4", "20260101T000000Z-mnist-0001", summary)
    for round_number, scale in ((1, 1.0), (2, 1.3), (3, 1.05)):
        document = agent_document(latency_samples(round_number, scale=scale))
        document["timing"]["stats"]["p50"] = BASE_US * scale  # exact, for the arithmetic below
        store.add(Measurement("int8", round_number, "ok", document))
    store.finish("ok")
    run = load(store.folder)
    figure = latency(run.ok("int8"))
    assert figure.p50_us == pytest.approx(504.0) and figure.rounds == 3
    (row,) = summarize(run.record, list(run.measurements)).variants
    assert row.p50_ms * 1000 == pytest.approx(figure.p50_us)
    index = tmp_path / "history.sqlite"
    history.index_run(index, store.folder)
    (indexed,) = history.query(index)
    assert indexed.p50_us == pytest.approx(figure.p50_us)
    (compared,) = compare_runs(run, run).variants
    assert compared.p50_a_us == pytest.approx(figure.p50_us) and compared.verdict == "same"


@pytest.mark.parametrize(("runs", "discarded"), [(2048, 172), (7469, 685), (64, 0)])
def test_the_p90_is_mlperfs_early_stopping_estimate(runs, discarded):
    # LoadGen's own numbers at p90 and 99% confidence: 2048 queries discard 172, 7469 discard 685.
    samples = latency_samples(3, count=runs)
    tail = early_stopping(samples)
    assert tail.discarded == discarded and tail.needed == 64
    assert tail.value_us == sorted(samples)[runs - 1 - discarded]
    assert tail.value_us >= float(np.percentile(samples, 90))  # never a rosier tail than the plain percentile


def test_no_p90_claim_on_too_few_runs_and_the_table_says_how_many_it_needs():
    assert early_stopping(latency_samples(4, count=63)).value_us is None
    assert early_stopping(latency_samples(4, count=662), percentile=0.99).discarded == 0  # p99 needs 662
    assert early_stopping(latency_samples(4, count=661), percentile=0.99).value_us is None
    few, enough = agent_document(latency_samples(5, count=40)), agent_document(latency_samples(6, count=3000))
    figure = latency([few])
    assert (
        figure.p90_us is None and figure.tail_note == "no p90: 40 timed runs in a round, MLPerf early stopping needs 64"
    )
    assert latency([enough]).p90_us > 0 and "260 slowest of 3000 runs set aside" in latency([enough]).tail_note


def test_a_noise_floor_needs_five_earlier_nights_and_says_so():
    floor = noise_floor([480.0, 500.0, 470.0])
    assert floor.floor is None and floor.describe() == "no noise floor yet: 3 earlier comparable night(s), 5 needed"
    steady = noise_floor([480.0, 481.0, 479.0, 480.5, 479.5])
    assert steady.floor == pytest.approx(0.0051, abs=0.0005)  # quiet nights: a floor well under the 5% threshold
    wobbly = noise_floor([100.0, 106.0, 95.0, 104.0, 96.0, 102.0])
    assert wobbly.nights == 6 and 0.10 < wobbly.floor < 0.25 and "from 6 earlier nights" in wobbly.describe()
    # A single earlier night that really regressed does not widen it (median absolute deviation).
    assert noise_floor([100.0, 101.0, 99.0, 100.5, 99.5, 140.0]).floor < 0.05  # a standard deviation: 56%


def test_a_shift_within_the_boards_noise_floor_is_not_slower(tmp_path):
    baseline, candidate = agent_document(latency_samples(1)), agent_document(latency_samples(2, scale=1.08))
    (v,) = verdict(tmp_path, {"int8": baseline}, {"int8": candidate}).variants
    assert v.verdict == "slower" and v.noise is None  # no history given: the 5% threshold alone
    a, b = (
        load(tmp_path / "pi4" / "20260101T000000Z-mnist-aaaa"),
        load(tmp_path / "pi4" / "20260102T000000Z-mnist-bbbb"),
    )
    (v,) = compare_runs(a, b, 0.05, {"int8": noise_floor([100.0, 106.0, 95.0, 104.0, 96.0, 102.0])}).variants
    assert v.verdict == "same" and "within noise floor" in v.reason and "from 6 earlier nights" in v.noise


def test_check_learns_the_floor_from_the_boards_earlier_nights(tmp_path, capfd):
    results = tmp_path / "results"
    for night, scale in enumerate((1.0, 1.06, 0.95, 1.04, 0.96, 1.02), 1):  # this board's quiet nights: ±6%
        record_run(
            results,
            f"2026010{night}T000000Z-mnist-000{night}",
            {"int8": agent_document(latency_samples(night, scale=scale))},
        )
    record_run(results, "20260107T000000Z-mnist-0007", {"int8": agent_document(latency_samples(7, scale=1.08))})
    checked = run_main(capfd, "check", "--results-dir", results, "--baseline", "last", "--format", "markdown")
    assert checked.returncode == 0, checked.stdout + checked.stderr  # +6% against the last night: noise here
    assert "int8: noise floor" in checked.stdout and "from 6 earlier nights" in checked.stdout
    record_run(results, "20260108T000000Z-mnist-0008", {"int8": agent_document(latency_samples(8, scale=1.40))})
    checked = run_main(capfd, "check", "--results-dir", results, "--baseline", "last")
    assert checked.returncode == 1  # +30% is past this board's floor


def test_a_slower_same_file_is_put_down_to_the_device_with_what_changed(tmp_path, capfd):
    slow = agent_document(latency_samples(2, scale=1.2))
    slow["environment"] = {**slow["environment"], "kernel": "6.1.0-18", "cpufreq": {"0": {"governor": "powersave"}}}
    fast = agent_document(latency_samples(1))
    fast["environment"] = {**fast["environment"], "kernel": "6.1.0-17", "cpufreq": {"0": {"governor": "performance"}}}
    (v,) = verdict(tmp_path, {"int8": fast}, {"int8": slow}).variants
    assert v.verdict == "slower" and v.size == "same"
    assert v.cause.startswith("the same file ran slower: the device or its software got slower")
    assert "kernel 6.1.0-17 -> 6.1.0-18" in v.cause and "governor performance -> powersave" in v.cause
    checked = run_main(capfd, "check", "--results-dir", tmp_path, "--baseline", "20260101T000000Z-mnist-aaaa")
    assert checked.returncode == 1 and "int8: the same file ran slower" in " ".join(checked.stdout.split())
    (same,) = verdict(tmp_path / "quiet", {"int8": fast}, {"int8": agent_document(latency_samples(2))}).variants
    assert same.cause is None  # no slowdown, nothing to explain


def test_a_latency_sample_that_is_not_a_number_names_the_file(tmp_path):
    """Checked in one pass over the samples (a validator per item took minutes on a micro model's runs)."""
    document = agent_document(latency_samples(1))
    document["timing"]["samples_us"][7] = "7.5"
    folder = record_run(tmp_path, "20260101T000000Z-mnist-0001", {"int8": document})
    with pytest.raises(ResultsError, match=r"int8\.json is damaged \(timing/samples_us: every sample must be a number"):
        load(folder)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_a_latency_sample_that_is_nan_or_infinite_names_the_file_instead_of_p_nan(tmp_path, bad):
    document = agent_document(latency_samples(1))
    document["timing"]["samples_us"][3] = bad
    folder = record_run(tmp_path, "20260101T000000Z-mnist-0001", {"int8": document})
    with pytest.raises(ResultsError, match=r"int8\.json is damaged \(timing/samples_us: every sample must be a finite"):
        load(folder)


def test_fidelity_worst_figures_name_their_tensor_and_skip_outputs_near_zero(tmp_path):
    """A detector-like model on random inputs: boxes carry the signal, a mask is ~1e-4 everywhere (its SQNR is
    noise), and a one-element presence score has a cosine that is only a sign."""
    from edgebench.report.run_table import shown_run

    def output(name, elements, rms, sqnr, cosine, error):
        return {"name": name, "elements": elements, "reference_rms": rms, "exact": False, "sqnr_db": sqnr,
                "cosine_mean": cosine, "cosine_min": cosine, "max_abs_error": error}  # fmt: skip

    outputs = [output("boxes", 40, 0.8, 31.5, 0.9990, 0.02), output("mask", 4096, 1e-4, -25.0, 0.2, 0.0009),
               output("presence", 1, 0.3, 28.0, -1.0, 0.05)]  # fmt: skip
    documents = {}
    for variant in ("float32", "int8"):
        document = agent_document(latency_samples(1))
        document["fidelity"] = {"samples": 100, "source": "random", "outputs": outputs}
        documents[variant] = document
    run = load(record_run(tmp_path, "20260101T000000Z-det-0001", documents))
    view, table = shown_run(run.record, list(run.measurements))
    int8 = next(v for v in view.variants if v.name == "int8")
    assert int8.sqnr_db == 28.0 and int8.cosine == 0.999 and int8.max_abs_error == 0.05
    assert int8.fidelity_worst == {"sqnr": "presence", "cosine": "boxes", "max_abs_error": "presence"}
    note = next(n for n in table.notes if n.startswith("int8 fidelity, worst output per column:"))
    assert "SQNR 'presence', cosine 'boxes', max |err| 'presence'" in note
    assert "left out, negligible reference power: mask (reference RMS 0.0001)" in note


def test_a_variant_on_one_side_only_is_named_and_check_cannot_tell(tmp_path, capfd):
    """`check` must not pass while int8 was never compared: each missing variant is listed, exit 2."""
    result = verdict(
        tmp_path,
        {"float32": agent_document(latency_samples(1)), "int8": agent_document(latency_samples(2))},
        {"float32": agent_document(latency_samples(3)), "float16": agent_document(latency_samples(4))},
    )
    reasons = {v.variant: (v.verdict, v.reason) for v in result.variants}
    assert reasons["int8"] == ("not comparable", "measured in the baseline, not in run 20260102T000000Z-mnist-bbbb")
    assert reasons["float16"] == ("not comparable", "not in the baseline run 20260101T000000Z-mnist-aaaa")
    assert reasons["float32"][0] == "same"
    checked = run_main(capfd, "check", "--results-dir", tmp_path, "--baseline", "20260101T000000Z-mnist-aaaa")
    assert checked.returncode == 2
    said = " ".join(checked.stdout.split())
    assert "int8: measured in the baseline, not in run" in said and "float16: not in the baseline run" in said
