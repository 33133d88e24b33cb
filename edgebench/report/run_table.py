"""A run's summary -> the comparison table `edgebench run` prints."""

from __future__ import annotations

import collections
import dataclasses
import itertools

from edgebench.compare.profile_diff import operator_figures
from edgebench.compare.recommendation import recommend
from edgebench.compare.run_summary import RunSummaryView, VariantSummary, summarize
from edgebench.report.sizes import compressed_cells, sparse_path_note, sparsity_notes, zeros_cell
from edgebench.report.table import Column, DataTable
from edgebench.results.record import RunRecord

BASE_COLUMNS = (
    Column("variant", "left"),
    Column("bytes"),
    Column("smaller by"),
    Column("load ms"),
    Column("p50"),
    Column("p90"),
    Column("speed-up (95% CI)"),
    Column("peak MB"),
    Column("Δ MB"),
)
ACCURACY_COLUMNS = (Column("top-1 (95% CI)"), Column("samples"), Column("Δ pp (95% CI)"), Column("agrees"))
FIDELITY_COLUMNS = (Column("SQNR dB"), Column("cosine"), Column("max |err|"))
# After "smaller by": what each file weighs compressed (runs since compressed sizes were recorded), and the share
# of zeros when the run has pruned variants.
COMPRESSED_COLUMNS = (Column("gzip -9"), Column("zstd"), Column("gz smaller by"))
ZEROS_COLUMN = Column("zeros")
SIZE_AT = 3
# Short spellings a user may give to --columns for the columns whose header carries its interval.
COLUMN_ALIASES = {"speed-up": "speed-up (95% CI)", "Δ pp": "Δ pp (95% CI)", "top-1": "top-1 (95% CI)"}


def run_title(record: RunRecord, view: RunSummaryView) -> str:
    return f"{record.model_name} on {view.device} — run {record.run_id}"


def shown_run(record: RunRecord, measurements) -> tuple[RunSummaryView, DataTable]:
    """A run read back -> its per-variant view and the table `edgebench run` prints of it."""
    view = summarize(record, measurements)
    return view, run_table(view, run_title(record, view))


def run_table(view: RunSummaryView, title: str, dense: bool = False) -> DataTable:
    """The table of a run; `dense`: intervals as ± (the larger side), for the column sets that fit a terminal."""
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
    if view.asynchronous_timing:
        header.append(f"NO INFERENCE TIMES: {view.asynchronous_timing}")
    if view.software_accelerator:
        header.append(f"{view.speed_caveat} (a CPU runs the {view.accelerator or 'accelerator'}'s work)")
    if view.unlabelled_dataset:
        header.append(f"no accuracy: {view.unlabelled_dataset} has no 'y' labels (inputs only); add one integer "
                      "class label per sample for top-1")  # fmt: skip
    with_accuracy = any(v.top1 is not None for v in view.variants)
    with_fidelity = any(v.fidelity_outputs for v in view.variants)
    if with_fidelity:
        header.append(f"fidelity against float32 outputs on {view.fidelity}; worst output tensor shown")
    with_compressed = any(v.compressed for v in view.variants)
    with_zeros = any(v.sparsity for v in view.variants)
    sizes = (COMPRESSED_COLUMNS if with_compressed else ()) + ((ZEROS_COLUMN,) if with_zeros else ())
    columns = BASE_COLUMNS[:SIZE_AT] + sizes + BASE_COLUMNS[SIZE_AT:]
    columns += (ACCURACY_COLUMNS if with_accuracy else ()) + (FIDELITY_COLUMNS if with_fidelity else ())
    rows, notes = [], []
    for variant in view.variants:
        cells = _row(variant, dense)
        extra = compressed_cells(variant.compressed, variant.gzip_ratio) if with_compressed else ()
        extra += (zeros_cell(variant.sparsity),) if with_zeros else ()
        cells = cells[:SIZE_AT] + extra + cells[SIZE_AT:]
        if with_accuracy:
            cells += _accuracy_cells(variant, dense)
        if with_fidelity:
            cells += _fidelity_cells(variant)
        rows.append(cells)
        notes.extend(f"{variant.name}: {note}" for note in variant.notes)
        if variant.status == "failed":
            notes.append(f"{variant.name} failed: {variant.error}")
        elif variant.status in ("skipped", "refused"):
            notes.append(f"{variant.name} {variant.status}: {variant.error}")
        notes.extend(f"warning: {w}" for w in variant.warnings)
    notes.extend(sparsity_notes([(v.name, v.sparsity) for v in view.variants if v.sparsity]))
    notes.extend(_sparse_notes(view))
    notes.extend(_placement_notes(view))
    notes.extend(_layer_notes(view))
    notes.extend(_operator_notes(view))
    notes.extend(_accuracy_notes(view))
    notes.extend(_published_notes(view))
    notes.extend(_fidelity_notes(view))
    notes.extend(_tail_notes(view))
    answer = recommend(view)
    if answer:
        notes.append(answer)  # last: the line a user reads first after the table
    return DataTable(title, columns, tuple(rows), tuple(notes), tuple(header), dense)


