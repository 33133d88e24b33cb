"""How an A/B confirmation judges what it re-measured (compare/confirmation.py): process medians whose
differences are known by construction, with the spread of fresh processes on this machine kind (a few %)."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.compare.confirmation import Confirmation, apply, judge_again, judge_pairs
from edgebench.compare.noise import noise_floor
from edgebench.compare.verdicts import RunComparison, VariantComparison

BASE = 500.0  # µs


def processes(count: int, scale: float = 1.0, seed: int = 0, spread: float = 0.03) -> list[float]:
    """Process medians of one file: log-normal around BASE * scale, `spread` apart (3%: a shared VM)."""
    return list(BASE * scale * np.exp(np.random.default_rng(seed).normal(0, spread, count)))


def test_a_slower_file_in_interleaved_pairs_is_a_regression_in_the_file():
    drift = np.exp(np.random.default_rng(9).normal(0, 0.08, 10))  # the machine drifts 8% between pairs...
    a_now = [m * d for m, d in zip(processes(10, seed=1, spread=0.01), drift, strict=True)]
    b_now = [m * d for m, d in zip(processes(10, 1.10, seed=2, spread=0.01), drift, strict=True)]
    found = judge_pairs("int8", "night-1", a_now, b_now, processes(3, seed=3), 0.05)
    # ...which each pair shares: the paired test sees the file's 10% through it.
    assert found.verdict == "slower" and found.mode == "pairs"
    assert found.cause.startswith("regression in the int8 file: tonight's is +")
    assert found.low < found.ratio < found.high and found.ratio == pytest.approx(1.10, abs=0.02)
    assert found.p_value < 0.01 and found.processes == 20


def test_files_that_run_alike_in_the_pairs_are_not_confirmed():
    found = judge_pairs("int8", "night-1", processes(10, seed=1), processes(10, seed=2), processes(3, seed=3), 0.05)
    assert found.verdict == "same" and found.cause.startswith("not confirmed: the files run alike")


def test_files_that_tie_on_a_slower_device_name_the_device():
    """Both files 20% slower than the baseline's own file was on its night: not the file, the board."""
    then = processes(3, seed=3)
    found = judge_pairs("int8", "night-1", processes(10, 1.2, seed=1), processes(10, 1.2, seed=2), then, 0.05,
                        device_cause="the same file ran slower: the device or its software got slower")  # fmt: skip
    assert found.verdict == "slower" and "the files run alike" in found.cause
    assert "the device or its software got slower" in found.cause and found.device_ratio == pytest.approx(1.2, 0.05)


def test_the_same_file_still_slower_in_fresh_processes_is_the_device():
    found = judge_again("int8", "night-1", processes(10, 1.2, seed=1), processes(3, seed=2), 0.05)
    assert found.verdict == "slower" and found.mode == "again" and "device" in found.cause


def test_the_same_file_back_to_normal_in_fresh_processes_was_noise():
    found = judge_again("int8", "night-1", processes(10, seed=1), processes(3, seed=2), 0.05)
    assert found.verdict == "same" and found.cause.startswith("not confirmed")


def test_a_shift_within_the_boards_noise_floor_is_never_confirmed():
    """A board whose quiet nights move 10%: fresh processes 12% slower tonight are still within it."""
    nights = [BASE * s for s in (1.0, 1.1, 0.95, 1.08, 0.9, 1.05, 0.97, 1.12)]
    floor = noise_floor(nights)
    assert floor.floor > 0.12
    found = judge_again("int8", "night-1", processes(10, 1.12, seed=1, spread=0.005), processes(3, seed=2), 0.05,
                        floor)  # fmt: skip
    assert found.p_value < 0.01, "significant..."
    assert found.verdict == "same" and "within the" in found.cause, "...but what this board's nights already do"


def test_too_few_processes_cannot_confirm():
    with pytest.raises(ValueError, match="at least 3"):
        judge_pairs("int8", "n", processes(2), processes(2), processes(3), 0.05)
    with pytest.raises(ValueError, match="at least 3"):
        judge_again("int8", "n", processes(2), processes(3), 0.05)


def test_a_confirmation_replaces_only_the_verdict_of_its_own_baseline():
    suspect = VariantComparison("int8", "slower", "median +12.0%", 500, 560, 1.12, 1.12, 0.001)
    comparison = RunComparison("night-1", "night-2", (), (suspect,))
    same = judge_again("int8", "night-1", processes(10, seed=1), processes(3, seed=2), 0.05)
    (v,) = apply(comparison, {"int8": same}).variants
    assert v.verdict == "same" and "confirmation, 10 fresh processes" in v.reason and v.confirmation["mode"] == "again"
    assert not apply(comparison, {"int8": same}).regressions
    other = judge_again("int8", "night-0", processes(10, seed=1), processes(3, seed=2), 0.05)
    assert apply(comparison, {"int8": other}).variants[0].verdict == "slower"  # judged against another night
    assert Confirmation.from_dict(same.as_dict()) == same  # kept in confirmation.json and read back
