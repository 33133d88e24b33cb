"""Two runs -> per-variant verdicts: faster, slower, same, or not comparable. Pure functions.

Latency: the unit of evidence is a process. Each round is a fresh agent process
and gives one median; where the two runs have three processes or more between
them (rounds, or a 'last:N' baseline's nights), those medians are compared (a
t-test on their logarithms, the variance pooled from the sides that have more
than one): most of the noise lies between processes (memory layout, frequency,
the hypervisor), which thousands of samples of one process cannot show. With one
process on each side the raw samples go through a two-sided Mann-Whitney U test
instead, and the verdict says that it rests on one process each (what `check
--confirm` then re-measures). The effect is the ratio of the medians and of the
means. A change is only "slower" or "faster" when it is both significant
(p < 0.01) and at least the threshold (5% by default) or this board's noise floor:
on a million samples a 1% shift is significant but nobody should be paged for it,
and a 20% shift on five noisy samples is large but not yet evidence. "Slower" needs either ratio past
the threshold: the median catches a shift of the whole distribution, the mean
catches time lost to stalls (another process on the core, throttling) that
leaves most inferences, and so the median, untouched. "Faster" needs both.
Memory: the difference of the model's peak RSS above the agent's baseline (load,
allocate and inference, read before the timed runs, so the harness's own samples
and evaluation set are not counted): the processes' medians, beyond the same
relative threshold and 2 MiB, with every process of one side past every process of
the other; the process's peak where a document has no model figure (older agents).
Accuracy: on the counts, never a threshold: the 95% interval of the difference of
the two top-1 proportions (Newcombe's hybrid score method, from each side's Wilson
interval); "worse" or "better" when it excludes 0 (on 10,000 samples near 99%
about 0.3 points).
Size: exact bytes and sha256.
Runs of different devices, model files, runtime versions, threads, delegates
or CPU sets are not comparable, and the reason is given. A variant whose file
changed is compared, and a slower verdict names the file as the first suspect.
Accuracy figures from another data set or sample count are not compared.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binomtest, mannwhitneyu, ttest_ind_from_stats
from scipy.stats import t as student_t

from edgebench.agent.agent import wilson_interval
from edgebench.compare.noise import NoiseFloor
from edgebench.compare.profile_diff import profile_changes
from edgebench.core.settings import comparability_settings
from edgebench.results.store import RunData, latency

DEFAULT_THRESHOLD = 0.05
SIGNIFICANCE = 0.01
# A shift past the threshold at p below this, but not below SIGNIFICANCE, is "suspected": still "same" on its
# own, re-measured by an A/B confirmation, whose own p < 0.01 decides. Screening loosely and confirming
# strictly catches more real slowdowns without more false alarms (the confirmation bounds those).
SUSPICION = 0.10
SUSPECTED = "suspected but not significant"
# A memory change smaller than this is never "more" or "less": the same micro-model file measured 7.1 MB in
# every process of three quiet nights and 8.5 MB in every process of the fourth on a busy 2-vCPU VM (and in two
# of three of another night). The same file, so not the model: whole pages of the process (up to a 2 MiB folio)
# arrive or not. Below one such folio a model's figure cannot be told from the machine's.
MEMORY_FLOOR_BYTES = 2 * 1024 * 1024
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
    processes_a: int = 0  # agent processes (rounds) behind each side's latency
    processes_b: int = 0
    statistic: str = "p50"  # the per-process figure a confirmation re-measures: "mean" when stalls made it slower
    # set by an A/B confirmation (run/confirm.py): how the suspected change was re-measured and what it showed
    confirmation: dict | None = None
    profile: tuple[str, ...] = ()  # with --profile on both sides: operators and layers that moved (profile_diff)

    @property
    def regression(self) -> bool:
        return self.verdict == "slower" or self.memory == "more" or self.accuracy == "worse"

    @property
    def suspected(self) -> bool:
        """Slower, or a shift past the threshold that fell short of significance: worth an A/B confirmation."""
        return self.verdict == "slower" or (self.verdict == "same" and SUSPECTED in self.reason)


@dataclass(frozen=True)
class RunComparison:
    run_a: str
    run_b: str
    not_comparable: tuple[str, ...]
    variants: tuple[VariantComparison, ...] = field(default=())
    threshold: float = DEFAULT_THRESHOLD
    passed_over: tuple[str, ...] = ()  # newer earlier runs not taken as the baseline, each with why

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
            reasons.append(f"different {label}: {_shown(settings_a.get(key))} vs {_shown(settings_b.get(key))}")
    # Rounds are fresh processes, the unit a verdict rests on: one against three is another kind of evidence.
    rounds_a, rounds_b = a.record.get("rounds"), b.record.get("rounds")
    if rounds_a and rounds_b and rounds_a != rounds_b:
        reasons.append(f"different rounds: {rounds_a} vs {rounds_b}")
    return tuple(reasons)


def _shown(value) -> str:
    """A setting's value in a reason: 'default' for one not given (None), CPU lists as 2,3."""
    if value is None:
        return "default"
    return (
        ",".join(map(str, value))
        if isinstance(value, list | tuple)
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
    )


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
    # A variant on one side only is listed, never dropped: `check` must not pass while int8 was never compared.
    for name in [v for v in a.variants() if v not in b.variants()]:
        variants.append(VariantComparison(name, "not comparable", f"measured in the baseline, not in run {b.run_id}"))
    for name in b.variants():
        if name not in a.variants():
            variants.append(VariantComparison(name, "not comparable", f"not in the baseline run {a.run_id}"))
            continue
        compared = _compare_variant(
            name, a.ok(name), b.ok(name), sizes_a.get(name), sizes_b.get(name), threshold, data_change,
            (floors or {}).get(name),
        )  # fmt: skip
        changes = profile_changes(_profiled(a.ok(name), newest=True), _profiled(b.ok(name)))
        variants.append(dataclasses.replace(compared, profile=tuple(changes)) if changes else compared)
    return RunComparison(a.run_id, b.run_id, (), tuple(variants), threshold)


