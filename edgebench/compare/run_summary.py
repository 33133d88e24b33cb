"""One run's measurements -> per-variant comparison against float32. Pure functions.

With several rounds, latencies are the median of the per-round p50s and the
speed-up is the median of the per-round ratios float32 p50 / variant p50, so a
machine that drifts during the run does not bias one variant.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgebench.model.runtime_issues import runtime_issue
from edgebench.quantize.compressed import gzip_ratio
from edgebench.results.record import RunRecord
from edgebench.results.store import ASYNCHRONOUS_TIMING, FailureKind, Measurement, latency

REFERENCE = "float32"
# Quantization moves a handful of borderline predictions; a variant that agrees
# with float32 on fewer than this share is computing something else.
AGREEMENT_WARNING = 0.90


@dataclass(frozen=True)
class VariantSummary:
    name: str
    status: str  # "ok", "failed", "refused" (by the accelerator asked for), "skipped" (not made for this model)
    error: str | None = None
    size_bytes: int | None = None
    size_ratio: float | None = None  # float32 bytes / these bytes
    load_ms: float | None = None  # interpreter creation + allocate_tensors
    p50_ms: float | None = None
    p90_ms: float | None = None  # MLPerf early-stopping estimate (results/latency.py)
    p90_note: str | None = None  # what the p90 rests on, or how many runs it lacks
    speedup: float | None = None  # float32 p50 / this p50
    speedup_interval: tuple[float, float] | None = None  # 95%, over the rounds' ratios (fresh processes)
    rounds: int = 0
    peak_rss_mb: float | None = None
    peak_delta_mb: float | None = None  # against float32's peak
    top1: float | None = None
    top1_interval: tuple[float, float] | None = None
    top1_delta_pp: float | None = None
    top1_delta_interval: tuple[float, float] | None = None  # 95%, paired on the same samples (agent.settled_change)
    evaluated: int | None = None
    accuracy_settled: bool = False  # stopped once the change was settled, not on the whole set
    agreement: float | None = None  # share of predictions equal to float32's
    # Fidelity against the float32 reference outputs, worst output tensor first:
    sqnr_db: float | None = None  # lowest SQNR over the outputs; None when every output is exact
    cosine: float | None = None  # lowest mean cosine similarity over the outputs
    max_abs_error: float | None = None  # largest absolute error over all outputs
    fidelity_exact: bool = False
    fidelity_outputs: tuple[dict, ...] = field(default=())  # per output tensor, as the agent measured
    fidelity_worst: dict = field(default_factory=dict)  # column -> the output tensor its figure comes from
    fidelity_left_out: tuple[str, ...] = ()  # outputs of negligible reference power, not in the worst figures
    # Why this variant's figures cannot be trusted on this device's runtime (it disagrees with float32, or the
    # runtime is known to compute its recipe wrongly); None when nothing says so. The answer line reads it.
    wrong_here: str | None = None
    placement: dict | None = None  # which nodes the delegate took, as the agent read it from the interpreter
    layers: dict | None = None  # with --profile: per-layer SQNR against float32 (agent.layer_errors)
    operators: dict | None = None  # with --profile: each single-operator probe's time (agent.time_probes)
    weights: str = ""  # what the weights became, checked in the file
    notes: tuple[str, ...] = field(default=())  # how the file came to be
    warnings: tuple[str, ...] = field(default=())
    compressed: dict | None = None  # {"gzip": bytes, "zstd": bytes}; None in runs before compressed sizes
    reference_compressed: dict | None = None  # float32's, for the compressed ratio
    sparsity: dict | None = None  # pruned files: target, share of zeros, each tensor's
    compile_ms: float | None = None  # compiling for an accelerator alone (LiteRT's CompiledModel), within load_ms

    @property
    def gzip_ratio(self) -> float | None:
        return gzip_ratio(self.compressed, self.reference_compressed)


@dataclass(frozen=True)
class RunSummaryView:
    device: str
    emulated: bool
    runtime: str | None
    python: str | None
    numpy: str | None
    threads: int | None
    cpu: str | None
    machine: str | None
    temperature_c: tuple[float | None, float | None]
    variants: tuple[VariantSummary, ...]
    fidelity: str | None = None  # what the fidelity figures were measured on
    sources: dict = field(default_factory=dict)  # where each figure came from, when not all from the device's agent
    unlabelled_dataset: str | None = None  # a data set given without 'y' labels: no accuracy columns, and why
    given_bytes: int | None = None  # the user's own model file, where float32 is a reference normalized from it
    # A top-1 change smaller than this is no loss (the run's --accuracy-tolerance; older runs: the default).
    accuracy_tolerance_pp: float = 0.5
    accelerator: str | None = None  # LiteRT CompiledModel's accelerator ("gpu", "npu", "cpu"); None: interpreter
    software_accelerator: str | None = None  # the adapter, when the accelerator was a CPU pretending (SwiftShader)
    # Why latencies are no inference times though the hardware is real: a LiteRT tool timing queued GPU work.
    asynchronous_timing: str | None = None

    @property
    def no_speed_claims(self) -> str | None:
        """Why this run's latencies say nothing about the hardware, or None: an emulator, or a software GPU."""
        if self.emulated:
            return "emulated"
        if self.asynchronous_timing:
            return "queued, not finished, work timed"
        return f"software {(self.accelerator or 'accelerator').upper()}" if self.software_accelerator else None

    @property
    def software_label(self) -> str | None:
        """'SOFTWARE GPU (SwiftShader Device (Subzero))', 'SOFTWARE NPU (OpenVINO CPU device)': the accelerator's
        path ran on a CPU; None otherwise."""
        if not self.software_accelerator:
            return None
        return f"SOFTWARE {(self.accelerator or 'accelerator').upper()} ({self.software_accelerator})"

    @property
    def speed_caveat(self) -> str | None:
        """Why the latencies say nothing of the hardware, as the tables, reports and farm say it: a software
        accelerator, or a tool timing queued work; None otherwise (an emulator is said apart)."""
        if self.software_accelerator:
            return f"{self.software_label}: placement and fidelity are real, latency is not"
        return self.asynchronous_timing


