"""A variant's latency in one run: the one definition the table, history, baselines and compare share.

With several rounds, each round's statistic is taken on its own samples and the median over rounds
reported, so a round disturbed by the machine moves the figure only as much as one round of several
should.

The tail is MLPerf's early-stopping estimate, not the plain 90th percentile of the samples: after n
timed runs, take the largest t with BinomCDF(t; n, 0.10) <= 0.01, discard the t-1 slowest runs and
report the slowest of the rest. At 99% confidence the true p90 is at most that figure. With fewer than
64 runs no run can be discarded and no p90 claim is made (LoadGen's numbers: 2048 runs discard 172,
7469 discard 685).
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass

from scipy.stats import binom

TAIL_PERCENTILE = 0.90
TAIL_CONFIDENCE = 0.99


@dataclass(frozen=True)
class Tail:
    """An early-stopping percentile estimate of one round's samples."""

    value_us: float | None  # None: too few runs for a claim at this confidence
    runs: int
    discarded: int  # the slowest runs set aside (t - 1)
    needed: int  # the fewest runs that allow any claim


@dataclass(frozen=True)
class Latency:
    p50_us: float  # median over rounds of each round's median
    p90_us: float | None  # median over rounds of each round's early-stopping p90; None without per-sample timings
    mean_us: float  # median over rounds of each round's mean
    rounds: int
    tails: tuple[Tail, ...] = ()  # each round's p90 estimate (empty without per-sample timings)

    @property
    def tail_note(self) -> str | None:
        """What the p90 rests on, for the table: how many runs were set aside, or how many more it needs."""
        if not self.tails:
            return None
        runs = min(t.runs for t in self.tails)
        if self.p90_us is None:
            return f"no p90: {runs} timed runs in a round, MLPerf early stopping needs {self.tails[0].needed}"
        discarded = min(t.discarded for t in self.tails)
        return f"p90 by MLPerf early stopping (99% confidence): {discarded} slowest of {runs} runs set aside"


def early_stopping(samples_us: list[float], percentile: float = TAIL_PERCENTILE,
                   confidence: float = TAIL_CONFIDENCE) -> Tail:  # fmt: skip
    """MLPerf LoadGen's early-stopping estimate of a latency percentile (single stream)."""
    runs = len(samples_us)
    tail = 1 - percentile
    needed = _fewest_runs(tail, confidence)
    bound = _largest_bound(runs, tail, confidence)
    if bound is None or bound < 1:
        return Tail(None, runs, 0, needed)
    ordered = sorted(samples_us)
    discarded = bound - 1
    return Tail(ordered[runs - 1 - discarded], runs, discarded, needed)


def _largest_bound(runs: int, tail: float, confidence: float) -> int | None:
    """The largest t with BinomCDF(t; runs, tail) <= 1 - confidence, or None when even t = 0 is above it."""
    alpha = 1 - confidence
    if runs <= 0 or binom.cdf(0, runs, tail) > alpha:
        return None
    guess = int(binom.ppf(alpha, runs, tail))  # the smallest t whose CDF reaches alpha
    for t in (guess + 1, guess, guess - 1, guess - 2):
        if 0 <= t <= runs and binom.cdf(t, runs, tail) <= alpha:
            return t
    return None


@functools.cache
def _fewest_runs(tail: float, confidence: float) -> int:
    runs = 1
    while (_largest_bound(runs, tail, confidence) or 0) < 1:
        runs += 1
    return runs


def latency(documents: list[dict]) -> Latency | None:
    """The Latency of successful agent documents of one variant (one per round); None without any."""
    stats = [document["timing"]["stats"] for document in documents]
    if not stats:
        return None
    per_sample = all(document["timing"].get("samples_us") for document in documents)
    tails = tuple(early_stopping(document["timing"]["samples_us"]) for document in documents) if per_sample else ()
    p90 = None
    if tails and all(t.value_us is not None for t in tails):
        p90 = statistics.median(t.value_us for t in tails)
    return Latency(
        statistics.median(s["p50"] for s in stats),
        p90,
        statistics.median(s["mean"] for s in stats),
        len(stats),
        tails,
    )