# What fits 80 columns and answers the usual question: how much smaller, how fast, how much memory, how faithful.
COMPACT_COLUMNS = ("variant", "smaller by", "p50", "speed-up (95% CI)", "peak MB", "Δ pp (95% CI)", "SQNR dB")
# A run with pruned variants: smaller once compressed (quantization shows there too: int8 is 4x) and its zeros,
# in place of raw size and memory (pruning moves neither: the zeros are stored and loaded like any weight).
PRUNED_COMPACT_COLUMNS = ("variant", "gz smaller by", "zeros", "p50", "speed-up (95% CI)", "Δ pp (95% CI)",
                          "SQNR dB")  # fmt: skip
# From 120 columns: the tail, and what the accuracy change rests on.
MEDIUM_COLUMNS = (*COMPACT_COLUMNS, "p90", "samples", "agrees")
MEDIUM_WIDTH = 120
# The full table needs about this many columns of terminal (--wide: always full).
FULL_TABLE_WIDTH = 250


def fit(view: RunSummaryView, title: str, width: int) -> DataTable:
    """The run table laid out for a terminal this wide: every column, or the medium or the compact set."""
    if width >= FULL_TABLE_WIDTH:
        return run_table(view, title)
    pruned = any(v.sparsity for v in view.variants)
    small = PRUNED_COMPACT_COLUMNS if pruned else COMPACT_COLUMNS
    medium = (*small, "smaller by", "p90", "samples", "agrees") if pruned else MEDIUM_COLUMNS
    return compact(run_table(view, title, dense=True), medium if width >= MEDIUM_WIDTH else small)


def compact(table: DataTable, columns: tuple[str, ...] = COMPACT_COLUMNS) -> DataTable:
    """The run table with only `columns` (those it has, in its own order), drawn without column rules so that
    it fits 80 columns (build it dense: intervals as ±); a variant that was not measured says so in its p50
    cell, since the column that said it (load ms) may be gone."""
    wanted = {COLUMN_ALIASES.get(c, c).lower() for c in columns}
    keep = [i for i, c in enumerate(table.columns) if c.header.lower() in wanted]
    headers = [table.columns[i].header for i in keep]
    status_at = next((i for i, c in enumerate(table.columns) if c.header == "load ms"), None)
    rows = []
    for row in table.rows:
        cells = [row[i] for i in keep]
        if status_at is not None and "p50" in headers and row[status_at] in ("failed", "skipped", "refused"):
            cells[headers.index("p50")] = row[status_at]
        rows.append(tuple(cells))
    shown = tuple(
        dataclasses.replace(table.columns[i], header=_SHORT.get(h, h)) for i, h in zip(keep, headers, strict=True)
    )
    return dataclasses.replace(table, columns=shown, rows=tuple(rows), dense=True)


_SHORT = {"speed-up (95% CI)": "speed-up", "Δ pp (95% CI)": "Δ pp", "smaller by": "smaller",
          "gz smaller by": "gz smaller"}  # fmt: skip


def _speedup_cell(v: VariantSummary, dense: bool) -> str:
    """'1.16x (1.10–1.22)', or dense '1.16x ±5%' (the larger side, as a share of the ratio)."""
    cell = _fmt(v.speedup, "{:.2f}x")
    if not v.speedup_interval or v.name == "float32" or v.speedup is None:
        return cell
    low, high = v.speedup_interval
    if not dense:
        return f"{cell} ({low:.2f}–{high:.2f})"
    share = max(high - v.speedup, v.speedup - low) / v.speedup * 100
    return f"{cell} ±{share:.0f}%" if share >= 0.5 else f"{cell} ±<1%"


