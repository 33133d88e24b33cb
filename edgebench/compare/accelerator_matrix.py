"""A variant x accelerator matrix: the runs of one `--accelerator gpu,cpu` side by side. Pure functions.

Each accelerator is a run of its own (one value of the setting each); this puts every variant's row of every
run together: where it ran (all of it on the accelerator, partly back on the CPU, or refused), how fast, and how
faithful. Fidelity is against the same float32 reference outputs in every run (computed on the controller's CPU
with the interpreter), so a GPU that computes float32 in fp16, or an accelerator that is quietly wrong, shows
in SQNR as a variant does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgebench.compare.run_summary import REFERENCE, RunSummaryView, VariantSummary


@dataclass(frozen=True)
class MatrixCell:
    variant: str
    accelerator: str  # as asked for: "gpu", "cpu", "npu"; "interpreter" for a run without one
    status: str  # "ok", "refused", "failed", "skipped" (the variant's, in that run)
    placement: str  # in words: "all on GPU", "GPU, some nodes on CPU", "refused", ...
    run_id: str
    fully_accelerated: bool | None = None
    adapter: str | None = None  # the GPU the runtime picked
    software: bool = False  # a CPU pretending to be the accelerator
    # Why this cell's latency is no claim about the hardware ("software GPU", "emulated", a tool timing queued
    # work), in the words the run's table uses; None when it is one.
    no_speed_claim: str | None = None
    fidelity_from_host: bool = False  # top-1 and SQNR computed on the controller (a benchmark binary's run)
    p50_ms: float | None = None
    compile_ms: float | None = None  # compiling for the accelerator (what an app pays at start)
    speedup: float | None = None  # float32 on this accelerator / this, in the same run
    speedup_vs_cpu: float | None = None  # float32 on the matrix's CPU run / this; None where no claim can be made
    sqnr_db: float | None = None  # None with fidelity_exact: identical outputs
    fidelity_exact: bool = False
    top1_delta_pp: float | None = None  # against float32 on this accelerator
    error: str | None = None
    fallback: str | None = None  # why the accelerator's compiler gave every node back to the CPU


def matrix_cells(runs: Sequence[tuple[str, RunSummaryView]]) -> list[MatrixCell]:
    """(run id, view) of each run of the matrix, in its order -> cells, variant by variant, each variant's
    accelerators in the matrix's order."""
    cpu = next((view for _, view in runs if view.accelerator == "cpu" and not view.no_speed_claims), None)
    cpu_float32 = _row(cpu, REFERENCE) if cpu else None
    cpu_p50 = cpu_float32.p50_ms if cpu_float32 and cpu_float32.status == "ok" else None
    names = list(dict.fromkeys(row.name for _, view in runs for row in view.variants))
    cells = []
    for name in names:
        for run_id, view in runs:
            row = _row(view, name)
            if row is not None:
                cells.append(_cell(row, view, run_id, cpu_p50))
    return cells


def _row(view: RunSummaryView, name: str) -> VariantSummary | None:
    return next((row for row in view.variants if row.name == name), None)


def _cell(row: VariantSummary, view: RunSummaryView, run_id: str, cpu_p50: float | None) -> MatrixCell:
    accelerator = view.accelerator or "interpreter"
    placement = row.placement or {}
    fully = placement.get("fully_accelerated")
    software = bool(placement.get("software"))
    base = {"variant": row.name, "accelerator": accelerator, "status": row.status, "run_id": run_id,
            "error": row.error}  # fmt: skip
    if row.status != "ok":
        return MatrixCell(placement=row.status, **base)
    claims = not view.no_speed_claims
    why = view.speed_caveat or view.no_speed_claims
    return MatrixCell(
        no_speed_claim=None if claims else why,
        fidelity_from_host=str(view.sources.get("fidelity", "")).startswith("host"),
        placement=_placement_words(accelerator, fully, software, placement.get("nodes")),
        fully_accelerated=fully,
        adapter=placement.get("adapter"),
        software=software,
        p50_ms=row.p50_ms,
        compile_ms=row.compile_ms,
        fallback=placement.get("fallback"),
        speedup=row.speedup if claims else None,
        speedup_vs_cpu=cpu_p50 / row.p50_ms if claims and cpu_p50 and row.p50_ms else None,
        sqnr_db=row.sqnr_db,
        fidelity_exact=row.fidelity_exact,
        top1_delta_pp=row.top1_delta_pp,
        **base,
    )


def _placement_words(accelerator: str, fully: bool | None, software: bool, nodes: dict | None) -> str:
    if accelerator in ("interpreter", "cpu"):
        # LiteRT's CPU accelerator is XNNPACK; what it does not take runs on the builtin kernels (int4 weights).
        return "CPU (not all on XNNPACK)" if fully is False and accelerator == "cpu" else "CPU"
    name = accelerator.upper() + (" (software)" if software else "")
    if fully is None:
        return name
    if fully:
        return f"all on {name}"
    if nodes and nodes["accelerated"] == 0:
        return f"all on CPU ({name} compile failed)"
    if nodes:  # a vendor compiler plugin's count (an NPU's); a GPU's runtime says only "not fully"
        return f"{nodes['accelerated']} of {nodes['total']} nodes on {name}, rest CPU"
    return f"{name}, some nodes on CPU"
