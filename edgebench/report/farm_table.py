"""A farm summary -> the device x variant matrix, and the list of what regressed or could not be judged."""

from __future__ import annotations

from edgebench.farm.summary import Cell, FarmSummary
from edgebench.report.run_table import format_latency
from edgebench.report.table import Column, DataTable

EXIT_MEANING = {0: "fine", 1: "REGRESSION", 2: "cannot tell (see below)"}


def farm_matrix(summary: FarmSummary) -> DataTable:
    """One row per device (and model), one column per variant; each cell: speed-up vs float32, p50, Δ peak memory,
    Δ top-1 (or SQNR when there are no labels), and the verdict when it is not 'same'."""
    several_models = len(summary.models) > 1
    columns = (Column("device", "left"), *((Column("model", "left"),) if several_models else ()),
               Column("state", "left"), *(Column(v, "left") for v in summary.variants))  # fmt: skip
    rows = []
    for device in summary.devices:
        for model in summary.models:
            cells = {c.variant: c for c in device.cells if c.model == model}
            name = device.name + (" (emulated)" if device.emulated else "") + (" (*)" if device.no_speed_claims else "")
            first = (name, model) if several_models else (name,)
            rows.append((*first, device.state, *(_cell(cells.get(v)) for v in summary.variants)))
    header = (
        f"farm run {summary.farm_run} · {summary.status} · baseline {summary.policy}, threshold "
        f"{summary.threshold:.0%} · verdict: {EXIT_MEANING[summary.exit_code]} (exit {summary.exit_code})",
        "cell: speed-up vs float32 · p50 · Δ peak memory vs float32 · Δ top-1 (or SQNR) · verdict vs baseline",
    )
    notes = [f"REGRESSION {_where(c)}: {_regression(c)}" for c in summary.regressions]
    notes += [f"cannot tell: {line}" for line in summary.undecided]
    notes += list(summary.notes)
    notes += [f"{d.name}: emulated: its latencies are an emulator's, not a board's" for d in summary.devices
              if d.emulated]  # fmt: skip
    notes += [f"{d.name} (*): {label}" for d in summary.devices for label in d.no_speed_claims]
    return DataTable(f"Farm {summary.farm_run}", columns, tuple(rows), tuple(notes), header)


def _cell(cell: Cell | None) -> str:
    if cell is None:
        return "—"
    if cell.status != "ok":
        return cell.status + (f" (attempt {cell.attempt})" if cell.attempt > 1 else "")
    parts = [f"{cell.speedup:.2f}×" if cell.speedup is not None else "—", format_latency(cell.p50_ms)]
    if cell.variant != "float32":
        parts.append(f"{cell.peak_delta_mb:+.1f} MB" if cell.peak_delta_mb is not None else "—")
        if cell.top1_delta_pp is not None:
            parts.append(f"{cell.top1_delta_pp:+.2f} pp")
        elif cell.fidelity_exact:
            parts.append("exact")
        elif cell.sqnr_db is not None:
            parts.append(f"{cell.sqnr_db:.1f} dB")
    if cell.verdict and cell.verdict != "same":
        parts.append(cell.verdict.upper() if cell.regression else cell.verdict)
    elif cell.regression:
        parts.append("REGRESSION")
    if cell.attempt > 1:
        parts.append(f"attempt {cell.attempt}")
    return " · ".join(parts)


def _where(cell: Cell) -> str:
    return f"{cell.device} {cell.model} {cell.variant}"


def _regression(cell: Cell) -> str:
    what = []
    if cell.verdict == "slower":
        extra = "".join(f"; {text}" for text in (cell.noise, cell.cause) if text)
        what.append(f"slower ({cell.verdict_reason}{extra})")
    if cell.memory == "more":
        what.append("more memory")
    if cell.accuracy == "worse":
        what.append("less accurate")
    return ", ".join(what) + f" [run {cell.run_id}]"


def device_states(summary: FarmSummary) -> DataTable:
    """One row per device: what happened to it tonight."""
    columns = (Column("device", "left"), Column("state", "left"), Column("measured"), Column("reason", "left"))
    rows = []
    for device in summary.devices:
        ok = sum(c.status == "ok" for c in device.cells)
        rows.append((device.name, device.state, f"{ok}/{len(device.cells)}", device.reason or ""))
    return DataTable("Devices", columns, tuple(rows))


def lab_status(title: str, rows: list[dict]) -> DataTable:
    """`farm status`: one row per job of a submitted farm run, as the broker sees it."""
    names = ("lab", "device", "model", "state", "detail")
    columns = tuple(Column(name, "left") for name in names)
    return DataTable(title, columns, tuple(tuple(str(row[name]) for name in names) for row in rows))
