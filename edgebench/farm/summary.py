"""A farm run's run folders -> one answer: every device x model x variant, its verdict, the exit code.

Built from the run folders (the source of truth) and farm.json's list of them, so
`farm check` gives the same answer as the end of `farm run`, and a farm that was
interrupted and resumed merges its runs: each variant's figures come from the
newest run that measured it. Pure apart from reading those folders.

Exit code, like `check`: 1 when any variant of any device regressed (a device that
could not run never hides another's regression), else 2 when anything could not be
judged (a device that failed, was quarantined or interrupted, a variant that failed,
no comparable baseline), else 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgebench.compare.confirmation import apply, kept
from edgebench.compare.run_summary import summarize
from edgebench.compare.verdicts import compare_runs, parse_threshold
from edgebench.core.errors import EdgebenchError
from edgebench.history.lookup import baseline_data, noise_floors
from edgebench.results.confirmations import read_confirmations
from edgebench.results.record import RunRecord
from edgebench.results.store import FailureKind, Measurement, ResultsError, RunData, load

EXIT_FINE, EXIT_REGRESSION, EXIT_CANNOT_TELL = 0, 1, 2


@dataclass(frozen=True)
class Cell:
    """One variant of one model on one device, tonight."""

    device: str
    model: str
    variant: str
    status: str  # "ok", "failed", "skipped", "not run"
    run_id: str | None = None
    attempt: int = 1
    error: str | None = None
    p50_ms: float | None = None
    speedup: float | None = None
    peak_delta_mb: float | None = None
    top1_delta_pp: float | None = None
    sqnr_db: float | None = None
    fidelity_exact: bool = False
    temperature_c: float | None = None  # at the start of the (first) measurement
    verdict: str | None = None  # "slower", "faster", "same", "not comparable", None: nothing to compare
    verdict_reason: str = ""
    noise: str | None = None  # the noise floor the verdict used, or why there is none yet
    cause: str | None = None  # what a slower verdict can be put down to (the same file: the device)
    confirmation: dict | None = None  # the A/B re-measurement of a slower verdict (compare/confirmation.py)
    suspected: bool = False  # slower, or a shift that fell short of significance: an A/B confirmation decides
    memory: str = "n/a"
    accuracy: str = "n/a"
    regression: bool = False


@dataclass(frozen=True)
class DeviceResult:
    name: str
    state: str  # "done", "failed", "quarantined", "interrupted", "pending", "absent" (optional, not set up here)
    reason: str | None
    emulated: bool
    baselines: dict = field(default_factory=dict)  # model -> baseline run id, or why there is none
    cells: tuple[Cell, ...] = ()
    # Why its latencies say nothing of the hardware though it is no emulator: "SOFTWARE GPU (SwiftShader ...)",
    # a LiteRT tool timing queued GPU work (as the run's own table says).
    no_speed_claims: tuple[str, ...] = ()


@dataclass(frozen=True)
class FarmSummary:
    farm_run: str
    status: str
    policy: str
    threshold: float
    devices: tuple[DeviceResult, ...]
    models: tuple[str, ...]
    variants: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what the night could not do beside the cells (a confirmation that failed)

    @property
    def regressions(self) -> list[Cell]:
        return [c for d in self.devices for c in d.cells if c.regression]

    @property
    def unconfirmed(self) -> list[Cell]:
        """Cells whose latency is slower or suspected and was not re-measured yet."""
        return [c for d in self.devices for c in d.cells if c.suspected and not c.confirmation]

    @property
    def undecided(self) -> list[str]:
        """What could not be judged, one line each."""
        lines = [f"{d.name}: {d.state}" + (f" ({d.reason})" if d.reason else "") for d in self.devices
                 if d.state not in ("done", "absent")]  # fmt: skip
        for device in self.devices:
            if device.state != "done":
                continue
            lines += [f"{device.name} {model}: no baseline ({why.removeprefix('none: ')})"
                      for model, why in device.baselines.items() if why.startswith("none")]  # fmt: skip
            lines += [f"{c.device} {c.model} {c.variant}: {c.status}" + (f" ({c.error})" if c.error else "")
                      for c in device.cells if c.status in ("failed", "not run")]  # fmt: skip
            lines += [f"{c.device} {c.model} {c.variant}: not comparable ({c.verdict_reason})" for c in device.cells
                      if c.verdict == "not comparable"]  # fmt: skip
        return lines

    @property
    def exit_code(self) -> int:
        if self.regressions:
            return EXIT_REGRESSION
        return EXIT_CANNOT_TELL if self.undecided or self.status != "done" else EXIT_FINE

    def document(self) -> dict:
        return {
            "farm_run": self.farm_run,
            "status": self.status,
            "baseline": {"policy": self.policy, "threshold": self.threshold},
            "exit_code": self.exit_code,
            "regressions": [asdict(c) for c in self.regressions],
            "undecided": self.undecided,
            "notes": list(self.notes),
            "devices": [asdict(d) for d in self.devices],
        }


def summarize_farm(document: dict, results_dir: Path, policy: str | None = None,
                   threshold: str | None = None) -> FarmSummary:  # fmt: skip
    """farm.json and the run folders it names -> the farm's answer against the baseline policy."""
    policy = policy or document.get("baseline", {}).get("policy", "last")
    limit = parse_threshold(threshold or document.get("baseline", {}).get("threshold", "5%"))
    models = [m["key"] for m in document["models"]]
    devices = []
    for name in document.get("planned_devices", list(document["devices"])):
        entry = document["devices"].get(name, {"state": "pending", "reason": None, "runs": []})
        emulated = bool(entry.get("emulated"))
        cells: list[Cell] = []
        baselines: dict = {}
        labels: dict[str, None] = {}
        for model in document["models"]:
            runs = [r for r in entry.get("runs", []) if r["model"] == model["key"]]
            model_cells, baselines[model["key"]], label = _model_cells(name, model, runs, results_dir, policy, limit)
            cells += model_cells
            labels.update(dict.fromkeys([label] if label else []))
        devices.append(DeviceResult(name, entry.get("state", "pending"), entry.get("reason"), emulated, baselines,
                                    tuple(cells), tuple(labels)))  # fmt: skip
    variants = list(dict.fromkeys(v for m in document["models"] for v in m.get("variants", [])))
    return FarmSummary(document["farm_run"], document.get("status", "running"), policy, limit, tuple(devices),
                       tuple(models), tuple(variants))  # fmt: skip


