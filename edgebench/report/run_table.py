"""A run's summary -> the comparison table `edgebench run` prints."""

from __future__ import annotations

import dataclasses

from edgebench.compare.recommendation import recommend
from edgebench.compare.run_summary import RunSummaryView, VariantSummary, summarize
from edgebench.report.table import Column, DataTable
from edgebench.results.record import RunRecord

BASE_COLUMNS = (
    Column("variant", "left"),
    Column("bytes"),
    Column("smaller by"),
    Column("load ms"),
    Column("p50"),
    Column("p90"),
    Column("speed-up"),
    Column("peak MB"),
    Column("Δ MB"),
)
ACCURACY_COLUMNS = (Column("top-1 (95% CI)"), Column("Δ pp"), Column("agrees"))
FIDELITY_COLUMNS = (Column("SQNR dB"), Column("cosine"), Column("max |err|"))


def run_title(record: RunRecord, view: RunSummaryView) -> str:
    return f"{record.model_name} on {view.device} — run {record.run_id}"


def shown_run(record: RunRecord, measurements) -> tuple[RunSummaryView, DataTable]:
    """A run read back -> its per-variant view and the table `edgebench run` prints of it."""
    view = summarize(record, measurements)
    return view, run_table(view, run_title(record, view))


def run_table(view: RunSummaryView, title: str) -> DataTable:
    header = [
        f"device {view.device}"
        + (f" ({view.machine}, {view.cpu})" if view.cpu else "")
        + (f" · {view.runtime}" if view.runtime else "")
        + (f" · Python {view.python} · numpy {view.numpy}" if view.python else "")
        + (f" · {view.threads} thread{'s' if view.threads != 1 else ''}" if view.threads else "")
        + _rounds(view)
        + _temperatures(view.temperature_c)
    ]
    if view.sources:
        header.append(
            f"latency and memory: {view.sources.get('latency', '?')} (statistics only: no per-sample latencies, "
            "no p90)" + (f"; accuracy and fidelity: {view.sources['accuracy']}" if view.sources.get("accuracy") else "")
        )
    if view.emulated:
        header.append("EMULATED device: latencies come from an emulator, not hardware; accuracy and memory still hold")
    if view.unlabelled_dataset:
        header.append(f"no accuracy: {view.unlabelled_dataset} has no 'y' labels (inputs only); add one integer "
                      "class label per sample for top-1")  # fmt: skip
    with_accuracy = any(v.top1 is not None for v in view.variants)
    with_fidelity = any(v.fidelity_outputs for v in view.variants)
    if with_fidelity:
        header.append(f"fidelity against float32 outputs on {view.fidelity}; worst output tensor shown")
    columns = BASE_COLUMNS + (ACCURACY_COLUMNS if with_accuracy else ()) + (FIDELITY_COLUMNS if with_fidelity else ())
    rows, notes = [], []
    for variant in view.variants:
        cells = _row(variant)
        if with_accuracy:
            cells += _accuracy_cells(variant)
        if with_fidelity:
            cells += _fidelity_cells(variant)
        rows.append(cells)
        notes.extend(f"{variant.name}: {note}" for note in variant.notes)
        if variant.status == "failed":
            notes.append(f"{variant.name} failed: {variant.error}")
        elif variant.status == "skipped":
            notes.append(f"{variant.name} skipped: {variant.error}")
        notes.extend(f"warning: {w}" for w in variant.warnings)
    notes.extend(_published_notes(view))
    notes.extend(_fidelity_notes(view))
    notes.extend(_tail_notes(view))
    answer = recommend(view)
    if answer:
        notes.append(answer)  # last: the line a user reads first after the table
    return DataTable(title, columns, tuple(rows), tuple(notes), tuple(header))


# What fits 80 columns and answers the usual question: how much smaller, how fast, how much memory, how faithful.
COMPACT_COLUMNS = ("variant", "smaller by", "p50", "speed-up", "peak MB", "Δ pp", "SQNR dB")
# The full table needs about this many columns of terminal; below it the compact one is shown (--wide: always full).
FULL_TABLE_WIDTH = 180


def compact(table: DataTable, columns: tuple[str, ...] = COMPACT_COLUMNS) -> DataTable:
    """The run table with only `columns` (those it has, in its own order); a variant that was not measured says
    so in its p50 cell, since the column that said it (load ms) may be gone."""
    wanted = {c.lower() for c in columns}
    keep = [i for i, c in enumerate(table.columns) if c.header.lower() in wanted]
    headers = [table.columns[i].header for i in keep]
    status_at = next((i for i, c in enumerate(table.columns) if c.header == "load ms"), None)
    rows = []
    for row in table.rows:
        cells = [row[i] for i in keep]
        if status_at is not None and "p50" in headers and row[status_at] in ("failed", "skipped"):
            cells[headers.index("p50")] = row[status_at]
        rows.append(tuple(cells))
    return dataclasses.replace(table, columns=tuple(table.columns[i] for i in keep), rows=tuple(rows))


