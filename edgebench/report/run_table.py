"""A run's summary -> the comparison table `edgebench run` prints."""

from __future__ import annotations

from edgebench.report.table import Column, DataTable
from edgebench.summary import RunSummaryView, VariantSummary

COLUMNS = (
    Column("variant", "left"),
    Column("bytes"),
    Column("smaller by"),
    Column("load ms"),
    Column("p50 ms"),
    Column("p90 ms"),
    Column("speed-up"),
    Column("peak MB"),
    Column("Δ MB"),
    Column("top-1 (95% CI)"),
    Column("Δ pp"),
    Column("agrees"),
)


def run_table(view: RunSummaryView, title: str) -> DataTable:
    header = [
        f"device {view.device}"
        + (f" ({view.machine}, {view.cpu})" if view.cpu else "")
        + (f" · {view.runtime}" if view.runtime else "")
        + (f" · Python {view.python} · numpy {view.numpy}" if view.python else "")
        + (f" · {view.threads} thread{'s' if view.threads != 1 else ''}" if view.threads else "")
        + _temperatures(view.temperature_c)
    ]
    if view.emulated:
        header.append("EMULATED device: latencies come from an emulator, not hardware; accuracy and memory still hold")
    rows, notes = [], []
    for variant in view.variants:
        rows.append(_row(variant))
        if variant.status != "ok":
            notes.append(f"{variant.name} failed: {variant.error}")
        notes.extend(f"warning: {w}" for w in variant.warnings)
    return DataTable(title, COLUMNS, tuple(rows), tuple(notes), tuple(header))


def _row(v: VariantSummary) -> tuple[str, ...]:
    size = f"{v.size_bytes:,}" if v.size_bytes else "—"
    ratio = _fmt(v.size_ratio, "{:.2f}x")
    if v.status != "ok":
        return (v.name, size, ratio, "failed", *("—",) * 8)
    accuracy = "—"
    if v.top1 is not None:
        accuracy = f"{v.top1:.4f}"
        if v.top1_interval:
            accuracy += f" ({v.top1_interval[0]:.4f}–{v.top1_interval[1]:.4f})"
    return (
        v.name,
        size,
        ratio,
        _fmt(v.load_ms, "{:.1f}"),
        _fmt(v.p50_ms, "{:.3f}"),
        _fmt(v.p90_ms, "{:.3f}"),
        _fmt(v.speedup, "{:.2f}x"),
        _fmt(v.peak_rss_mb, "{:.1f}"),
        _fmt(v.peak_delta_mb, "{:+.1f}"),
        accuracy,
        _fmt(v.top1_delta_pp, "{:+.2f}"),
        _fmt(v.agreement * 100 if v.agreement is not None else None, "{:.2f}%"),
    )


def _fmt(value, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def _temperatures(pair) -> str:
    before, after = pair
    if before is None and after is None:
        return " · temperature not readable"
    return f" · {before:.1f} → {after:.1f} °C" if before is not None and after is not None else ""
