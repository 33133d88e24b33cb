"""What each plot of the HTML report shows, as plain data: pure functions from runs to numbers.

The renderer (report/plots.py, matplotlib) draws exactly these; the tests check these. Nothing
here is drawn, and nothing is invented: a figure a run does not have (per-sample latencies from
benchmark_model, a temperature the device does not report) is None, and the plot says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgebench.compare.profile_diff import operator_figures
from edgebench.compare.run_summary import RunSummaryView
from edgebench.results.store import RunData


@dataclass(frozen=True)
class Distribution:
    """One variant's latencies in one run: every sample (all rounds), or only the statistics a backend gave."""

    variant: str
    samples_us: tuple[float, ...] = ()
    stats: dict = field(default_factory=dict)  # p5/p50/p95/min/max/mean when there are no samples
    greyed: str | None = None  # why these latencies are not the hardware's (an emulator)

    @property
    def ecdf(self) -> tuple[np.ndarray, np.ndarray]:
        values = np.sort(np.asarray(self.samples_us, dtype=float))
        return values, np.arange(1, len(values) + 1) / max(len(values), 1)


def latency_distributions(run: RunData) -> list[Distribution]:
    emulated = run.record.emulated
    greyed = "emulated device: an emulator's latencies, not hardware" if emulated else None
    distributions = []
    for variant in run.variants():
        documents = run.ok(variant)
        if not documents:
            continue
        samples = tuple(s for d in documents for s in d["timing"].get("samples_us", []))
        stats = {} if samples else dict(documents[0]["timing"]["stats"])
        distributions.append(Distribution(variant, samples, stats, greyed))
    return distributions


def log_scale(distributions: Sequence[Distribution]) -> bool:
    """Log scale when the variants' medians differ by more than 10x (int16x8 next to int8)."""
    medians = [
        float(np.median(d.samples_us)) if d.samples_us else d.stats.get("p50")
        for d in distributions
        if d.samples_us or d.stats.get("p50")
    ]
    return bool(medians) and min(medians) > 0 and max(medians) / min(medians) > 10


@dataclass(frozen=True)
class TradeoffPoint:
    device: str
    variant: str
    size_ratio: float  # float32 bytes / these bytes
    speedup: float
    accuracy_delta_pp: float | None
    sqnr_db: float | None  # None: exact, or not measured
    greyed: str | None = None


def tradeoff_points(views: Sequence[RunSummaryView]) -> list[TradeoffPoint]:
    """Speed-up against size reduction, one point per measured variant per device."""
    points = []
    for view in views:
        greyed = view.no_speed_claims  # "emulated" or "software GPU": their speed is not the hardware's
        for v in view.variants:
            if v.status == "ok" and v.size_ratio is not None and v.speedup is not None:
                points.append(
                    TradeoffPoint(
                        view.device,
                        v.name,
                        v.size_ratio,
                        v.speedup,
                        v.top1_delta_pp,
                        None if v.fidelity_exact else v.sqnr_db,
                        greyed,
                    )
                )
    return points


@dataclass(frozen=True)
class Heatmap:
    title: str
    rows: tuple[str, ...]  # devices
    columns: tuple[str, ...]  # variants
    values: tuple[tuple[float | None, ...], ...]
    unit: str


def farm_heatmaps(cells: Sequence) -> list[Heatmap]:
    """Device x variant speed-up, and fidelity (SQNR dB, exact shown as the best finite value), from farm cells."""
    devices = tuple(dict.fromkeys(c.device for c in cells))
    variants = tuple(dict.fromkeys(c.variant for c in cells))
    by_key = {(c.device, c.variant): c for c in cells}

    def matrix(value) -> tuple[tuple[float | None, ...], ...]:
        return tuple(tuple(value(by_key.get((d, v))) for v in variants) for d in devices)

    speedup = matrix(lambda c: c.speedup if c and c.status == "ok" else None)
    sqnr = matrix(lambda c: (math.inf if c.fidelity_exact else c.sqnr_db) if c and c.status == "ok" else None)
    maps = [Heatmap("speed-up against float32", devices, variants, speedup, "×")]
    if any(value is not None for row in sqnr for value in row):
        maps.append(Heatmap("fidelity against float32 (SQNR)", devices, variants, sqnr, "dB"))
    return maps


@dataclass(frozen=True)
class HistoryPoint:
    run_id: str
    started_at: str
    p50_us: float
    low_us: float | None  # 95% interval of the median (order statistics); None without samples
    high_us: float | None
    regression: bool = False  # slower than the previous run by more than the threshold
    change_point: bool = False  # the first run of a level that held for the runs after it


