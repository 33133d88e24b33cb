"""Two runs -> per-variant verdicts: faster, slower, same, or not comparable. Pure functions.

Latency: the raw samples of both runs (all rounds pooled) go through a
two-sided Mann-Whitney U test; the effect is the ratio of their medians and of
their means. A change is only "slower" or "faster" when it is both significant
(p < 0.01) and at least the threshold (5% by default): on a million samples a 1%
shift is significant but nobody should be paged for it, and a 20% shift on five
noisy samples is large but not yet evidence. "Slower" needs either ratio past
the threshold: the median catches a shift of the whole distribution, the mean
catches time lost to stalls (another process on the core, throttling) that
leaves most inferences, and so the median, untouched. "Faster" needs both.
Memory: the difference of the model's peak RSS above the agent's baseline (load,
allocate and inference, read before the timed runs, so the harness's own samples
and evaluation set are not counted), beyond the same relative threshold and 1 MB;
the process's peak where a document has no model figure (older agents).
Accuracy: on the counts, never a threshold: the 95% interval of the difference of
the two top-1 proportions (Newcombe's hybrid score method, from each side's Wilson
interval); "worse" or "better" when it excludes 0 (on 10,000 samples near 99%
about 0.3 points).
Size: exact bytes and sha256.
Runs of different devices, model files, runtime versions, threads, delegates
or CPU sets are not comparable, and the reason is given; so is a variant whose
file changed. Accuracy figures from another data set or sample count are not
compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binomtest, mannwhitneyu, ttest_ind_from_stats

from edgebench.agent.agent import wilson_interval
from edgebench.compare.noise import NoiseFloor
from edgebench.core.settings import comparability_settings
from edgebench.results.store import RunData, latency

DEFAULT_THRESHOLD = 0.05
SIGNIFICANCE = 0.01
MEMORY_FLOOR_BYTES = 1_000_000
# Stalls count when at least this share of the candidate's samples lie above the baseline's p99 (1% by chance).
STALL_SHARE = 0.05


@dataclass(frozen=True)
class VariantComparison:
    variant: str
    verdict: str  # "faster", "slower", "same", "not comparable"
    reason: str = ""
    p50_a_us: float | None = None
    p50_b_us: float | None = None
    ratio: float | None = None  # median B / median A: above 1 is slower
    mean_ratio: float | None = None  # mean B / mean A
    p_value: float | None = None
    memory: str = "n/a"  # "more", "less", "same", "n/a"
    memory_delta_bytes: int | None = None
    accuracy: str = "n/a"  # "worse", "better", "same", "n/a", "not comparable"
    top1_a: float | None = None
    top1_b: float | None = None
    size: str = "n/a"  # "same", "changed", "n/a"
    statistics_only: bool = False  # no per-sample latencies (benchmark_model): Welch's t-test, no stall test
    # top-1 B minus A in percentage points, with its 95% interval (Newcombe): (difference, low, high)
    accuracy_delta_pp: tuple[float, float, float] | None = None
    noise: str | None = None  # the noise floor the latency verdict used, or why there is none yet
    cause: str | None = None  # for a slower verdict: what the two runs let us name as its cause

    @property
    def regression(self) -> bool:
        return self.verdict == "slower" or self.memory == "more" or self.accuracy == "worse"


@dataclass(frozen=True)
class RunComparison:
    run_a: str
    run_b: str
    not_comparable: tuple[str, ...]
    variants: tuple[VariantComparison, ...] = field(default=())
    threshold: float = DEFAULT_THRESHOLD

    @property
    def comparable(self) -> bool:
        return not self.not_comparable

    @property
    def regressions(self) -> list[VariantComparison]:
        return [v for v in self.variants if v.regression]


def comparability(a: RunData, b: RunData) -> tuple[str, ...]:
    """Why two runs cannot be compared, if they cannot."""
    reasons = []
    device_a, device_b = a.record.device_name, b.record.device_name
    if device_a != device_b:
        reasons.append(f"different devices: {device_a} vs {device_b}")
    runtime_a, runtime_b = a.environment().get("runtime"), b.environment().get("runtime")
    if runtime_a and runtime_b and runtime_a != runtime_b:
        names = [f"{r['name']} {r['version']}" for r in (runtime_a, runtime_b)]
        reasons.append(f"different runtimes: {names[0]} vs {names[1]}")
    model_a, model_b = a.record.model_sha256, b.record.model_sha256
    if model_a and model_b and model_a != model_b:
        reasons.append(f"different model files: {a.record.model_name} sha256 {model_a[:12]} vs {model_b[:12]}")
    settings_a, settings_b = a.record.settings, b.record.settings
    for setting in comparability_settings():
        key, label = setting.name, setting.spec.comparable
        if settings_a.get(key) != settings_b.get(key):
            reasons.append(f"different {label}: {settings_a.get(key)} vs {settings_b.get(key)}")
    return tuple(reasons)


def compare_runs(a: RunData, b: RunData, threshold: float = DEFAULT_THRESHOLD,
                 floors: dict[str, NoiseFloor] | None = None) -> RunComparison:  # fmt: skip
    """A is the baseline, B the candidate. `floors`, per variant, from the device's earlier nights
    (history.lookup.noise_floors): a latency shift within the floor is never slower or faster."""
    reasons = comparability(a, b)
    if reasons:
        return RunComparison(a.run_id, b.run_id, reasons, threshold=threshold)
    sizes_a = {v["name"]: v for v in a.record.variant_files}
    sizes_b = {v["name"]: v for v in b.record.variant_files}
    data_change = dataset_change(a, b)
    variants = []
    for name in [v for v in b.variants() if v in a.variants()]:
        variants.append(
            _compare_variant(
                name,
                a.ok(name),
                b.ok(name),
                sizes_a.get(name),
                sizes_b.get(name),
                threshold,
                data_change,
                (floors or {}).get(name),
            )
        )
    return RunComparison(a.run_id, b.run_id, (), tuple(variants), threshold)


def dataset_change(a: RunData, b: RunData) -> str | None:
    """Why the two runs' accuracy figures cannot be compared, if they cannot: another data set or sample count."""
    data_a, data_b = a.record.dataset or {}, b.record.dataset or {}
    if data_a.get("sha256") != data_b.get("sha256"):
        return "different data sets"
    evaluated_a = a.record.settings.get("samples")
    evaluated_b = b.record.settings.get("samples")
    if evaluated_a != evaluated_b:
        return f"different sample counts: {evaluated_a} vs {evaluated_b}"
    return None


