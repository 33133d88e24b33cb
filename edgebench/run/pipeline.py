"""`edgebench run` from arguments to outcome: plan -> variants -> transport -> agent -> results.

Kept apart from the CLI so tests and scripts can drive a run without a terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.accuracy.evaluate import host_runner
from edgebench.accuracy.fidelity import ReferenceSet, build_reference
from edgebench.backends.base import check_cpus
from edgebench.compare.run_summary import RunSummaryView, summarize
from edgebench.core.errors import Cancelled, EdgebenchError
from edgebench.core.fileio import sha256_file
from edgebench.core.settings import SettingError, Settings, matrix_runs, resolve
from edgebench.devices.connect import make_backend, open_transport
from edgebench.devices.inventory import Device, resolve_device
from edgebench.history import index as history
from edgebench.model.dataset import Dataset, check_fits, load_dataset
from edgebench.model.source import ModelSource
from edgebench.model.tflite_model import inspect_model
from edgebench.quantize.variants import (
    Variant,
    VariantSkipped,
    build_variants,
    default_cache_dir,
    float32_reference,
    parse_variant_names,
)
from edgebench.results.layout import RUN_FILE, default_results_dir, new_id
from edgebench.results.record import RunRecord
from edgebench.results.store import ResultsWriteError, RunStore, close_abandoned, load_run
from edgebench.run.health import Cooldown, HealthLimits
from edgebench.run.lease import DeviceBusy, Owner, host_lock
from edgebench.run.retry import RetryPolicy
from edgebench.run.runner import RunEvent, RunPlan, execute
from edgebench.zoo import resolve_model


@dataclass(frozen=True)
class RunRequest:
    device: str
    model: str
    dataset: Path | None = None
    calibration: Path | None = None
    variants: str | None = None
    # The settings given on the command line or in a farm file, by name (core/settings.py), each checked
    # already; what is not given (or None) comes from the device file, then from the table's defaults.
    settings: dict = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # connecting and pushing only
    require_free_disk: bool = False  # a farm refuses a device without room for its largest variant
    cancel: threading.Event = field(default_factory=threading.Event)  # set: stop at the next safe point
    extra: dict = field(default_factory=dict)  # more for run.json: the farm run it belongs to, its attempt
    results_dir: Path | None = None
    devices_dir: Path | None = None
    cache_dir: Path | None = None
    command: list[str] = field(default_factory=list)
    replaces_lease: tuple[str, ...] = ()  # runs known dead whose device lease is taken over at once (Owner)


@dataclass
class PreparedRun:
    device: Device
    source: ModelSource
    plan: RunPlan
    store: RunStore
    history_path: Path

    @property
    def total_measurements(self) -> int:
        return len(self.plan.variants) * self.plan.settings.planned_rounds


@dataclass(frozen=True)
class RunOutcome:
    status: str
    folder: Path
    record: RunRecord
    view: RunSummaryView
    history_error: str | None = None  # the run is on disk; only its index entry is missing
    write_error: str | None = None  # the results folder refused a write: the run is only in memory

    def document(self) -> dict:
        return {
            "folder": str(self.folder),
            "status": self.status,
            # Why the latencies say nothing of the hardware, as the table's header says it; null when they do.
            "no_speed_claims": self.view.no_speed_claims,
            "labels": [label for label in (self.view.software_label, self.view.asynchronous_timing) if label],
            "run": self.record,
            "variants": [dataclasses.asdict(v) for v in self.view.variants],
        }


def resolve_settings(device: Device, given: dict) -> Settings:
    """The table's defaults, then the device file's, then what the command line or farm file gave."""
    try:
        settings = resolve(device.settings, given)
    except SettingError as error:
        raise EdgebenchError(str(error)) from None
    if settings.cpus and device.transport == "local" and hasattr(os, "sched_getaffinity"):
        # A remote device's CPUs are checked against its probe, before anything is measured there.
        check_cpus(settings.cpus, sorted(os.sched_getaffinity(0)), device.name)
    return settings


@dataclass(frozen=True)
class PreparedWork:
    """What a run measures, whatever the device: the variants, the data set, the fidelity reference.

    A farm makes it once per model and hands it to every device."""

    source: ModelSource
    variants: tuple[Variant, ...]
    skipped: tuple[VariantSkipped, ...]
    dataset: Dataset | None
    holdout: int  # samples held out of the data set for calibration, never evaluated on
    reference: ReferenceSet | None

    @property
    def evaluated(self) -> int | None:
        return self.dataset.count - self.holdout if self.dataset else None

    def only(self, names: Sequence[str]) -> PreparedWork:
        """The same work restricted to these variants (a resumed farm run, a new attempt)."""
        return dataclasses.replace(self, variants=tuple(v for v in self.variants if v.name in names), skipped=())


@dataclass
class RunMatrix:
    """`edgebench run` with a setting that lists values (`--accelerator gpu,cpu`): the same work measured in one
    run per value, in order, each a run of its own (its own folder, lease and history entry, so each compares
    only with runs of the same value). A run folder is made when its turn comes: an interruption leaves no
    run of a later value behind."""

    device: Device
    request: RunRequest
    work: PreparedWork
    layers: list[dict]  # one settings layer per run: {"accelerator": "gpu"}, {"accelerator": "cpu"}
    settings: list[Settings]  # resolved, each checked before anything is measured
    matrix_id: str = ""

    @property
    def is_matrix(self) -> bool:
        return len(self.layers) > 1

    def describe(self, index: int) -> dict | None:
        """run.json's "matrix": what links a run to the others of its matrix."""
        if not self.is_matrix:
            return None
        (name,) = self.layers[index]
        return {"id": self.matrix_id, "setting": name, "values": [layer[name] for layer in self.layers],
                "index": index}  # fmt: skip

    def describe_run(self, index: int) -> str:
        """'accelerator gpu (1 of 2)': what a run of the matrix measures, for a progress line."""
        ((name, value),) = self.layers[index].items()
        return f"{name} {value} ({index + 1} of {len(self.layers)})"

    def start(self, index: int) -> PreparedRun:
        matrix = self.describe(index)
        request = self.request if matrix is None else dataclasses.replace(
            self.request, extra={**self.request.extra, "matrix": matrix}
        )  # fmt: skip
        return start_run(self.work, self.device, request, self.settings[index])