def summarize(run: RunRecord, measurements: Sequence[Measurement]) -> RunSummaryView:
    by_variant: dict[str, list[Measurement]] = {}
    for measurement in measurements:
        by_variant.setdefault(measurement.variant, []).append(measurement)
    files = {v["name"]: v for v in run.variant_files}
    reference = [m for m in by_variant.get(REFERENCE, []) if m.status == "ok"]
    measured = [_variant(name, ms, files, reference) for name, ms in by_variant.items()]
    # Measured rows first, then the failed ones, then what could not be made.
    rows = tuple(sorted(measured, key=lambda row: row.status != "ok"))
    rows += tuple(VariantSummary(s["name"], "skipped", s["reason"]) for s in run.skipped)

    documents = [m.document for m in measurements if m.status == "ok" and m.document]
    environment = documents[0]["environment"] if documents else {}
    runtime = environment.get("runtime", {})
    temperatures = [d.get("thermal", {}) for d in documents]
    software = next((d["placement"].get("adapter") for d in documents if (d.get("placement") or {}).get("software")),
                    None)  # fmt: skip
    asynchronous = next((w["message"] for d in documents for w in d.get("warnings") or []
                         if isinstance(w, dict) and w.get("kind") == ASYNCHRONOUS_TIMING), None)  # fmt: skip
    return RunSummaryView(
        asynchronous_timing=asynchronous,
        accelerator=run.settings.get("accelerator"),
        software_accelerator=software,
        device=run.get("device", {}).get("name", "?"),
        emulated=bool(run.get("device", {}).get("emulated")),
        runtime=f"{runtime['name']} {runtime['version']}" if runtime else None,
        python=environment.get("python"),
        numpy=environment.get("numpy"),
        threads=run.settings.get("threads"),
        cpu=environment.get("cpu_model"),
        machine=environment.get("machine"),
        temperature_c=(
            temperatures[0].get("before_c") if temperatures else None,
            temperatures[-1].get("after_c") if temperatures else None,
        ),
        variants=rows,
        fidelity=(run.get("fidelity") or {}).get("description"),
        # The round-1 documents name the accuracy source too; later rounds only latency and memory.
        sources=max((d.get("sources") or {} for d in documents), key=len, default={}),
        unlabelled_dataset=(run.dataset or {}).get("path") if run.dataset and not run.dataset.get("labelled") else None,
        given_bytes=(run.get("model") or {}).get("bytes"),
        accuracy_tolerance_pp=run.settings.get("accuracy_tolerance", 0.5),
    )