def _compare_variant(name, docs_a, docs_b, file_a, file_b, threshold, data_change=None,
                     floor: NoiseFloor | None = None) -> VariantComparison:  # fmt: skip
    size = "n/a"
    if file_a and file_b:
        size = "same" if file_a.get("sha256") == file_b.get("sha256") else "changed"
    if size == "changed":
        # Another file under the same name (a new quantizer, another calibration set): a latency
        # change would be the file's, not the device's or the runtime's.
        reason = f"the {name} file changed: sha256 {file_a['sha256'][:12]} vs {file_b['sha256'][:12]}"
        return VariantComparison(name, "not comparable", reason, size=size)
    if not docs_a or not docs_b:
        missing = "baseline" if not docs_a else "candidate"
        return VariantComparison(name, "not comparable", f"no successful measurement in the {missing} run", size=size)

    # The effect sizes come from the run's latency figures (results.latency), the same ones the
    # table, history and baselines show; the significance test uses every raw sample.
    latency_a, latency_b = latency(docs_a), latency(docs_b)
    median_a, median_b = latency_a.p50_us, latency_b.p50_us
    ratio = median_b / median_a
    mean_ratio = latency_b.mean_us / latency_a.mean_us
    samples_a = [s for d in docs_a for s in d["timing"]["samples_us"]]
    samples_b = [s for d in docs_b for s in d["timing"]["samples_us"]]
    rounds = rounds_order([d["timing"]["stats"]["p50"] for d in docs_a], [d["timing"]["stats"]["p50"] for d in docs_b])
    statistics_only = not (samples_a and samples_b)
    if not statistics_only:
        p_value = float(mannwhitneyu(samples_a, samples_b, alternative="two-sided").pvalue)
        tail = stalls(samples_a, samples_b, ratio)
        verdict, reason = latency_verdict(ratio, mean_ratio, p_value, threshold, tail, rounds, floor)
    else:
        # benchmark_model gives statistics, not samples: Welch's t-test on mean, std and count, no stall test.
        p_value = statistics_p_value(docs_a, docs_b)
        verdict, reason = latency_verdict(ratio, mean_ratio, p_value, threshold, None, rounds, floor)
        reason += "; statistics only (no per-sample latencies from benchmark_model: Welch's t-test, no stall test)"

    delta, memory = None, "n/a"
    peaks_a, peaks_b = _memory_figures(docs_a, docs_b)
    if peaks_a and peaks_b:
        peak_a, delta = max(peaks_a), max(peaks_b) - max(peaks_a)
        memory = "same"
        if abs(delta) > max(MEMORY_FLOOR_BYTES, threshold * peak_a):
            memory = "more" if delta > 0 else "less"

    cause = slowdown_cause(docs_a, docs_b) if verdict == "slower" and size == "same" else None
    accuracy_a, accuracy_b = docs_a[0].get("accuracy") or {}, docs_b[0].get("accuracy") or {}
    accuracy, interval = "n/a", None
    if _counts(accuracy_a) and _counts(accuracy_b):
        if data_change:
            accuracy, reason = "not comparable", f"{reason}; accuracy not comparable: {data_change}"
        else:
            accuracy, interval = accuracy_verdict(_counts(accuracy_a), _counts(accuracy_b))
    return VariantComparison(
        name, verdict, reason, median_a, median_b, ratio, mean_ratio, p_value, memory, delta, accuracy,
        accuracy_a.get("top1"), accuracy_b.get("top1"), size, statistics_only, interval,
        floor.describe() if floor else None, cause,
    )  # fmt: skip