def prepare_matrix(request: RunRequest) -> RunMatrix:
    """Everything that can fail on the user's input fails here, before a device is touched: the device, every
    run's settings (a bad one fails before quantizing), the variants (made once for all runs)."""
    device = resolve_device(request.device, request.devices_dir)
    try:
        layers = matrix_runs(device.settings, request.settings)
    except SettingError as error:
        raise EdgebenchError(str(error)) from None
    settings = [resolve_settings(device, {**request.settings, **layer}) for layer in layers]
    return RunMatrix(device, request, prepare_work(request), layers, settings, new_id("matrix"))


def prepare_work(request: RunRequest) -> PreparedWork:
    """Quantize, check the data set against the model, compute the float32 reference outputs."""
    source = resolve_model(request.model, dataset=request.dataset, calibration=request.calibration)
    names = parse_variant_names(request.variants)
    # Labels are optional: without them there is no top-1, and fidelity still applies.
    dataset = load_dataset(source.dataset_path, require_labels=False) if source.dataset_path else None

    # The user's own file must load here before anything is quantized: a custom operator the runtime lacks is
    # named with the user's path, not found later in a cache file's.
    original = inspect_model(source.model_path)  # a file that is no TFLite model at all is said so first
    original_runner = host_runner(source.model_path)
    check_calibration(source, original_runner)
    cache_dir = request.cache_dir or default_cache_dir()
    results = build_variants(source, names, cache_dir=cache_dir, original=original)
    variants = tuple(r for r in results if isinstance(r, Variant))
    skipped = tuple(r for r in results if isinstance(r, VariantSkipped))
    # A calibration slice held out of the data set is never evaluated on.
    holdout = max((v.calibration_holdout for v in variants), default=0)
    evaluated = dataset.count - holdout if dataset else None
    # The float32 variant is the normalized reference; normalize only when it was not asked for.
    reference_model = next((v.path for v in variants if v.name == "float32"), None) or float32_reference(
        source, cache_dir
    )
    # Loaded once: the data-set check and the fidelity reference.
    runner = original_runner if Path(reference_model) == Path(source.model_path) else host_runner(reference_model)
    if dataset is not None:
        check_fits(dataset, runner.inputs, runner.outputs, source.name)
    reference = None
    fidelity_samples = resolve(request.settings, *matrix_runs(request.settings)[:1]).fidelity_samples
    if request.settings.get("samples") != 0 and fidelity_samples > 0:
        reference = build_reference(
            reference_model, dataset, fidelity_samples, cache_dir, limit=evaluated, runner=runner
        )
    return PreparedWork(source, variants, skipped, dataset, holdout, reference)


