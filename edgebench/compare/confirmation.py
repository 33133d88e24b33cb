"""A suspected slowdown judged again from fresh processes measured at once (Chromium's Pinpoint does this).

A nightly "slower" rests on one night against another: between them lie everything that moves a
process's median (memory layout, frequency, the hypervisor, other jobs). Before anyone is woken,
run/confirm.py measures again on the same device, and these pure functions judge what it measured:

- the two nights' files differ: both files in interleaved fresh processes (A B A B ...), judged by
  a paired t-test on the log ratio of each pair's medians. Interleaving cancels the drift that the
  two nights do not share. Tonight's file slower in the pairs: a regression in the variant file.
  Not slower in the pairs, but the baseline's own file now slower than on its night: the device or
  its software got slower.
- the files are identical: the pairs cannot differ. The file runs again in fresh processes and
  those medians are compared with the baseline's processes (a t-test on logs, variance pooled),
  and must be beyond the threshold and this board's noise floor: still slower means the device or
  its software got slower; otherwise the night was noise and is "same".

Either way a confirmed slowdown needs p < 0.01 (one-sided) and an effect of at least the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.stats import t as student_t

from edgebench.compare.noise import NoiseFloor
from edgebench.compare.verdicts import RunComparison, process_test

SIGNIFICANCE = 0.01  # one-sided: a confirmed slowdown is worth waking someone for
MIN_PAIRS = 3  # fewer usable pairs (or fresh processes) than this cannot confirm anything


@dataclass(frozen=True)
class Confirmation:
    variant: str
    baseline_run: str
    mode: str  # "pairs": both files interleaved; "again": the same file in fresh processes
    medians_a_us: tuple[float, ...]  # pairs: the baseline's file now, one per pair; again: the baseline's processes
    medians_b_us: tuple[float, ...]  # tonight's file now, one per process (pairs: in the same order as A)
    ratio: float  # B / A: tonight's over the baseline's
    low: float  # 95% interval of the ratio
    high: float
    p_value: float  # one-sided, for "slower"
    verdict: str  # "slower" or "same"
    cause: str  # what the re-measurement lets us name: the file, the device, or "not confirmed"
    device_ratio: float | None = None  # pairs: the baseline's file now over its own night

    @property
    def processes(self) -> int:
        return len(self.medians_b_us) + (len(self.medians_a_us) if self.mode == "pairs" else 0)

    def describe(self) -> str:
        what = f"{len(self.medians_b_us)} interleaved pairs" if self.mode == "pairs" else (
            f"{len(self.medians_b_us)} fresh processes against the baseline's {len(self.medians_a_us)}")  # fmt: skip
        return (f"confirmation, {what}: {(self.ratio - 1) * 100:+.1f}% (95% CI {(self.low - 1) * 100:+.1f}% to "
                f"{(self.high - 1) * 100:+.1f}%, p={self.p_value:.2g})")  # fmt: skip

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Confirmation:
        fields = {**data, "medians_a_us": tuple(data["medians_a_us"]), "medians_b_us": tuple(data["medians_b_us"])}
        return cls(**{k: v for k, v in fields.items() if k in cls.__dataclass_fields__})


def judge_pairs(variant: str, baseline_run: str, a_now: Sequence[float], b_now: Sequence[float],
                a_then: Sequence[float], threshold: float, floor: NoiseFloor | None = None,
                device_cause: str = "") -> Confirmation:  # fmt: skip
    """Tonight's file (b_now) against the baseline's (a_now), measured in interleaved pairs; a_then: the
    baseline's file's process medians on its own night, to tell a slower device when the files tie."""
    if len(a_now) != len(b_now) or len(b_now) < MIN_PAIRS:
        raise ValueError(f"{len(b_now)} pairs: at least {MIN_PAIRS} are needed")
    logs = np.log(np.asarray(b_now)) - np.log(np.asarray(a_now))
    shift, error = float(logs.mean()), float(logs.std(ddof=1) / math.sqrt(len(logs)))
    p_value, low, high = _one_sided(shift, error, len(logs) - 1)
    ratio = math.exp(shift)
    common = dict(variant=variant, baseline_run=baseline_run, mode="pairs", medians_a_us=tuple(a_now),
                  medians_b_us=tuple(b_now), ratio=ratio, low=low, high=high, p_value=p_value)  # fmt: skip
    if p_value < SIGNIFICANCE and ratio >= 1 + threshold:
        cause = (f"regression in the {variant} file: tonight's is {(ratio - 1) * 100:+.1f}% against the baseline's "
                 f"in {len(logs)} interleaved pairs")  # fmt: skip
        return Confirmation(**common, verdict="slower", cause=cause)
    device = judge_again(variant, baseline_run, a_now, a_then, threshold, floor, device_cause)
    if device.verdict == "slower":
        cause = (
            f"the files run alike in {len(logs)} interleaved pairs ({(ratio - 1) * 100:+.1f}%), but the "
            f"baseline's own file is {(device.ratio - 1) * 100:+.1f}% slower than on its night: {device.cause}"
        )
        return Confirmation(**common, verdict="slower", cause=cause, device_ratio=device.ratio)
    return Confirmation(**common, verdict="same", cause="not confirmed: the files run alike in interleaved pairs",
                        device_ratio=device.ratio)  # fmt: skip


def judge_again(variant: str, baseline_run: str, now: Sequence[float], then: Sequence[float], threshold: float,
                floor: NoiseFloor | None = None, device_cause: str = "") -> Confirmation:  # fmt: skip
    """The same file in fresh processes now against the baseline's processes: slower only beyond both the
    threshold and this board's noise floor (the night-to-night spread that fresh processes of one night
    cannot show), and significantly."""
    if len(now) < MIN_PAIRS or not then:
        raise ValueError(f"{len(now)} fresh processes: at least {MIN_PAIRS} are needed")
    test = process_test(then, now)
    p_value, low, high = _one_sided(test.log_shift, test.error, test.degrees)
    ratio = math.exp(test.log_shift)
    limit = max(threshold, floor.floor if floor is not None and floor.floor is not None else 0.0)
    common = dict(variant=variant, baseline_run=baseline_run, mode="again", medians_a_us=tuple(then),
                  medians_b_us=tuple(now), ratio=ratio, low=low, high=high, p_value=p_value)  # fmt: skip
    if p_value < SIGNIFICANCE and ratio >= 1 + limit:
        cause = device_cause or "the same file runs slower: the device or its software got slower"
        return Confirmation(**common, verdict="slower", cause=cause)
    within = f" (within the {limit:.1%} that counts)" if ratio < 1 + limit else ""
    return Confirmation(**common, verdict="same", cause=f"not confirmed: the same file runs as before{within}")


def _one_sided(shift: float, error: float, degrees: int) -> tuple[float, float, float]:
    """One-sided p for a positive log shift, and the 95% interval of the ratio."""
    if error <= 0:
        return (0.0 if shift > 0 else 1.0), math.exp(shift), math.exp(shift)
    p_value = float(student_t.sf(shift / error, degrees))
    margin = float(student_t.isf(0.025, degrees)) * error
    return p_value, math.exp(shift - margin), math.exp(shift + margin)


def kept(stored: dict[str, dict]) -> dict[str, Confirmation]:
    """Confirmations as results/confirmations.py read them from a run folder (entries it cannot use skipped)."""
    found = {}
    for name, data in stored.items():
        try:
            found[name] = Confirmation.from_dict(data)
        except (TypeError, KeyError, ValueError):
            continue  # written by another version, or damaged: the run's own verdict stands
    return found


def apply(comparison: RunComparison, confirmations: dict[str, Confirmation]) -> RunComparison:
    """The comparison with each confirmed variant's latency verdict, reason and cause taken from its
    confirmation (only confirmations against this comparison's baseline run count)."""
    variants = []
    for v in comparison.variants:
        found = confirmations.get(v.variant)
        if found is None or found.baseline_run != comparison.run_a or not v.suspected:
            variants.append(v)
            continue
        verdict = "slower" if found.verdict == "slower" else "same"
        reason = f"{v.reason}; {found.describe()}"
        variants.append(replace(v, verdict=verdict, reason=reason, cause=found.cause, confirmation=found.as_dict()))
    return replace(comparison, variants=tuple(variants))