def _delta_cell(v: VariantSummary, dense: bool) -> str:
    """'+0.10 (-0.20, +0.40)', or dense '+0.10 ±0.30' (the larger side)."""
    cell = _fmt(v.top1_delta_pp, "{:+.2f}")
    if not v.top1_delta_interval or v.top1_delta_pp is None:
        return cell
    low, high = v.top1_delta_interval
    if not dense:
        return f"{cell} ({low:+.2f}, {high:+.2f})"
    return f"{cell} ±{max(high - v.top1_delta_pp, v.top1_delta_pp - low):.2f}"


def progress_line(v: VariantSummary, no_speed_claims: str | None = None) -> str:
    """One variant's first figures, printed as its first round ends: 'int8: 3.96x smaller · 490 µs, 1.02x float32's
    speed · top-1 +0.00 ±0.38 pp (800 samples) · SQNR 16.8 dB'; no speed-up where the run makes no speed claim
    (an emulator, a software GPU)."""
    if v.status != "ok":
        return f"{v.name}: {v.status}: {v.error}"
    parts = [f"{v.size_ratio:.2f}x smaller" if v.size_ratio and v.name != "float32" else None]
    speed = f", {v.speedup:.2f}x float32's speed" if v.speedup is not None and v.name != "float32" else ""
    if no_speed_claims:
        speed = f" ({no_speed_claims}: no speed claim)"
    parts.append(f"{format_latency(v.p50_ms)}{speed}")
    if v.top1 is not None:
        if v.top1_delta_pp is not None and v.name != "float32":
            accuracy = f"top-1 {_delta_cell(v, dense=True)} pp"
        else:
            accuracy = f"top-1 {v.top1:.4f}"
        parts.append(f"{accuracy} ({v.evaluated:,} samples)")
    if v.fidelity_outputs:
        parts.append("outputs exact" if v.fidelity_exact else _fmt(v.sqnr_db, "SQNR {:.1f} dB"))
    return f"{v.name}: " + " · ".join(p for p in parts if p)


def _sparse_notes(view: RunSummaryView) -> list[str]:
    """For a file storing weights sparse: did the sparse kernels run? Its speed against its dense twin's."""
    from edgebench.quantize.variants import VARIANT_SPECS

    by_name = {v.name: v for v in view.variants}
    notes = []
    for v in view.variants:
        if v.status != "ok" or not (v.sparsity or {}).get("stored_sparse"):
            continue
        dense_name = VARIANT_SPECS[v.name].base if v.name in VARIANT_SPECS else None
        dense = by_name.get(dense_name)
        ratio = None
        if dense and dense.status == "ok" and v.p50_ms and dense.p50_ms:
            ratio = dense.p50_ms / v.p50_ms
        notes.append(sparse_path_note(v.name, dense_name or "the dense file", ratio, bool(view.no_speed_claims)))
    return notes


def _accelerator_notes(view: RunSummaryView) -> list[str]:
    """On a compiled model: which variants ran wholly on the accelerator, which had operators fall back to the
    CPU (as the runtime reports: is_fully_accelerated)."""
    placed = [v for v in view.variants if v.placement and "accelerator" in v.placement]
    if not placed:
        return []
    accelerator = placed[0].placement["accelerator"].upper()
    adapter = placed[0].placement.get("adapter")
    on = f"{accelerator}" + (f" ({adapter})" if adapter else "")
    whole = [v.name for v in placed if v.placement["fully_accelerated"]]
    notes = [f"placement: {on} took every operator of {', '.join(whole)}"] if whole else []
    for v in placed:
        if v.placement["fully_accelerated"] in (True, None):  # None: the tool did not say
            continue
        nodes = v.placement.get("nodes")  # a vendor compiler plugin's partitioning (an NPU's); a GPU says nothing
        if nodes and v.placement.get("fallback"):  # selected, then not compiled
            share = (f"all {nodes['total']} operators on the CPU: the {accelerator} compiler failed: "
                     f"{v.placement['fallback']}")  # fmt: skip
            notes.append(f"placement: {v.name}: {share}")
            continue
        share = (f"{nodes['accelerated']} of {nodes['total']} operators on the {accelerator}, the rest on the CPU"
                 if nodes else "some operators fell back to the CPU (the runtime says only that: is_fully_accelerated "
                 "is false)")  # fmt: skip
        notes.append(f"placement: {v.name}: {share}")
    return notes