def merged_run(runs: list[dict], results_dir: Path) -> tuple[RunData | None, dict[str, tuple[str, int]]]:
    """The runs of one device and model in one farm run as one RunData: each variant's measurements from the
    newest run that measured it (a resumed or re-attempted run supersedes an earlier one), and where each came
    from (run id, attempt)."""
    loaded = []
    for run in runs:
        try:
            loaded.append((run, load(Path(results_dir) / run["folder"])))
        except ResultsError:
            continue  # named in the device's runs; a damaged folder is skipped, never a crash
    if not loaded:
        return None, {}
    chosen: dict[str, list[Measurement]] = {}
    origin: dict[str, tuple[str, int]] = {}
    variants_meta: dict[str, dict] = {}
    for run, data in loaded:  # oldest first: later runs replace earlier ones
        for meta in data.record.variant_files:
            variants_meta[meta["name"]] = meta
        for variant in data.variants():
            measured = [m for m in data.measurements if m.variant == variant and not _never_started(m)]
            if measured or variant not in chosen:
                chosen[variant] = measured or [m for m in data.measurements if m.variant == variant]
                origin[variant] = (data.run_id, run.get("attempt", 1))
    first = loaded[0][1].record
    skipped = [s for _, data in loaded[:1] for s in data.record.skipped]
    record = RunRecord({**first, "variants": list(variants_meta.values()), "skipped": skipped})
    measurements = [m for variant in chosen for m in chosen[variant]]
    return RunData(record, measurements), origin


def _never_started(measurement: Measurement) -> bool:
    return measurement.kind == FailureKind.NOT_MEASURED


def _model_cells(device: str, model: dict, runs: list[dict], results_dir: Path, policy: str,
                 limit: float) -> tuple[list[Cell], str, str | None]:  # fmt: skip
    merged, origin = merged_run(runs, results_dir)
    planned = model.get("variants", [])
    if merged is None:
        return [Cell(device, model["key"], v, "not run") for v in planned], "none: not run", None
    view = summarize(merged.record, merged.measurements)
    rows = {row.name: row for row in view.variants}
    comparisons, baseline, not_comparable = {}, "none: nothing measured", ""
    if any(row.status == "ok" for row in rows.values()):
        try:
            base = baseline_data(policy, merged, results_dir)
            comparison = compare_runs(base, merged, limit, noise_floors(merged, results_dir))
            comparison = apply(comparison, kept_confirmations(runs, origin, results_dir))
            baseline = base.run_id
            if comparison.not_comparable:
                baseline = f"{base.run_id} (not comparable: {'; '.join(comparison.not_comparable)})"
            comparisons = {v.variant: v for v in comparison.variants}
            not_comparable = "; ".join(comparison.not_comparable)
        except EdgebenchError as error:
            baseline, not_comparable = f"none: {error}", ""
    cells = []
    for name in list(dict.fromkeys([*planned, *rows])):
        row = rows.get(name)
        if row is None:
            cells.append(Cell(device, model["key"], name, "not run"))
            continue
        run_id, attempt = origin.get(name, (None, 1))
        fields = {"run_id": run_id, "attempt": attempt, "error": row.error}
        if row.status == "ok":
            fields |= {"p50_ms": row.p50_ms, "speedup": row.speedup, "peak_delta_mb": row.peak_delta_mb,
                       "top1_delta_pp": row.top1_delta_pp, "sqnr_db": row.sqnr_db,
                       "fidelity_exact": row.fidelity_exact,
                       "temperature_c": _start_temperature(merged, name)}  # fmt: skip
            comparison = comparisons.get(name)
            if comparison is not None:
                fields |= {"verdict": comparison.verdict, "verdict_reason": comparison.reason,
                           "noise": comparison.noise, "cause": comparison.cause, "memory": comparison.memory,
                           "confirmation": comparison.confirmation, "suspected": comparison.suspected,
                           "accuracy": comparison.accuracy,
                           "regression": comparison.regression}  # fmt: skip
            elif not baseline.startswith("none") and "not comparable" in baseline:
                fields |= {"verdict": "not comparable", "verdict_reason": not_comparable}
        cells.append(Cell(device, model["key"], name, row.status, **fields))
    return cells, baseline, view.speed_caveat


def kept_confirmations(runs: list[dict], origin: dict[str, tuple[str, int]], results_dir: Path) -> dict:
    """Each variant's A/B confirmation, as kept in the folder of the run that measured it tonight."""
    folders = {run["run_id"]: Path(results_dir) / run["folder"] for run in runs if run.get("folder")}
    by_run = {run_id: kept(read_confirmations(folder)) for run_id, folder in folders.items()}
    return {variant: by_run[run_id][variant] for variant, (run_id, _) in origin.items()
            if variant in by_run.get(run_id, {})}  # fmt: skip


def _start_temperature(run: RunData, variant: str) -> float | None:
    documents = run.ok(variant)
    return (documents[0].get("thermal") or {}).get("before_c") if documents else None
