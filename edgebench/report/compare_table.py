"""A comparison of two runs, and the run history, as tables."""

from __future__ import annotations

from collections.abc import Sequence

from edgebench.compare.confirmation import Confirmation
from edgebench.compare.verdicts import RunComparison
from edgebench.history.index import HistoryRow
from edgebench.report.table import Column, DataTable

VERDICT_MARK = {"slower": "SLOWER", "faster": "faster", "same": "same", "not comparable": "not comparable"}


def compare_table(comparison: RunComparison) -> DataTable:
    header = (f"baseline {comparison.run_a} → candidate {comparison.run_b} · threshold {comparison.threshold:.0%}",)
    columns = (
        Column("variant", "left"), Column("p50 ms A"), Column("p50 ms B"), Column("B/A p50"), Column("B/A mean"),
        Column("p"),
        Column("latency", "left"), Column("Δ peak MB"), Column("memory", "left"), Column("top-1 A → B"),
        Column("accuracy", "left"), Column("file", "left"),
    )  # fmt: skip
    if not comparison.comparable:
        notes = tuple(f"not comparable: {reason}" for reason in comparison.not_comparable)
        return DataTable("Comparison", columns, (), notes, header)
    rows, notes = [], []
    for v in comparison.variants:
        if v.verdict == "not comparable":
            rows.append((v.variant, *("—",) * 5, "not comparable", *("—",) * 4, v.size))
            notes.append(f"{v.variant}: {v.reason}")
            continue
        accuracy = f"{v.top1_a:.4f} → {v.top1_b:.4f}" if v.top1_a is not None and v.top1_b is not None else "—"
        memory = f"{v.memory_delta_bytes / 1e6:+.1f}" if v.memory_delta_bytes is not None else "—"
        rows.append((
            v.variant, f"{v.p50_a_us / 1000:.3f}", f"{v.p50_b_us / 1000:.3f}", f"{v.ratio:.3f}",
            f"{v.mean_ratio:.3f}", f"{v.p_value:.2g}",
            VERDICT_MARK[v.verdict], memory, v.memory, accuracy, v.accuracy, v.size,
        ))  # fmt: skip
        if v.regression:
            notes.append(f"REGRESSION {v.variant}: latency {v.verdict} ({v.reason}), memory {v.memory}, "
                         f"accuracy {v.accuracy}")  # fmt: skip
        if v.noise:
            notes.append(f"{v.variant}: {v.noise}")
        if v.cause:
            notes.append(f"{v.variant}: {v.cause}")
        notes += [f"{v.variant}: profile: {change}" for change in v.profile]
        if v.confirmation and v.verdict != "slower":  # a slower one says it in its REGRESSION line
            notes.append(f"{v.variant}: {Confirmation.from_dict(v.confirmation).describe()}")
        if v.accuracy in ("worse", "better") and v.accuracy_delta_pp:
            difference, low, high = v.accuracy_delta_pp
            notes.append(f"{v.variant}: top-1 {v.accuracy} by {difference:+.2f} points (95% interval {low:+.2f} to "
                         f"{high:+.2f}, Newcombe)")  # fmt: skip
    partial = [v.variant for v in comparison.variants if v.statistics_only]
    if partial:
        notes.append(f"{', '.join(partial)}: statistics only (benchmark_model gives no per-sample latencies): "
                     "p from Welch's t-test on mean, std and count; no stall test")  # fmt: skip
    notes += [f"passed over as baseline: {line}" for line in comparison.passed_over]
    if not comparison.regressions:
        notes.append("no regression")
    return DataTable("Comparison", columns, tuple(rows), tuple(notes), header)


def history_table(rows: Sequence[HistoryRow], threshold: float) -> DataTable:
    """Runs over time; the trend compares each p50 with the previous run of the same device, model and variant."""
    columns = (
        Column("started", "left"), Column("run", "left"), Column("device", "left"), Column("model", "left"),
        Column("variant", "left"),
        Column("runtime", "left"), Column("threads"), Column("p50 ms"), Column("trend"), Column("peak MB"),
        Column("top-1"),
    )  # fmt: skip
    previous: dict[tuple[str, str, str], float] = {}
    table_rows = []
    for row in rows:
        key = (row.device, row.model, row.variant)
        trend = "·"
        if row.p50_us is not None and key in previous:
            ratio = row.p50_us / previous[key]
            trend = "▲ slower" if ratio >= 1 + threshold else "▼ faster" if ratio <= 1 / (1 + threshold) else "="
        if row.p50_us is not None:
            previous[key] = row.p50_us
        table_rows.append((
            row.started_at, row.run_id, row.device, row.model, row.variant, row.runtime or "—",
            str(row.threads or "—"),
            f"{row.p50_us / 1000:.3f}" if row.p50_us is not None else row.status,
            trend, f"{row.peak_rss_bytes / 1e6:.1f}" if row.peak_rss_bytes else "—",
            f"{row.top1:.4f}" if row.top1 is not None else "—",
        ))  # fmt: skip
    notes = ("trend: ▲/▼ when p50 moved by the threshold or more since the previous run; a hint, "
             "'edgebench compare' decides",) if rows else ("no runs in the history index",)  # fmt: skip
    return DataTable("Run history", columns, tuple(table_rows), notes)
