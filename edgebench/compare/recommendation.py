"""The one line under a run's table that answers the user's question: which variant to ship on this device.

"Within tolerance" is judged on what the run measured: top-1 within the run's accuracy tolerance of float32 where
there are labels, else outputs within FIDELITY_FLOOR_DB of float32's (SQNR), else nothing is claimed about
accuracy. Variants whose figures carry a runtime warning (wrong on this runtime, disagreeing with float32)
are never recommended, and are named among those to avoid with the reason.
"""

from __future__ import annotations

from edgebench.compare.run_summary import RunSummaryView, VariantSummary

FIDELITY_FLOOR_DB = 20.0  # without labels: outputs at least this close to float32's (typical of good int8)
SLOW_SPEEDUP = 0.5  # at or below this speed-up a variant is twice as slow as float32: worth avoiding here
FASTER = 1.05  # a speed-up below this is not called faster: fresh processes differ by more than that
REFERENCE = "float32"


def _faithful(v: VariantSummary, tolerance_pp: float) -> tuple[bool, str | None]:
    """Whether the variant keeps float32's answers on this run's evidence, and why not."""
    if v.wrong_here:
        return False, "its figures are wrong on this runtime"
    if v.top1_delta_pp is not None:
        if round(v.top1_delta_pp, 6) < -tolerance_pp:  # -0.50 is within 0.5, whatever the float says
            return False, f"top-1 {v.top1_delta_pp:+.2f} pp"
        return True, None
    if v.fidelity_exact:
        return True, None
    if v.sqnr_db is not None:
        if v.sqnr_db < FIDELITY_FLOOR_DB:
            return False, f"outputs {v.sqnr_db:.1f} dB from float32's"
        return True, None
    return True, None


def recommend(view: RunSummaryView) -> str | None:
    """'on <device>: smallest … ; fastest … ; avoid …', or None when no variant beside float32 was measured."""
    measured = [v for v in view.variants if v.status == "ok" and v.name != REFERENCE]
    if not measured:
        return None
    judged = {v.name: _faithful(v, view.accuracy_tolerance_pp) for v in measured}
    keep = [v for v in measured if judged[v.name][0]]
    if any(v.top1_delta_pp is not None for v in measured):
        basis = f"top-1 within {view.accuracy_tolerance_pp:g} pp of float32"
    elif any(v.sqnr_db is not None or v.fidelity_exact for v in measured):
        basis = f"outputs within {FIDELITY_FLOOR_DB:g} dB of float32"
    else:
        basis = "accuracy not measured"
    parts = []
    sized = [v for v in keep if v.size_ratio]
    if sized:
        small = max(sized, key=lambda v: (v.size_ratio, v.gzip_ratio or 0))  # equal bytes: the fewer gzipped
        parts.append(f"smallest: {small.name} ({small.size_ratio:.2f}x smaller, {_speed(small, view)})")
        # Pruning pays only compressed (its zeros are stored): on disk and over the air, say which is smallest.
        zipped = [v for v in keep if v.gzip_ratio and v.sparsity]
        if zipped:
            packed = max(zipped, key=lambda v: v.gzip_ratio)
            parts.append(f"smallest gzipped: {packed.name} ({packed.gzip_ratio:.2f}x smaller than float32 gzipped)")
    timed = [v for v in keep if v.speedup is not None]
    if timed and not view.no_speed_claims:
        fast = max(timed, key=lambda v: v.speedup)
        parts.append(f"fastest: {fast.name} ({fast.speedup:.2f}x float32's speed)" if fast.speedup >= FASTER else
                     "fastest: float32 (no variant is 5% faster here)")  # fmt: skip
    avoid = [f"{v.name} ({judged[v.name][1]})" for v in measured if not judged[v.name][0]]
    # Slow is a reason to avoid a variant only when it is not also the size pick: then it is a trade-off.
    avoid += [f"{v.name} ({v.speedup:.2f}x speed)" for v in keep if v.speedup is not None
              and v.speedup <= SLOW_SPEEDUP and not view.no_speed_claims and not (sized and v is small)]  # fmt: skip
    if avoid:
        parts.append("avoid: " + ", ".join(avoid))
    if not parts:
        return None
    where = f"on {view.device}" + (f" ({view.no_speed_claims}: no speed claims)" if view.no_speed_claims else "")
    return f"answer {where}, with {basis}: " + "; ".join(parts)


def _speed(v: VariantSummary, view: RunSummaryView) -> str:
    if view.no_speed_claims or v.speedup is None:
        return "speed not claimed"
    return f"{v.speedup:.2f}x speed"