def _placement_notes(view: RunSummaryView) -> list[str]:
    """Where each variant's nodes ran: every node on a delegate in one line per delegate, then each variant that
    left nodes to the runtime's builtin kernels, naming them where the agent listed them (int16x8's 15x is its
    whole graph outside XNNPACK), then any fallback a benchmark_model logged (a GPU delegate giving up)."""
    # A delegate's "Replacing N out of M node(s)" (not a compiled model's placement, which has "accelerator").
    placed = [v for v in view.variants if v.placement and "nodes" in v.placement and "accelerator" not in v.placement]
    fell_back = [v for v in view.variants if v.placement and v.placement.get("fallbacks")]
    if not placed and not fell_back:
        return _accelerator_notes(view)
    whole: dict[str, list[str]] = {}
    for v in placed:
        if v.placement["delegated"] == v.placement["nodes"]:
            whole.setdefault(v.placement["delegate"], []).append(v.name)
    notes = [f"placement: {delegate} took every node of {', '.join(names)}" for delegate, names in whole.items()]
    for v in placed:
        p = v.placement
        if p["delegated"] == p["nodes"]:
            continue
        left = collections.Counter(o["op"] for o in p.get("operators") or [] if o["on"] == "builtin")
        shown = ", ".join(f"{op} ×{n}" if n > 1 else op for op, n in left.items())
        taken = (f"{p['delegate']} took {p['delegated']} of {p['nodes']} nodes ({p['partitions']} partition"
                 f"{'s' if p['partitions'] != 1 else ''})" if p["delegate"] != "none" else "no delegate")  # fmt: skip
        notes.append(
            f"placement: {v.name}: {taken}" + (f"; on the runtime's builtin kernels: {shown}" if shown else "")
        )
    notes += [f"placement: {v.name}: {'; '.join(v.placement['fallbacks'])}" for v in fell_back]
    return notes


LAYER_FLOOR_DB = 20.0  # the first layer below this is where the precision goes (typical good int8 stays above)


def _layer_notes(view: RunSummaryView) -> list[str]:
    """With --profile: each variant's SQNR after each layer, and the first layer below LAYER_FLOOR_DB."""
    notes = []
    for v in view.variants:
        if not v.layers or v.name == "float32":
            continue
        if v.layers.get("error"):
            notes.append(f"layers: {v.name}: not measured ({v.layers['error']})")
            continue
        layers = v.layers.get("layers") or []
        if not layers:
            continue
        path = " → ".join(f"{x['op']} {'exact' if x['sqnr_db'] is None else format(x['sqnr_db'], '.1f')}"
                          for x in layers)  # fmt: skip
        low = next((x for x in layers if x["sqnr_db"] is not None and x["sqnr_db"] < LAYER_FLOOR_DB), None)
        where = (f"; first below {LAYER_FLOOR_DB:g} dB: {low['op']} #{low['index']} ('{low['tensor']}')" if low
                 else f"; every layer above {LAYER_FLOOR_DB:g} dB")  # fmt: skip
        drops = largest_drops(layers)
        if drops:
            where += "; most lost at " + ", ".join(f"{x['op']} #{x['index']} ({-drop:.1f} dB)" for x, drop in drops)
        operators = v.layers.get("operators")
        matched = (f"; only {len(layers)} of its {operators} operators matched a float32 tensor by name"
                   if operators and len(layers) < operators / 2 else "")  # fmt: skip
        notes.append(f"layers: {v.name} SQNR dB after each layer against float32 ({v.layers['samples']} inputs, "
                     f"builtin kernels): {path}{where}{matched}")  # fmt: skip
    return notes


TOP_OPERATORS = 4