def _variant(name: str, measurements: list[Measurement], files: dict, reference: list[Measurement]) -> VariantSummary:
    ok = [m for m in measurements if m.status == "ok"]
    file = files.get(name, {})
    size = file.get("bytes")
    reference_size = files.get(REFERENCE, {}).get("bytes")
    size_ratio = reference_size / size if size and reference_size else None
    made = {"weights": file.get("weights", ""), "notes": tuple(file.get("notes", ())),
            "compressed": file.get("compressed"), "reference_compressed": files.get(REFERENCE, {}).get("compressed"),
            "sparsity": file.get("sparsity")}  # fmt: skip
    if not ok:
        failed = next((m for m in measurements if m.status != "ok"), None)
        # Refused by the accelerator asked for: a finding about it, shown as such (not counted as a failure).
        status = "refused" if failed is not None and failed.kind == FailureKind.REFUSED else "failed"
        return VariantSummary(name, status, failed.error if failed else None, size, size_ratio, **made)

    first = ok[0].document
    figure = latency([m.document for m in ok])
    p50, p90 = figure.p50_us / 1000, figure.p90_us / 1000 if figure.p90_us is not None else None
    timing = first["timing"]
    load_ms = (timing["load_us"] + timing["allocate_us"]) / 1000
    peak = _peak(ok)

    speedup = peak_delta = None
    reference_by_round = {m.round: m.document for m in reference}
    ratios = [
        reference_by_round[m.round]["timing"]["stats"]["p50"] / m.document["timing"]["stats"]["p50"]
        for m in ok
        if m.round in reference_by_round
    ]
    if ratios:
        speedup = statistics.median(ratios)
    speedup_interval = ratio_interval(ratios)
    if reference and peak is not None and _peak(reference) is not None:
        peak_delta = peak - _peak(reference)

    accuracy = first.get("accuracy") or {}
    reference_accuracy = (reference[0].document.get("accuracy") or {}) if reference else {}
    top1 = accuracy.get("top1")
    delta_pp = agreement = delta_interval = None
    change = accuracy.get("change")
    if change and change.get("samples"):
        # Measured by the agent on the same samples as float32's: paired, with its interval.
        delta_pp, delta_interval = change["delta_pp"], tuple(change["interval_pp"])
        agreement = change["agrees"] / change["samples"]
    else:
        if top1 is not None and reference_accuracy.get("top1") is not None:
            delta_pp = (top1 - reference_accuracy["top1"]) * 100
        mine, theirs = accuracy.get("predictions"), reference_accuracy.get("predictions")
        if mine and theirs:
            count = min(len(mine), len(theirs))
            agreement = sum(a == b for a, b in zip(mine[:count], theirs[:count], strict=True)) / count

    fidelity = _fidelity(first.get("fidelity"))
    warnings = []
    wrong_here = None
    if agreement is not None and agreement < AGREEMENT_WARNING:
        if file.get("sparsity"):
            # A pruned file computes another function by design: its top-1 says what that cost (the same file
            # scores the same on the host), not that this runtime is wrong.
            warnings.append(f"{name}: agrees with float32 on only {agreement:.1%} of samples: pruning changed what "
                            "the model computes (fine-tune while pruning, or prune less)")  # fmt: skip
        else:
            wrong_here = f"agrees with float32 on only {agreement:.1%} of samples"
            warnings.append(f"{name}: {wrong_here}: this device's runtime does not execute this variant correctly")
    issue = runtime_issue((files.get(name) or {}).get("recipe"), (first.get("environment") or {}).get("runtime"))
    if issue:
        wrong_here = wrong_here or issue
        warnings.append(f"{name}: {issue}")
    for m in ok:
        for warning in m.document.get("warnings", []):
            if warning.get("kind") == ASYNCHRONOUS_TIMING:  # the whole run's: said once, over the table
                continue
            where = f" (round {m.round})" if len(ok) > 1 else ""
            warnings.append(f"{name}{where}: {warning['message']}")
    return VariantSummary(
        name=name,
        status="ok",
        size_bytes=size,
        size_ratio=size_ratio,
        load_ms=load_ms,
        compile_ms=timing["compile_us"] / 1000 if timing.get("compile_us") is not None else None,
        p50_ms=p50,
        p90_ms=p90,
        p90_note=figure.tail_note,
        speedup=speedup,
        speedup_interval=speedup_interval,
        rounds=len(ok),
        peak_rss_mb=peak,
        peak_delta_mb=peak_delta,
        top1=top1,
        top1_interval=tuple(accuracy["wilson95"]) if "wilson95" in accuracy else None,
        top1_delta_pp=delta_pp,
        top1_delta_interval=delta_interval,
        evaluated=accuracy.get("total"),
        accuracy_settled="indices" in accuracy,
        agreement=agreement,
        **fidelity,
        **made,
        wrong_here=wrong_here,
        placement=first.get("placement"),
        layers=first.get("layers"),
        operators=first.get("operators"),
        warnings=tuple(warnings),
    )