# What in a device's recorded environment can make the same file slower, and how it is shown.
_ENVIRONMENT = (("kernel", "kernel"), ("cpu_model", "CPU"), ("python", "Python"), ("numpy", "numpy"))


def slowdown_cause(docs_a: Sequence[dict], docs_b: Sequence[dict]) -> str:
    """The same variant file ran slower: the file cannot be the cause, so the device or its software is. Names
    what its recorded environment shows changed (the runtime's version already makes runs not comparable)."""
    env_a, env_b = docs_a[0].get("environment") or {}, docs_b[0].get("environment") or {}
    changes = [f"{label} {env_a.get(key)} -> {env_b.get(key)}" for key, label in _ENVIRONMENT
               if env_a.get(key) != env_b.get(key)]  # fmt: skip
    governors = [{c.get("governor") for c in (e.get("cpufreq") or {}).values()} - {None} for e in (env_a, env_b)]
    if governors[0] != governors[1]:
        changes.append(f"governor {','.join(sorted(governors[0])) or '?'} -> {','.join(sorted(governors[1])) or '?'}")
    before = [(d.get("thermal") or {}).get("before_c") for d in (docs_a[0], docs_b[0])]
    if None not in before and before[1] - before[0] >= 5:
        changes.append(f"{before[1] - before[0]:+.0f} °C at the start")
    said = "; recorded changes: " + ", ".join(changes) if changes else "; nothing in its recorded environment changed"
    return "the same file ran slower: the device or its software got slower" + said


def _memory_figures(docs_a: Sequence[dict], docs_b: Sequence[dict]) -> tuple[list[int], list[int]]:
    """What memory is judged on: the model's own (load, allocate, inference, above the agent's baseline, read
    before the timed runs: neither the harness's samples nor the evaluation set move it) where both runs have it;
    else, for documents of an older agent or benchmark_model, the process's peak."""
    for key in ("model_delta", "peak_rss_after_runs"):
        figures_a = [d["memory"].get(key) for d in docs_a]
        figures_b = [d["memory"].get(key) for d in docs_b]
        if None not in figures_a and None not in figures_b:
            return figures_a, figures_b
    return [], []


def _counts(accuracy: dict) -> tuple[int, int] | None:
    """(correct, evaluated) of an agent document's accuracy block, when it has them."""
    if accuracy.get("correct") is None or not accuracy.get("total"):
        return None
    return accuracy["correct"], accuracy["total"]


def statistics_p_value(docs_a: Sequence[dict], docs_b: Sequence[dict]) -> float:
    """Welch's t-test from each side's pooled mean, standard deviation and count (1.0 when they are missing)."""

    def pooled(documents):
        stats = [d["timing"]["stats"] for d in documents]
        if any(s.get("std") is None or not s.get("count") for s in stats):
            return None
        count = sum(s["count"] for s in stats)
        mean = sum(s["mean"] * s["count"] for s in stats) / count
        variance = sum(s["count"] * (s["std"] ** 2 + (s["mean"] - mean) ** 2) for s in stats) / count
        return mean, variance**0.5, count

    a, b = pooled(docs_a), pooled(docs_b)
    if a is None or b is None or a[2] < 2 or b[2] < 2:
        return 1.0  # nothing to test with: never a verdict
    result = ttest_ind_from_stats(*a, *b, equal_var=False)
    return float(result.pvalue) if np.isfinite(result.pvalue) else 1.0


@dataclass(frozen=True)
class Stalls:
    """Samples of the candidate above the baseline's 99th percentile (shift taken out): 1% when nothing changed."""

    share: float
    p_value: float  # binomial, against the 1% expected

    @property
    def flagged(self) -> bool:
        return self.share >= STALL_SHARE and self.p_value < SIGNIFICANCE


def stalls(samples_a: Sequence[float], samples_b: Sequence[float], median_ratio: float = 1.0) -> Stalls:
    """Samples above the baseline's p99 once the median shift is taken out: a slower distribution as a
    whole is a shift, judged as one; stalls are the inferences left far behind on top of it."""
    limit = float(np.percentile(samples_a, 99)) * max(median_ratio, 1.0)
    above = int(np.sum(np.asarray(samples_b) > limit))
    return Stalls(above / len(samples_b), float(binomtest(above, len(samples_b), 0.01, alternative="greater").pvalue))