def _profiled(documents: list[dict], newest: bool = False) -> dict | None:
    """The document that carries a profile (round 1's); of a merged baseline (last:N), the newest night's."""
    found = [d for d in documents if d.get("operators") or d.get("layers")]
    return (found[-1] if newest else found[0]) if found else None


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
    if not docs_a or not docs_b:
        missing = "baseline" if not docs_a else "candidate"
        return VariantComparison(name, "not comparable", f"no successful measurement in the {missing} run", size=size)

    # The effect sizes come from the run's latency figures (results.latency), the same ones the
    # table, history and baselines show; the significance test uses the processes' medians, or
    # every raw sample when each side is one process.
    latency_a, latency_b = latency(docs_a), latency(docs_b)
    median_a, median_b = latency_a.p50_us, latency_b.p50_us
    ratio = median_b / median_a
    mean_ratio = latency_b.mean_us / latency_a.mean_us
    samples_a = [s for d in docs_a for s in d["timing"]["samples_us"]]
    samples_b = [s for d in docs_b for s in d["timing"]["samples_us"]]
    medians_a, medians_b = process_medians(docs_a), process_medians(docs_b)
    processes = process_test(medians_a, medians_b)
    statistics_only = not (samples_a and samples_b)
    if not statistics_only:
        p_value = float(mannwhitneyu(samples_a, samples_b, alternative="two-sided").pvalue)
        tail = stalls(samples_a, samples_b, ratio)
        means = process_test(process_medians(docs_a, "mean"), process_medians(docs_b, "mean"))
        if tail.flagged and means is not None and means.p_value >= SIGNIFICANCE:
            # One process each side can show stalls; with more, stalls count only when the processes' means
            # moved beyond their own spread (a busy spell during one process is not the board getting slower).
            tail = dataclasses.replace(tail, p_value=max(tail.p_value, means.p_value))
        verdict, reason = latency_verdict(ratio, mean_ratio, p_value, threshold, tail, processes, floor)
    else:
        # benchmark_model gives statistics, not samples: Welch's t-test on mean, std and count, no stall test.
        p_value = statistics_p_value(docs_a, docs_b)
        verdict, reason = latency_verdict(ratio, mean_ratio, p_value, threshold, None, processes, floor)
        reason += "; statistics only (no per-sample latencies from benchmark_model: Welch's t-test, no stall test)"
    if processes is not None:
        p_value = processes.p_value

    delta, memory = None, "n/a"
    peaks_a, peaks_b = _memory_figures(docs_a, docs_b)
    if peaks_a and peaks_b:
        memory, delta = memory_verdict(peaks_a, peaks_b, threshold)

    cause = None
    if verdict == "slower":
        if size == "changed":
            # Another file under the same name (a new quantizer, another calibration set): the file is the
            # first suspect; `check --confirm` runs both files in interleaved pairs to tell.
            cause = f"the {name} file changed (sha256 {file_a['sha256'][:12]} -> {file_b['sha256'][:12]})"
        else:
            cause = slowdown_cause(docs_a, docs_b)
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
        floor.describe() if floor else None, cause, len(medians_a), len(medians_b),
        "mean" if verdict == "slower" and ": stalls, " in reason else "p50",
    )  # fmt: skip


def process_medians(documents: Sequence[dict], statistic: str = "p50") -> list[float]:
    """One latency statistic per agent process (a round, or a night of a 'last:N' baseline): its median, or
    its mean ("mean": what stalls move)."""
    return [d["timing"]["stats"][statistic] for d in documents if (d["timing"].get("stats") or {}).get(statistic)]


@dataclass(frozen=True)
class ProcessTest:
    """Two sets of process medians compared on their logarithms."""

    processes_a: int
    processes_b: int
    log_shift: float  # mean log median of B minus A's
    p_value: float  # two-sided
    error: float  # standard error of the shift
    degrees: int  # of freedom of the pooled variance

    def describe(self) -> str:
        return f"{self.processes_a} vs {self.processes_b} processes, p={self.p_value:.2g}"