def median_interval(samples: Sequence[float]) -> tuple[float, float] | None:
    """Distribution-free 95% interval of the median: order statistics n/2 -/+ 1.96 sqrt(n)/2."""
    n = len(samples)
    if n < 6:
        return None
    ordered = sorted(samples)
    half = 1.96 * math.sqrt(n) / 2
    return ordered[max(0, math.floor(n / 2 - half))], ordered[min(n - 1, math.ceil(n / 2 + half))]


def history_series(runs: Sequence[RunData], variant: str, threshold: float) -> list[HistoryPoint]:
    """One variant's p50 over the runs (oldest first), with intervals, regressions and change points."""
    points: list[HistoryPoint] = []
    for run in runs:
        figure = run.latency(variant)
        if figure is None:
            continue
        samples = [s for d in run.ok(variant) for s in d["timing"].get("samples_us", [])]
        interval = median_interval(samples)
        previous = points[-1].p50_us if points else None
        regression = previous is not None and figure.p50_us > previous * (1 + threshold)
        points.append(
            HistoryPoint(
                run.run_id,
                run.record.started_at,
                figure.p50_us,
                interval[0] if interval else None,
                interval[1] if interval else None,
                regression,
            )
        )
    return _mark_change_points(points, threshold)


def _mark_change_points(points: list[HistoryPoint], threshold: float) -> list[HistoryPoint]:
    """Binary segmentation on absolute deviations from each side's median (robust to a single outlier run): the
    best split of a stretch is a change point when the two sides' medians differ by more than the threshold;
    each side is then searched again. A side needs two runs at least."""
    values = [p.p50_us for p in points]
    found: list[int] = []

    def cost(part):
        middle = float(np.median(part))
        return sum(abs(v - middle) for v in part)

    def search(start: int, stop: int) -> None:
        if stop - start < 4:
            return
        best = min(range(start + 2, stop - 1), key=lambda i: cost(values[start:i]) + cost(values[i:stop]))
        before, after = float(np.median(values[start:best])), float(np.median(values[best:stop]))
        if before > 0 and abs(after / before - 1) > threshold:
            found.append(best)
            search(start, best)
            search(best, stop)

    search(0, len(values))
    return [HistoryPoint(**{**p.__dict__, "change_point": i in found}) for i, p in enumerate(points)]


@dataclass(frozen=True)
class ThermalPoint:
    variant: str
    round: int
    started_unix: float | None
    before_c: float | None
    after_c: float | None
    cur_mhz: float | None  # the measured CPUs' mean current frequency, when the agent read it


def thermal_series(run: RunData) -> list[ThermalPoint]:
    """Temperature before and after each measurement, and the CPU frequency, in the order they ran."""
    points = []
    for m in run.measurements:
        if m.status != "ok" or not m.document:
            continue
        thermal = m.document.get("thermal") or {}
        frequencies = [
            f.get("cur_mhz")
            for f in (m.document.get("environment", {}).get("cpufreq") or {}).values()
            if isinstance(f, dict) and f.get("cur_mhz")
        ]
        points.append(
            ThermalPoint(
                m.variant,
                m.round,
                m.document.get("started_unix"),
                thermal.get("before_c"),
                thermal.get("after_c"),
                float(np.mean(frequencies)) if frequencies else None,
            )
        )
    points.sort(key=lambda p: (p.started_unix is None, p.started_unix or 0))
    return points


def has_readings(points: Sequence[ThermalPoint]) -> bool:
    return any(p.before_c is not None or p.after_c is not None or p.cur_mhz is not None for p in points)


@dataclass(frozen=True)
class OperatorShares:
    """One variant's time by operator type (from --profile), and how many of its nodes ran where."""

    label: str  # "variant on device"
    microseconds: dict  # operator type -> summed time
    placement: str  # "XNNPACK 7 of 7 nodes, 1 partition"


def operator_shares(views: Sequence[RunSummaryView]) -> list[OperatorShares]:
    shares = []
    for view in views:
        for v in view.variants:
            by_type: dict[str, float] = {}
            for figure in operator_figures(v.operators):
                by_type[figure.op] = by_type.get(figure.op, 0.0) + figure.microseconds
            if not by_type:
                continue
            p = v.placement or {}
            where = (f"{p['delegate']} {p['delegated']} of {p['nodes']} nodes, {p['partitions']} partition"
                     f"{'s' if p['partitions'] != 1 else ''}" if "nodes" in p else "placement not read")  # fmt: skip
            shares.append(OperatorShares(f"{v.name} on {view.device}", by_type, where))
    return shares


def layer_series(views: Sequence[RunSummaryView]) -> dict[str, list[tuple[str, float | None]]]:
    """'variant on device' -> [(layer label, SQNR dB), ...] in execution order, from --profile."""
    series = {}
    for view in views:
        for v in view.variants:
            layers = (v.layers or {}).get("layers") or []
            if layers and v.name != "float32":
                series[f"{v.name} on {view.device}"] = [(f"{x['op']} #{x['index']}", x["sqnr_db"]) for x in layers]
    return series