def rounds_order(p50s_a: Sequence[float], p50s_b: Sequence[float]) -> str | None:
    """'above' or 'below' when every candidate round's median lies beyond every baseline round's, 'mixed'
    when they interleave, None with a single round on both sides. Rounds of a 'last:N' baseline are
    its N runs, so a single-round candidate must lie beyond all of them."""
    if len(p50s_a) < 2 and len(p50s_b) < 2:
        return None  # one round each: no between-run variation to judge by
    if min(p50s_b) > max(p50s_a):
        return "above"
    if max(p50s_b) < min(p50s_a):
        return "below"
    return "mixed"


def latency_verdict(
    median_ratio: float, mean_ratio: float, p_value: float, threshold: float, tail: Stalls | None = None,
    rounds: str | None = None, floor: NoiseFloor | None = None,
) -> tuple[str, str]:  # fmt: skip
    """Slower, faster or same: calibrated so that a nightly that says 'slower' is worth waking someone for.

    Shift: the median moved by the threshold or more, significantly (Mann-Whitney on every sample),
    and, where both runs have rounds, every candidate round lies beyond every baseline round:
    5,000 consecutive samples of one process are not 5,000 independent runs, and drift between
    processes is what the rounds show. Stalls (time lost to a busy core or throttling, which leaves
    the median alone): significantly more than the 1% of samples above the baseline's p99 that
    chance gives, at least STALL_SHARE of them, and the mean up by the threshold. A few outliers
    (the old mean-ratio criterion's false alarms) pass neither test.
    """
    change = f"median {(median_ratio - 1) * 100:+.1f}%, mean {(mean_ratio - 1) * 100:+.1f}%"
    limit = f"the {threshold:.0%} threshold"
    if floor is not None and floor.floor is not None and floor.floor > threshold:
        # This board's quiet nights move the median further than the threshold: the floor is the threshold.
        threshold, limit = floor.floor, floor.describe()
    if tail is not None and tail.flagged and mean_ratio >= 1 + threshold:
        return (
            "slower",
            f"{change}: stalls, {tail.share:.1%} of samples above the baseline's p99 (p={tail.p_value:.2g})",
        )
    if p_value >= SIGNIFICANCE:
        return "same", f"{change}, not significant (p={p_value:.2g})"
    rounds_note = f", every round {rounds}" if rounds in ("above", "below") else ""
    if median_ratio >= 1 + threshold:
        if rounds == "mixed":
            return "same", f"{change}: the rounds of the two runs overlap (p={p_value:.2g})"
        return "slower", f"{change}, p={p_value:.2g}{rounds_note}"
    if median_ratio <= 1 / (1 + threshold):
        if rounds == "mixed":
            return "same", f"{change}: the rounds of the two runs overlap (p={p_value:.2g})"
        return "faster", f"{change}, p={p_value:.2g}{rounds_note}"
    return "same", f"{change}: within {limit} (p={p_value:.2g})"


def accuracy_difference(counts_a: tuple[int, int], counts_b: tuple[int, int]) -> tuple[float, float, float]:
    """B's top-1 minus A's, with the 95% interval of Newcombe's hybrid score method (his method 10: from the two
    Wilson intervals), which holds near 0 and 1 and for unequal counts; returns (difference, low, high)."""
    (correct_a, total_a), (correct_b, total_b) = counts_a, counts_b
    p_a, p_b = correct_a / total_a, correct_b / total_b
    low_a, high_a = wilson_interval(correct_a, total_a)
    low_b, high_b = wilson_interval(correct_b, total_b)
    difference = p_b - p_a
    low = difference - math.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2)
    high = difference + math.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2)
    return difference, low, high


def accuracy_verdict(counts_a: tuple[int, int], counts_b: tuple[int, int]) -> tuple[str, tuple[float, float, float]]:
    """Worse or better only when the 95% interval of the difference excludes 0; judged on the counts (every
    evaluated sample), never on a threshold of top-1 points. Returns the verdict and the difference with its
    interval, in percentage points."""
    difference, low, high = accuracy_difference(counts_a, counts_b)
    in_points = (difference * 100, low * 100, high * 100)
    if high < 0:
        return "worse", in_points
    if low > 0:
        return "better", in_points
    return "same", in_points


def parse_threshold(text: str) -> float:
    """'5%', '5' or '0.05' -> 0.05."""
    value = text.strip()
    try:
        number = float(value.rstrip("%"))
    except ValueError:
        raise ValueError(f"a threshold is a percentage like 5%, got {text!r}") from None
    if value.endswith("%") or number >= 1:
        number /= 100
    if not 0 < number < 1:
        raise ValueError(f"a threshold must be between 0% and 100%, got {text!r}")
    return number