def _operator_notes(view: RunSummaryView) -> list[str]:
    """With --profile: where each variant's time goes (the slowest few operators, with their share and kernel):
    from its single-operator probes, their sum beside the whole model's p50; or from benchmark_model's own
    per-node table. And what profiling cost."""
    notes, cost = [], 0.0
    for v in view.variants:
        profile = v.operators or {}
        cost += (profile.get("seconds") or 0) + ((v.layers or {}).get("seconds") or 0)
        if profile.get("error"):
            notes.append(f"time: {v.name}: no per-operator figures ({profile['error']})")
            continue
        timed = operator_figures(profile)
        if not timed:
            continue
        total = sum(f.microseconds for f in timed)
        top = sorted(timed, key=lambda f: -f.microseconds)[:TOP_OPERATORS]
        shown = ", ".join(f"{f.op} #{f.index} {format_latency(f.microseconds / 1000)} ({f.microseconds / total:.0%}, "
                          f"{f.on})" for f in top)  # fmt: skip
        if profile.get("probes"):
            line = (f"time: {v.name} per operator (each alone): {shown}; the {len(timed)} probes sum to "
                    f"{format_latency(total / 1000)} against the model's p50 {format_latency(v.p50_ms)}")  # fmt: skip
            failed = [p["probe"] for p in profile["probes"] if p.get("error")]
            line += f"; not timed: {', '.join(failed)}" if failed else ""
            line += _gap(total / 1000, v.p50_ms)
        else:
            line = f"time: {v.name} per node ({profile.get('source', 'the runtime')}, mean): {shown}"
        notes.append(line)
    if cost:
        notes.append(f"--profile took {cost:.1f} s of this run (per-layer error and per-operator times)")
    return notes


GAP_SHARE = 0.25  # probes' sum and the model's p50 further apart than this: the line says why they can differ


def _gap(probes_ms: float, model_ms: float | None) -> str:
    if not model_ms or abs(probes_ms / model_ms - 1) <= GAP_SHARE:
        return ""
    if probes_ms > model_ms:
        return (f" (alone they cost {probes_ms / model_ms - 1:.0%} more: each probe pays its own dispatch, input "
                "copy and cold caches, which the whole graph shares or fuses away)")  # fmt: skip
    return (f" (alone they cost {1 - probes_ms / model_ms:.0%} less: the whole graph pays for work between "
            "operators, such as layout changes and hand-offs between a delegate and the builtin kernels)")  # fmt: skip


def largest_drops(layers: list[dict], count: int = 2) -> list[tuple[dict, float]]:
    """The layers after which SQNR fell most from the layer before them (in execution order), each with its
    drop in dB (negative): where the precision goes, as against where it first crosses a line."""
    known = [x for x in layers if x["sqnr_db"] is not None]
    steps = [(after, after["sqnr_db"] - before["sqnr_db"]) for before, after in itertools.pairwise(known)]
    return sorted((step for step in steps if step[1] < -1.0), key=lambda step: step[1])[:count]


def _accuracy_notes(view: RunSummaryView) -> list[str]:
    """Which samples the top-1 figures rest on, where variants stopped once their change was settled."""
    settled = [v for v in view.variants if v.accuracy_settled]
    if not settled:
        return []
    reference = next((v for v in view.variants if v.name == "float32" and v.evaluated), None)
    everyone = f"float32 on all {reference.evaluated:,} samples; " if reference else ""
    return [
        f"accuracy: {everyone}{', '.join(v.name for v in settled)} in a fixed random order until the change against "
        f"float32 was known to within {view.accuracy_tolerance_pp:g} pp ('samples'; --samples all for every one): "
        "their top-1 is on those samples, and Δ pp compares with float32 on the same ones"
    ]


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


def _row(v: VariantSummary, dense: bool = False) -> tuple[str, ...]:
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
        _speedup_cell(v, dense),
        _fmt(v.peak_rss_mb, "{:.1f}"),
        _fmt(v.peak_delta_mb, "{:+.1f}"),
    )


def _accuracy_cells(v: VariantSummary, dense: bool = False) -> tuple[str, str, str, str]:
    accuracy = "—"
    if v.top1 is not None:
        accuracy = f"{v.top1:.4f}"
        if v.top1_interval:
            accuracy += f" ({v.top1_interval[0]:.4f}–{v.top1_interval[1]:.4f})"
    agreement = _fmt(v.agreement * 100 if v.agreement is not None else None, "{:.2f}%")
    return (accuracy, _fmt(v.evaluated, "{:,}"), _delta_cell(v, dense), agreement)


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