def _published_notes(view: RunSummaryView) -> list[str]:
    """Where the float32 row is a reference unfolded from the user's file (float16-stored weights, sparse, old
    operator codes), the sizes against the file the user actually has."""
    given = view.given_bytes
    reference = next((v for v in view.variants if v.name == "float32"), None)
    if not given or reference is None or not reference.size_bytes or reference.size_bytes == given:
        return []
    ratios = ", ".join(f"{v.name} {given / v.size_bytes:.2f}x" for v in view.variants if v.size_bytes)
    return [f"smaller than your file ({given:,} bytes): {ratios}"]


def _fidelity_notes(view: RunSummaryView) -> list[str]:
    """With several outputs: which tensor each worst figure comes from, and which outputs were left out."""
    notes = []
    for v in view.variants:
        if len(v.fidelity_outputs) < 2 or v.fidelity_exact or not v.fidelity_worst:
            continue
        worst = v.fidelity_worst
        parts = [f"SQNR '{worst['sqnr']}'"] if worst.get("sqnr") else []
        parts += [f"cosine '{worst['cosine']}'", f"max |err| '{worst['max_abs_error']}'"]
        line = f"{v.name} fidelity, worst output per column: {', '.join(parts)}"
        if v.fidelity_left_out:
            line += f"; left out, negligible reference power: {', '.join(v.fidelity_left_out)}"
        notes.append(line)
    return notes


def _tail_notes(view: RunSummaryView) -> list[str]:
    """One line for the p90 column when every variant has one; a line for each variant that has none."""
    measured = [v for v in view.variants if v.p90_note]
    short = [v for v in measured if v.p90_ms is None]
    notes = [f"{v.name}: {v.p90_note}" for v in short]
    if len(short) < len(measured):
        notes.append("p90: MLPerf's early-stopping estimate at 99% confidence (the slowest runs past it are set aside; "
                     "64 timed runs per round at least)")  # fmt: skip
    return notes


def format_latency(ms: float | None) -> str:
    """Units that fit the number: µs below 1 ms, three significant digits either way (4.12 µs, 905 µs, 1.05 ms)."""
    if ms is None:
        return "—"
    us = ms * 1000
    if us < 999.5:
        return f"{_three_digits(us)} µs"
    return f"{_three_digits(ms)} ms" if ms < 999.5 else f"{ms:,.0f} ms"


def _three_digits(value: float) -> str:
    if value < 9.995:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 99.95 else f"{value:.0f}"


def _row(v: VariantSummary) -> tuple[str, ...]:
    size = f"{v.size_bytes:,}" if v.size_bytes else "—"
    ratio = _fmt(v.size_ratio, "{:.2f}x")
    if v.status != "ok":
        return (v.name, size, ratio, v.status, *("—",) * 5)
    return (
        v.name,
        size,
        ratio,
        _fmt(v.load_ms, "{:.1f}"),
        format_latency(v.p50_ms),
        format_latency(v.p90_ms),
        _fmt(v.speedup, "{:.2f}x"),
        _fmt(v.peak_rss_mb, "{:.1f}"),
        _fmt(v.peak_delta_mb, "{:+.1f}"),
    )


def _accuracy_cells(v: VariantSummary) -> tuple[str, str, str]:
    accuracy = "—"
    if v.top1 is not None:
        accuracy = f"{v.top1:.4f}"
        if v.top1_interval:
            accuracy += f" ({v.top1_interval[0]:.4f}–{v.top1_interval[1]:.4f})"
    agreement = _fmt(v.agreement * 100 if v.agreement is not None else None, "{:.2f}%")
    return (accuracy, _fmt(v.top1_delta_pp, "{:+.2f}"), agreement)


def _fidelity_cells(v: VariantSummary) -> tuple[str, str, str]:
    if not v.fidelity_outputs:
        return ("—", "—", "—")
    sqnr = "exact" if v.fidelity_exact else _fmt(v.sqnr_db, "{:.1f}")
    return (sqnr, f"{v.cosine:.5f}", f"{v.max_abs_error:.3g}")


def _fmt(value, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def _rounds(view: RunSummaryView) -> str:
    """How many fresh agent processes each variant's figures rest on (the rounds), when more than one."""
    rounds = max((v.rounds for v in view.variants), default=0)
    return f" · {rounds} rounds (fresh processes)" if rounds > 1 else ""


def _temperatures(pair) -> str:
    before, after = pair
    if before is None and after is None:
        return " · temperature not readable"
    return f" · {before:.1f} → {after:.1f} °C" if before is not None and after is not None else ""