def check_calibration(source: ModelSource, runner) -> None:
    """A calibration set given for this model is checked like a data set, at the door: a typo or a set that
    cannot feed the model is bad input (exit 2), not int8 and int16x8 quietly skipped."""
    if source.calibration_path is None:
        return
    calibration = load_dataset(source.calibration_path, require_labels=False)
    check_fits(calibration, runner.inputs, [], source.name)  # labels, if any, are not used to calibrate


def start_run(work: PreparedWork, device: Device, request: RunRequest, settings: Settings | None = None) -> PreparedRun:
    """A run folder for this work on this device, and the plan the runner follows."""
    source, variants, skipped, dataset, holdout, reference = (
        work.source, work.variants, work.skipped, work.dataset, work.holdout, work.reference,
    )  # fmt: skip
    settings = settings or resolve_settings(device, request.settings)
    evaluated = work.evaluated
    if evaluated is not None and (holdout or (settings.samples or 0) > evaluated):
        # Stored as evaluated: --samples 999999999 on a 10,000-sample set is 10,000, and compares with it.
        settings = dataclasses.replace(settings, samples=min(settings.samples or evaluated, evaluated))
    fields = {
        "command": request.command,
        "device": {
            "name": device.name,
            "transport": device.transport,
            "description": device.description,
            "emulated": device.emulated,
            "host": getattr(device.options, "host", None),  # as the device file names it
            "address": device.address,  # user@host:port where it was reached
            "tags": list(device.tags),
        },
        "model": {
            "name": source.name,
            "path": str(source.model_path),
            "sha256": sha256_file(source.model_path),
            "bytes": source.model_path.stat().st_size,
        },
        "dataset": {
            "path": str(dataset.path),
            "sha256": dataset.sha256,
            "samples": dataset.count,
            "labelled": dataset.has_labels,
            "calibration_holdout": holdout,
        }
        if dataset
        else None,
        "fidelity": reference.as_dict() if reference else None,
        "settings": settings.agent_dict(),
        "rounds": settings.rounds,
        "variants": [
            {
                "name": v.name,
                "bytes": v.size_bytes,
                "sha256": v.sha256,
                "recipe": v.recipe,
                "weights": v.weights,
                "notes": list(v.notes),
                **({"compressed": v.compressed} if v.compressed else {}),
                **({"sparsity": v.sparsity} if v.sparsity else {}),
            }
            for v in variants
        ],
        "skipped": [{"name": s.name, "reason": s.reason} for s in skipped],
        **request.extra,
    }
    results_dir = request.results_dir or default_results_dir()
    run_id = new_id(source.name)
    store = RunStore.create(results_dir, device.name, run_id, fields)
    plan = RunPlan(
        list(variants), dataset.path if dataset else None, settings,
        reference_path=reference.path if reference else None,
        owner=Owner.of_run(run_id, request.command, request.replaces_lease), retry=request.retry,
        health=HealthLimits(device.thermal.max_temperature_c, require_free_disk=request.require_free_disk),
        cancel=request.cancel, cache_dir=request.cache_dir,
        cooldown=Cooldown(device.thermal.cooldown_seconds, device.thermal.cooldown_below_c,
                          device.thermal.cooldown_max_seconds),
    )  # fmt: skip
    return PreparedRun(device, source, plan, store, history.default_history_path(results_dir))