def process_test(medians_a: Sequence[float], medians_b: Sequence[float]) -> ProcessTest | None:
    """A t-test on the log medians of the two sides' processes, the variance pooled from every side with more
    than one (so a one-round candidate against a 'last:5' baseline is judged against the baseline's spread).
    None with one process on each side: there is no between-process variation to judge by."""
    logs_a, logs_b = np.log(medians_a), np.log(medians_b)
    sides = [x for x in (logs_a, logs_b) if len(x) >= 2]
    degrees = sum(len(x) - 1 for x in sides)
    if not sides or not len(logs_a) or not len(logs_b):
        return None
    variance = sum(float(np.sum((x - x.mean()) ** 2)) for x in sides) / degrees
    shift = float(logs_b.mean() - logs_a.mean())
    error = math.sqrt(variance * (1 / len(logs_a) + 1 / len(logs_b)))
    # Identical medians on a side (a clock too coarse to see the spread) leave only the shift to judge by.
    exact = 1.0 if shift == 0 else 0.0
    p_value = float(2 * student_t.sf(abs(shift) / error, degrees)) if error else exact
    return ProcessTest(len(logs_a), len(logs_b), shift, p_value, error, degrees)


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


def memory_verdict(peaks_a: Sequence[int], peaks_b: Sequence[int], threshold: float) -> tuple[str, int]:
    """("more" / "less" / "same", the difference of the processes' medians). A process is the unit of evidence
    here too: an allocation one process of three makes under load (a busy machine gave a micro model +1.4 MB
    in two processes of three) is not a model that needs more. With more than one process a side, "more" needs
    every process of B above every process of A (real growth moves them all), beyond 2 MiB and the threshold."""
    peak_a = statistics.median(peaks_a)
    delta = int(statistics.median(peaks_b) - peak_a)
    if abs(delta) <= max(MEMORY_FLOOR_BYTES, threshold * peak_a):
        return "same", delta
    if len(peaks_a) > 1 and len(peaks_b) > 1:
        apart = max(peaks_a) < min(peaks_b) if delta > 0 else min(peaks_a) > max(peaks_b)
        if not apart:
            return "same", delta
    return ("more" if delta > 0 else "less"), delta


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


def latency_verdict(
    median_ratio: float, mean_ratio: float, p_value: float, threshold: float, tail: Stalls | None = None,
    processes: ProcessTest | None = None, floor: NoiseFloor | None = None,
) -> tuple[str, str]:  # fmt: skip
    """Slower, faster or same: calibrated so that a nightly that says 'slower' is worth waking someone for.

    Shift: the median moved by the threshold (or the board's noise floor, if larger) or more, and
    significantly: between processes where the runs have three or more between them (`processes`),
    else on every sample of the one process each side has (5,000 consecutive samples of one process
    are not 5,000 independent runs: such a verdict says so, and `check --confirm` re-measures it).
    Stalls (time lost to a busy core or throttling, which leaves the median alone): significantly
    more than the 1% of samples above the baseline's p99 that chance gives, at least STALL_SHARE of
    them, and the mean up by the threshold. A few outliers pass neither test.
    """
    change = f"median {(median_ratio - 1) * 100:+.1f}%, mean {(mean_ratio - 1) * 100:+.1f}%"
    limit = f"the {threshold:.0%} threshold"
    if floor is not None and floor.floor is not None and floor.floor > threshold:
        # This board's quiet nights move the median further than the threshold: the floor is the threshold.
        threshold, limit = floor.floor, floor.describe()
    if processes is not None:
        evidence, p_value = processes.describe(), processes.p_value
    else:
        evidence = f"one process each, p={p_value:.2g} on the samples"
    if tail is not None and tail.flagged and mean_ratio >= 1 + threshold:
        return (
            "slower",
            f"{change}: stalls, {tail.share:.1%} of samples above the baseline's p99 (p={tail.p_value:.2g})",
        )
    if p_value >= SIGNIFICANCE:
        if p_value < SUSPICION and median_ratio >= 1 + threshold:
            # Not enough to page anyone, enough to look again: `check --confirm` and the farm re-measure it.
            return "same", f"{change}, {SUSPECTED} ({evidence})"
        return "same", f"{change}, not significant ({evidence})"
    if median_ratio >= 1 + threshold:
        return "slower", f"{change}, {evidence}"
    if median_ratio <= 1 / (1 + threshold):
        return "faster", f"{change}, {evidence}"
    return "same", f"{change}: within {limit} ({evidence})"


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
    """'5%' or '0.05' -> 0.05. A bare number is a fraction, and only below 1: "1" meant 1% and "0.9" meant 90%
    before, so a bare number of 1 or more is refused with both spellings instead of guessed."""
    value = str(text).strip()
    try:
        number = float(value.rstrip("%"))
    except ValueError:
        raise ValueError(f"a threshold is a percentage like 5% (or a fraction like 0.05), got {text!r}") from None
    if value.endswith("%"):
        number /= 100
    elif number >= 1:
        raise ValueError(f"{text!r} is ambiguous: write {number:g}% for a percentage, or a fraction below 1 "
                         f"(0.05 means 5%)")  # fmt: skip
    if not (0 < number < 1) or not math.isfinite(number):
        raise ValueError(f"a threshold must be between 0% and 100%, got {text!r}")
    return number
