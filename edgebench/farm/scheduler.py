"""`edgebench farm run`: one worker thread per device, all devices at once, one answer at the end.

Each device measures its models one run at a time under its host lock and device
lease (two farm runs sharing a board queue behind each other, never measure at
once). The model work (quantizing, the fidelity reference) is done once, before any
device is touched, and shared. Stopping is an event: the main thread turns Ctrl-C or
SIGTERM into `cancel.set()`, and every worker ends its agent, releases its lease and
records where it stopped.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.core.errors import Cancelled, EdgebenchError
from edgebench.core.settings import resolve
from edgebench.devices.inventory import Device
from edgebench.farm import quarantine
from edgebench.farm.config import FarmFile, FarmFileError, select_devices
from edgebench.farm.confirm import confirm_farm
from edgebench.farm.summary import FarmSummary, merged_run, summarize_farm
from edgebench.history.lookup import check_policy
from edgebench.results.farm_run import FarmRunStore
from edgebench.results.layout import default_results_dir, new_id
from edgebench.results.store import FailureKind
from edgebench.run.lease import DeviceBusy
from edgebench.run.pipeline import PreparedWork, RunRequest, prepare_work, run_on_device, start_run
from edgebench.run.retry import RetryPolicy
from edgebench.run.runner import RunEvent
from edgebench.transport.base import HealthCheckFailed


@dataclass(frozen=True)
class FarmEvent:
    device: str
    state: str  # pending, checking, waiting, pushing, measuring, cooling, done, failed, quarantined, interrupted,
    # absent (an optional device not set up here)
    detail: str = ""
    done: int = 0  # measurements finished on this device
    total: int = 0


@dataclass(frozen=True)
class FarmOptions:
    results_dir: Path | None = None
    devices_dir: Path | None = None
    cache_dir: Path | None = None
    trust_new_host: bool = False
    resume: str | None = None  # a farm run id: measure only what it is missing
    confirm: bool | None = None  # re-measure slower verdicts before answering (None: the farm file's choice)
    command: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FarmOutcome:
    folder: Path
    summary: FarmSummary


def run_farm(farm: FarmFile, options: FarmOptions, on_event: Callable[[FarmEvent], None],
             cancel: threading.Event, on_prepare: Callable[[str], None] = lambda _: None) -> FarmOutcome:  # fmt: skip
    """Measure the farm; returns when every device is done, or has stopped after `cancel` was set."""
    results_dir = options.results_dir or default_results_dir()
    try:
        check_policy(farm.baseline, results_dir)
    except EdgebenchError as error:
        raise FarmFileError(f"{farm.path}: key 'baseline.policy': {error}") from None
    devices = select_devices(farm, options.devices_dir)
    works = []
    for job in farm.models:
        on_prepare(f"preparing {job.model}")
        works.append(prepare_work(run_request(farm, job, "", options)))
    keys = model_keys(works)
    store = _open_store(farm, options, results_dir, devices, works, keys)
    pending = [d for d in devices if store.device(d.name)["state"] != "done"]  # a resumed run skips finished ones
    for device in pending:
        store.set_state(device.name, "pending", None, emulated=device.emulated, address=device.address)
    finished = [threading.Event() for _ in pending]
    for device, done in zip(pending, finished, strict=True):
        worker = DeviceWorker(farm, options, results_dir, store, device, works, keys, on_event, cancel)
        threading.Thread(target=_until_done, args=(worker.run, done), name=f"edgebench-farm-{device.name}",
                         daemon=True).start()  # fmt: skip
    # Waiting on events, not Thread.join: a join that Ctrl-C or SIGTERM interrupts can leave CPython 3.11
    # believing the thread has ended, and the farm would exit under a worker still measuring.
    try:
        for done in finished:
            while not done.wait(0.2):  # short waits: the main thread stays ready for Ctrl-C and SIGTERM
                pass
    except KeyboardInterrupt:
        cancel.set()
        for done in finished:
            done.wait()
        store.finish("interrupted", {})
        raise
    status = "interrupted" if cancel.is_set() else "done"
    # Summarized with the final status: a summary made while the document still said "running" would
    # store exit code 2 ("cannot tell") for a night that is fine.
    summary = dataclasses.replace(summarize_farm(store.document, results_dir), status=status)
    confirm = farm.confirm if options.confirm is None else options.confirm
    if confirm and status == "done" and summary.unconfirmed:
        problems = confirm_farm(
            summary, store.document, results_dir, pairs=farm.confirm_pairs, devices_dir=options.devices_dir,
            cache_dir=options.cache_dir, trust_new_host=options.trust_new_host, cancel=cancel,
            on_event=lambda event: on_event(FarmEvent(event.device, "confirming", event.variant)),
            command=tuple(options.command),
        )  # fmt: skip
        summary = dataclasses.replace(summarize_farm(store.document, results_dir), status=status,
                                      notes=tuple(problems))  # fmt: skip
    store.finish(status, {"summary": summary.document()})
    return FarmOutcome(store.folder, summary)


def _until_done(work: Callable[[], None], done: threading.Event) -> None:
    try:
        work()
    finally:
        done.set()


def run_request(farm: FarmFile, job, device: str, options: FarmOptions, extra: dict | None = None) -> RunRequest:
    return RunRequest(
        device=device,
        model=job.model,
        dataset=job.dataset,
        calibration=job.calibration,
        variants=job.variants,
        settings=farm.settings,
        retry=RetryPolicy(attempts=farm.connect_attempts),
        extra=extra or {},
        results_dir=options.results_dir,
        devices_dir=options.devices_dir,
        cache_dir=options.cache_dir,
        command=options.command,
    )


def model_keys(works: list[PreparedWork]) -> list[str]:
    """One short name per model: its name, numbered when two models share one."""
    names = [w.source.name for w in works]
    return [name if names.count(name) == 1 else f"{name}#{index + 1}" for index, name in enumerate(names)]


def _open_store(farm: FarmFile, options: FarmOptions, results_dir: Path, devices: list[Device],
                works: list[PreparedWork], keys: list[str]) -> FarmRunStore:  # fmt: skip
    models = [
        {"key": key, "model": str(job.model), "variants": [v.name for v in work.variants]}
        for key, job, work in zip(keys, farm.models, works, strict=True)
    ]
    if options.resume:
        store = FarmRunStore.open(results_dir, options.resume)
        before = store.document["farm"]
        if before.get("sha256") != farm.sha256:
            raise EdgebenchError(
                f"farm run {options.resume} was made from another version of {farm.path} (sha256 "
                f"{before.get('sha256', '?')[:12]}, now {farm.sha256[:12]}); start a new farm run instead"
            )
        if store.document["models"] != models:
            raise EdgebenchError(f"farm run {options.resume} measured other variants or model files; start a new one")
        store.document.update({"status": "running", "resumed_by": options.command})
        return store
    header = {
        "farm": {"name": farm.name, "path": str(farm.path), "sha256": farm.sha256},
        "command": options.command,
        "baseline": {"policy": farm.baseline, "threshold": farm.threshold},
        "models": models,
        "planned_devices": [d.name for d in devices],
        "rounds": farm.rounds,
    }
    return FarmRunStore.create(results_dir, new_id(farm.name), header)


@dataclass(frozen=True)
class Inherited:
    """What a lab worker's job inherits from an attempt whose worker died: its attempt number and the runs
    it left "running", whose device leases are taken over at once (the broker saw their holder die)."""

    attempt: int = 1
    retry_of: str | None = None
    dead_runs: tuple[str, ...] = ()


class DeviceWorker:
    """Everything one device does in a farm run, in its own thread (or, for a lab worker, one model's job)."""

    def __init__(self, farm, options, results_dir, store, device, works, keys, on_event, cancel,
                 only: list[str] | None = None, inherited: Inherited = Inherited()):  # fmt: skip
        self.farm, self.options, self.results_dir, self.store = farm, options, results_dir, store
        self.device, self.on_event, self.cancel = device, on_event, cancel
        chosen = [i for i, key in enumerate(keys) if only is None or key in only]
        self.works, self.keys = [works[i] for i in chosen], [keys[i] for i in chosen]
        self.jobs = [farm.models[i] for i in chosen]
        self.inherited = inherited
        self.farm_run = store.document["farm_run"]
        self.done = 0
        self.total = sum(len(w.variants) for w in self.works) * resolve(farm.settings).planned_rounds

    def emit(self, state: str, detail: str = "") -> None:
        self.on_event(FarmEvent(self.device.name, state, detail, self.done, self.total))

    def state(self, state: str, reason: str | None = None) -> None:
        self.store.set_state(self.device.name, state, reason)
        self.emit(state, reason or "")

    def run(self) -> None:
        name = self.device.name
        held = quarantine.quarantine_of(self.results_dir, name)
        if held and held.get("kind") == quarantine.FAILURES:
            self.state("quarantined", f"since {held['since']}: {held['reason']}; 'edgebench devices release {name}'")
            return
        self.state("running", "health check" + (" (quarantined: checking again)" if held else ""))
        try:
            failure = self._measure_every_model()
        except Cancelled:
            self.state("interrupted", "stopped by the user; 'farm run --resume' measures the rest")
            return
        except HealthCheckFailed as error:
            if self._absent(str(error)):
                return
            quarantine.record_health_failure(self.results_dir, name, str(error), self.farm_run)
            self.state("quarantined", str(error))
            return
        except DeviceBusy as error:
            failure = str(error)
        except EdgebenchError as error:  # unreachable, refused key, no runtime, results folder full
            failure = str(error)
        except Exception as error:  # a bug must not take the other devices' night down with it
            failure = f"internal error: {type(error).__name__}: {error}"
        if failure is not None and self._absent(failure):
            return
        record = quarantine.record_outcome(self.results_dir, name, failure is not None, failure, self.farm_run,
                                           self.farm.quarantine_after)  # fmt: skip
        if failure is None:
            self.state("done")
        elif record.get("quarantine"):
            self.state("quarantined", f"{failure} (now quarantined: {record['quarantine']['reason']})")
        else:
            self.state("failed", failure)

    def _absent(self, why: str) -> bool:
        """An optional device that failed before measuring anything is not here: said, not counted."""
        if not self.farm.is_optional(self.device) or self.done or self.store.device(self.device.name).get("runs"):
            return False
        self.state("absent", f"optional, not set up here: {why}")
        return True

    def _measure_every_model(self) -> str | None:
        """Each model in turn; returns why the device failed (lost, nothing measured), or None."""
        for key, job, work in zip(self.keys, self.jobs, self.works, strict=True):
            missing = self._missing(key, work)
            attempt, retry_of = self.inherited.attempt, self.inherited.retry_of
            while missing:
                if self.cancel.is_set():
                    raise Cancelled("cancelled")
                extra = {"farm_run": self.farm_run, "attempt": attempt}
                if retry_of:
                    extra["retry_of"] = retry_of
                if self.options.resume or retry_of:
                    extra["resumed"] = True
                request = dataclasses.replace(run_request(self.farm, job, self.device.name, self.options, extra),
                                              require_free_disk=True, cancel=self.cancel,
                                              replaces_lease=self.inherited.dead_runs)  # fmt: skip
                prepared = start_run(work.only(missing), self.device, request)
                run_id = prepared.store.record.run_id
                # Listed before it measures: a controller killed mid-run leaves a farm.json that names this
                # folder, so a resume (or the lab worker that inherits the job) measures only what it lacks.
                self.store.add_run(self.device.name, {"model": key, "run_id": run_id, "attempt": attempt,
                                   "folder": str(prepared.store.folder.relative_to(self.results_dir)),
                                   "status": "running"})  # fmt: skip
                self.emit("waiting", "for the device (another run may hold it)")
                try:
                    outcome = run_on_device(prepared, self._relay, trust_new_host=self.options.trust_new_host)
                finally:
                    folder_kept = prepared.store.folder.exists()
                    self.store.update_run(self.device.name, run_id, prepared.store.record.status if folder_kept
                                          else None)  # fmt: skip
                if outcome.write_error:
                    return outcome.write_error
                # The device failed (not one variant): it went away, froze (a stall), or measured nothing.
                lost = [prepared.store.record.device_lost] if prepared.store.record.device_lost else []
                lost += [m.error for m in prepared.store.measurements if m.kind == FailureKind.STALLED]
                if lost or outcome.status == "failed":
                    errors = [m.error for m in prepared.store.measurements
                              if m.error and m.kind != FailureKind.NOT_MEASURED]  # fmt: skip
                    return (lost or errors or ["every measurement failed"])[0]
                # A measurement that started and failed stays failed; the farm file may allow a new,
                # labelled attempt (its run says attempt N and which run it retries). A model the device's
                # runtime refuses is refused again: no new attempt.
                failed = sorted({m.variant for m in prepared.store.measurements
                                 if m.status != "ok"
                                 and m.kind not in (FailureKind.UNSUPPORTED, FailureKind.REFUSED)})  # fmt: skip
                if not failed or attempt > self.farm.rerun_failed:
                    break
                missing, attempt, retry_of = failed, attempt + 1, prepared.store.record.run_id
        return None

    def _missing(self, key: str, work: PreparedWork) -> list[str]:
        """Variants with no measurement yet in this farm run (all of them, unless resuming)."""
        runs = [r for r in self.store.device(self.device.name)["runs"] if r["model"] == key]
        merged, _ = merged_run(runs, self.results_dir)
        if merged is None:
            return [v.name for v in work.variants]
        measured = {m.variant for m in merged.measurements if m.kind != FailureKind.NOT_MEASURED}
        rounds_done = {v: sum(m.variant == v for m in merged.measurements) for v in measured}
        # With rounds chosen automatically, a variant with its first round kept is done.
        return [v.name for v in work.variants if rounds_done.get(v.name, 0) < (self.farm.rounds or 1)]

    def _relay(self, event: RunEvent) -> None:
        label = event.variant + (f" (round {event.round})" if event.round > 1 else "")
        if event.kind == "stage":
            self.emit("pushing", f"{event.variant or 'agent'} {event.message or ''}".strip())
        elif event.kind == "health":
            self.emit("running", "health check passed")
        elif event.kind == "lease":
            self.emit("waiting", event.message or "waiting for the device lease")
        elif event.kind == "cooldown":
            self.emit("cooling", event.message or "")
        elif event.kind == "start":
            self.emit("measuring", label)
        elif event.kind == "progress":
            self.emit("measuring", f"{label}: {event.phase}")
        elif event.kind == "done":
            self.done += 1
            self.emit("measuring", f"{label}: {event.status}")