def ratio_interval(ratios: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """A t-interval of the speed-up over the rounds' ratios, on their logarithms (a ratio's noise is relative);
    None with one round: one process says nothing of how much the next one would differ."""
    if len(ratios) < 2 or any(r <= 0 for r in ratios):
        return None
    from scipy import stats

    logs = [math.log(r) for r in ratios]
    half = stats.t.ppf((1 + confidence) / 2, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    center = statistics.fmean(logs)
    return (math.exp(center - half), math.exp(center + half))


def _peak(measurements: list[Measurement]) -> float | None:
    """The highest peak RSS in MB; None when the backend reported none (benchmark_model without monitoring)."""
    peaks = [m.document["memory"].get("peak_rss_after_runs") for m in measurements]
    return max(peaks) / 1e6 if peaks and None not in peaks else None


# An output whose reference RMS is below this share of the largest output's carries almost no signal on the
# inputs used (a segmentation mask of RMS 1e-4 beside boxes of RMS 1): its SQNR measures noise, not the variant.
NEGLIGIBLE_POWER = 1e-3


def negligible_outputs(outputs: list[dict]) -> set[int]:
    """The outputs (by position) left out of the worst figures: a reference power negligible beside the others."""
    rms = [o.get("reference_rms") for o in outputs]
    known = [r for r in rms if r is not None]
    if len(outputs) < 2 or not known or max(known) == 0:
        return set()
    return {i for i, r in enumerate(rms) if r is not None and r < NEGLIGIBLE_POWER * max(known)}


def _fidelity(document: dict | None) -> dict:
    """The worst output tensor's figures, one number per column whatever the model's output count, each with
    the tensor it comes from; outputs of negligible reference power are left out, and cosine is taken only
    over outputs of more than one element (the cosine of two numbers is only their sign)."""
    outputs = (document or {}).get("outputs") or []
    if not outputs:
        return {}
    left_out = negligible_outputs(outputs)
    judged = [(i, o) for i, o in enumerate(outputs) if i not in left_out]
    with_sqnr = [(i, o) for i, o in judged if o.get("sqnr_db") is not None]
    with_cosine = [(i, o) for i, o in judged if o.get("elements", 2) > 1] or judged

    def name(index: int) -> str:
        return str(outputs[index].get("name") or f"output {index}")

    sqnr = min(with_sqnr, key=lambda pair: pair[1]["sqnr_db"], default=None)
    cosine = min(with_cosine, key=lambda pair: pair[1]["cosine_mean"])
    error = max(judged, key=lambda pair: pair[1]["max_abs_error"])
    worst = {"sqnr": name(sqnr[0]) if sqnr else None, "cosine": name(cosine[0]), "max_abs_error": name(error[0])}
    left = tuple(f"{name(i)} (reference RMS {outputs[i]['reference_rms']:.2g})" for i in sorted(left_out))
    return {
        "sqnr_db": sqnr[1]["sqnr_db"] if sqnr else None,
        "cosine": cosine[1]["cosine_mean"],
        "max_abs_error": error[1]["max_abs_error"],
        "fidelity_exact": all(o.get("exact") for o in outputs),
        "fidelity_outputs": tuple(outputs),
        "fidelity_worst": worst,
        "fidelity_left_out": left,
    }
