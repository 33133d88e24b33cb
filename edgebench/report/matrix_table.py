"""The variant x accelerator table (compare/accelerator_matrix.py), for the terminal, markdown and HTML."""

from __future__ import annotations

from collections.abc import Sequence

from edgebench.compare.accelerator_matrix import MatrixCell
from edgebench.report.table import Column, DataTable


def matrix_table(cells: Sequence[MatrixCell], title: str) -> DataTable:
    columns = (
        Column("variant", "left"), Column("accelerator", "left"), Column("ran", "left"), Column("p50 ms"),
        Column("vs float32 here"), Column("vs CPU float32"), Column("SQNR dB"), Column("top-1 Δ pp"),
        Column("compile ms"),
    )  # fmt: skip
    rows, notes = [], []
    previous = None
    for cell in cells:
        variant = cell.variant if cell.variant != previous else ""
        previous = cell.variant
        if cell.status != "ok":
            rows.append((variant, cell.accelerator, cell.status, *("—",) * 6))
            notes.append(f"{cell.variant} on {cell.accelerator} {cell.status}: {cell.error}")
            continue
        unclaimed = cell.no_speed_claim is not None
        host = "†" if cell.fidelity_from_host else ""
        latency = f"{cell.p50_ms:.3f}" + ("*" if unclaimed else "")
        rows.append((
            variant, cell.accelerator, cell.placement, latency,
            _ratio(cell.speedup, unclaimed), _ratio(cell.speedup_vs_cpu, unclaimed),
            ("exact" if cell.fidelity_exact else _number(cell.sqnr_db, "{:.1f}")) + host,
            _number(cell.top1_delta_pp, "{:+.2f}") + host, _number(cell.compile_ms, "{:.0f}"),
        ))  # fmt: skip
    header = ["SQNR against float32's outputs on the CPU (the same reference in every column); "
              "'vs float32 here': float32 on the same accelerator"]  # fmt: skip
    shown = " (no speed-ups shown)"
    reasons = dict.fromkeys(f"* {c.no_speed_claim}{shown if c.software else ''}" for c in cells if c.no_speed_claim)
    header[:0] = list(reasons)
    if any(c.fidelity_from_host for c in cells):
        header.append("† top-1 and SQNR computed on this host's CPU on the same file: the device's benchmark binary "
                      "feeds random inputs and returns no outputs")  # fmt: skip
    notes += [f"{c.variant} on {c.accelerator}: the compiler gave every node back to the CPU: {c.fallback}"
              for c in cells if c.fallback]  # fmt: skip
    # Where the cell has no count (a GPU's runtime says only "not fully accelerated"); the CPU's is XNNPACK's.
    partly = [c for c in cells if c.status == "ok" and c.fully_accelerated is False and c.accelerator != "cpu"
              and not c.placement.startswith("all on CPU") and "nodes on" not in c.placement]  # fmt: skip
    if partly:
        notes.append(
            "some nodes on CPU: LiteRT's CompiledModel says only that the model is not fully accelerated, "
            "not which nodes fell back: " + ", ".join(f"{c.variant} on {c.accelerator}" for c in partly)
        )
    return DataTable(title, columns, tuple(rows), tuple(notes), tuple(header))


def matrix_title(model: str, device: str, accelerators) -> str:
    """'mnist on local-gpu: variant x gpu, cpu'."""
    return f"{model} on {device}: variant x {', '.join(a or 'interpreter' for a in accelerators)}"


def _ratio(value: float | None, software: bool) -> str:
    if software:
        return "no claim"
    return f"{value:.2f}x" if value else "—"


def _number(value: float | None, spec: str) -> str:
    return spec.format(value) if value is not None else "—"