def run_on_device(
    prepared: PreparedRun, on_event: Callable[[RunEvent], None], *, trust_new_host: bool = False
) -> RunOutcome:
    try:
        with (
            host_lock(
                prepared.device,
                prepared.plan.owner,
                prepared.plan.settings.wait,
                cancel=prepared.plan.cancel,
                on_wait=lambda message: on_event(RunEvent("lease", message=message, device=prepared.device.name)),
            ),  # fmt: skip
            open_transport(prepared.device, trust_new_host=trust_new_host) as transport,
        ):
            _close_abandoned_runs(prepared)
            status = execute(
                prepared.plan, transport, make_backend(prepared.device, transport), prepared.store, on_event
            )
    except Cancelled:
        # Stopped while waiting for the device (the runner marks a run it started itself).
        if prepared.store.record["status"] == "running":
            _discard_or_finish(prepared.store, "interrupted", "stopped before the device was free")
        raise
    except DeviceBusy as error:
        if not prepared.store.measurements:
            # Never had the device: no run to keep, index or pick as a baseline.
            shutil.rmtree(prepared.store.folder, ignore_errors=True)
        else:
            prepared.store.finish("failed", {"error": str(error)})
        raise
    except ResultsWriteError as error:
        # The results folder is full: stop measuring, show what is held in memory, index nothing.
        run = (prepared.store.record, prepared.store.measurements)
        return dataclasses.replace(outcome_of(prepared.store.folder, "failed", run), write_error=str(error))
    except EdgebenchError as error:
        # Reaching the device failed before anything ran: say so in run.json too.
        prepared.store.finish("failed", {"error": str(error)})
        raise
    # The store holds every document it wrote: no need to read the run back.
    run = (prepared.store.record, prepared.store.measurements)
    outcome = outcome_of(prepared.store.folder, status, run)
    try:
        history.index_run(prepared.history_path, prepared.store.folder, run)
    except (EdgebenchError, OSError) as error:
        return dataclasses.replace(outcome, history_error=f"history index not updated ({error}); {RUN_FILE} is "
                                   "safe: 'edgebench history rebuild' re-creates the index")  # fmt: skip
    return outcome


def _close_abandoned_runs(prepared: PreparedRun) -> None:
    """Runs of this device that a killed controller of this host left "running" are closed as interrupted (and
    re-indexed), so they are never taken for a run in progress. Done holding the host lock: no live run of
    this host is measuring the device."""
    for folder in close_abandoned(prepared.store.folder.parent, keep=prepared.store.folder):
        with contextlib.suppress(EdgebenchError, OSError):
            history.index_run(prepared.history_path, folder)


def _discard_or_finish(store: RunStore, status: str, error: str) -> None:
    """A run that never measured anything leaves no folder (nothing to index or pick as a baseline)."""
    if store.measurements:
        store.finish(status, {"error": error})
    else:
        shutil.rmtree(store.folder, ignore_errors=True)


def outcome_of(folder: Path, status: str | None = None, loaded: tuple[RunRecord, list] | None = None) -> RunOutcome:
    record, measurements = loaded or load_run(folder)
    return RunOutcome(status or record.status, Path(folder), record, summarize(record, measurements))
