"""Measure the variants of one run on one device, one agent process at a time, and keep what it says.

The runner schedules: it stages files, takes the device lease, checks the
device's health, cools it down between measurements and interleaves rounds.
The backend (backends/python_agent.py) measures. The runner emits events and
never prints. Each measurement is stored as soon as it arrives, so a failure,
a Ctrl-C or a cancelled farm later in the run loses nothing.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebench.backends.base import Backend, HostFiles, Progress, check_cpus
from edgebench.core.errors import Cancelled
from edgebench.core.fileio import sha256_file
from edgebench.core.settings import AUTO_ROUNDS, CHEAP_ROUND_SECONDS, Settings
from edgebench.model.runtime_issues import runtime_issue
from edgebench.quantize.probes import probe_models
from edgebench.quantize.variants import Variant, default_cache_dir
from edgebench.results.store import FailureKind, Measurement, RunStore
from edgebench.run.health import Cooldown, HealthLimits, check_health, cool_down
from edgebench.run.lease import LEASE_MARGIN_S, DeviceLease, Owner
from edgebench.run.retry import RetryPolicy, retrying
from edgebench.transport.base import (
    ConnectionLost,
    DeviceError,
    DiskFull,
    Stalled,
    Transport,
    Unreachable,
)

__all__ = ["RunEvent", "RunPlan", "Settings", "execute", "run_status"]


@dataclass(frozen=True)
class RunEvent:
    kind: str  # "stage", "health", "lease", "cooldown", "start", "progress", "done" or "rounds" (how many)
    variant: str = ""
    round: int = 1
    phase: str | None = None
    done: int | None = None
    total: int | None = None
    status: str | None = None
    message: str | None = None
    device: str = ""  # which device: a farm runs many at once


@dataclass
class RunPlan:
    variants: Sequence[Variant]
    dataset_path: Path | None
    settings: Settings  # rounds, timeouts and the wait for a busy device among them
    reference_path: Path | None = None  # float32 reference inputs and outputs, for fidelity
    owner: Owner | None = None  # who takes the device lease; None: no lease (tests driving execute directly)
    health: HealthLimits = field(default_factory=HealthLimits)
    cooldown: Cooldown = field(default_factory=Cooldown)
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # for connecting and pushing, never for measuring
    cancel: threading.Event = field(default_factory=threading.Event)  # set: stop at the next safe point
    cache_dir: Path | None = None  # where --profile's probe models are made; None: the default variant cache


def execute(plan: RunPlan, transport: Transport, backend: Backend, store: RunStore,
            on_event: Callable[[RunEvent], None]) -> str:  # fmt: skip
    """Measure every variant `plan.rounds` times, interleaved (A B C, A B C, ...).

    Interleaving spreads slow drift of the machine (heat, background load)
    over all variants instead of biasing the last ones. Returns the run status.
    """
    device_name = store.record.get("device", {}).get("name", "")

    def emit(kind: str, variant: str = "", round_number: int = 1, **fields) -> None:
        on_event(RunEvent(kind, variant, round_number, device=device_name, **fields))

    transport.cancel = plan.cancel
    try:
        emit("stage", message="agent and models")
        probe = retrying(plan.retry, lambda: backend.probe(plan.settings.runtime, workdir=transport.workdir()))
        store.note(device_probe=backend.require_runnable(probe, device_name))
        store.note(health=check_health(probe, plan.health, _bytes_needed(plan), device_name))
        emit("health", status="ok")
        if plan.settings.cpus and probe.get("cores"):
            check_cpus(plan.settings.cpus, range(probe["cores"]), device_name)
        for variant in plan.variants:  # said before the minutes of measuring, not only under the table
            issue = runtime_issue(variant.recipe, probe.get("runtime"))
            if issue:
                emit("health", status="warning", message=f"{variant.name}: {issue}")
        cores = len(plan.settings.cpus) or probe.get("cores")
        if cores and plan.settings.threads > cores:
            # More threads than cores time-share them: a slower figure that is the setting's, not the model's.
            emit("health", status="warning", message=f"--threads {plan.settings.threads} on {cores} core(s) of "
                 f"{device_name}: threads beyond the cores only take turns")  # fmt: skip
            store.note(warnings=[f"threads {plan.settings.threads} > {cores} core(s) available"])
        lease = None
        lease_dir = transport.lease_dir()
        if plan.owner and lease_dir:
            ttl = plan.settings.timeout + LEASE_MARGIN_S
            call = backend.lease_call(lease_dir, plan.owner, ttl, plan.settings.stall_timeout)
            lease = DeviceLease(call, device_name, plan.cancel)
            emit("lease", message="waiting for the device lease")
            lease.acquire(plan.settings.wait, on_wait=lambda message: emit("lease", message=message))
            if lease.stopped_agents:
                store.note(stopped_leftover_agents=lease.stopped_agents)
                emit("lease", message=_leftovers_message(lease.stopped_agents))
            if lease.taken_from:
                dead = lease.taken_from
                store.note(lease_taken_over={key: dead.get(key) for key in ("id", "controller", "pid", "since")})
                emit("lease", message=f"took over the lease of run {dead.get('id')}: its controller (pid "
                                      f"{dead.get('pid')} on this host) is dead")  # fmt: skip
        float32 = Float32Predictions()
        try:
            return _measure_all(plan, transport, backend, store, emit, lease, float32)
        finally:
            float32.discard()
            if lease:
                transport.cancel = None  # giving the lease back runs even when the run is being stopped
                lease.release()
    except (KeyboardInterrupt, Cancelled):
        store.finish("interrupted", {"pushed_bytes": transport.bytes_pushed})
        raise
    finally:
        transport.cancel = None


def _measure_all(plan: RunPlan, transport: Transport, backend: Backend, store: RunStore, emit,
                 lease: DeviceLease | None, float32: Float32Predictions) -> str:  # fmt: skip
    """Every variant, every round, in order; each measurement stored as it arrives."""

    def stage(path: Path, sha256: str) -> str:
        return retrying(plan.retry, lambda: transport.stage(path, sha256))

    dataset_path = stage(plan.dataset_path, sha256_file(plan.dataset_path)) if plan.dataset_path else None
    reference_path = stage(plan.reference_path, sha256_file(plan.reference_path)) if plan.reference_path else None
    model_paths: dict[str, str] = {}
    failed: set[str] = set()  # a model that failed once is not retried in later rounds
    measured = 0

    rounds = plan.settings.planned_rounds
    round_number = 0
    while round_number < rounds:
        round_number += 1
        if round_number == 2 and plan.settings.rounds is None:
            rounds = automatic_rounds(store.measurements)
            store.note(rounds=rounds)
            emit("rounds", total=rounds)
            if rounds == 1:
                break
        for variant in plan.variants:
            if variant.name in failed:
                continue
            if plan.cancel.is_set():
                raise Cancelled("cancelled")
            context = {}
            try:
                if variant.name not in model_paths:
                    # Pushed just before its first measurement: a model that does not fit
                    # on the device fails alone, and the ones that fit are still measured.
                    emit("stage", variant.name, message=f"{variant.size_bytes:,} bytes")
                    model_paths[variant.name] = stage(variant.path, variant.sha256)
                if measured and plan.cooldown.active:
                    emit("cooldown", variant.name, round_number, message=plan.cooldown.describe())
                    context["cooldown"] = cool_down(plan.cooldown, backend.temperature, plan.cancel)
                if lease:
                    # For one more agent timeout (a dead controller's lease expires soon); the device stops any
                    # agent an earlier measurement left running (a stalled connection's) before this one starts.
                    leftovers = lease.renew()
                    if leftovers:
                        context["stopped_leftover_agents"] = leftovers
                        emit("lease", variant.name, round_number, message=_leftovers_message(leftovers))
                probes = [] if backend.profiles_operators else _staged_probes(variant, plan, round_number, stage,
                                                                               context)  # fmt: skip
                emit("start", variant.name, round_number)
                measured += 1
                measurement = backend.measure(
                    variant.name, round_number, model_paths[variant.name], variant.sha256, plan.settings,
                    dataset_path=dataset_path, reference_path=reference_path,
                    on_progress=_progress_relay(emit, variant.name, round_number),
                    host=HostFiles(variant.path, plan.dataset_path, plan.reference_path, float32.host_path),
                    float32_predictions=float32.device_path,
                    float32_model=model_paths.get("float32") if variant.name != "float32" else None,
                    probes=probes,
                )  # fmt: skip
            except Stalled as error:
                # This variant is lost; the connection was dropped, and the next command opens a
                # fresh one: a board that froze for a moment measures the rest, one that stays
                # silent fails that reconnect and ends the run below, what was measured kept.
                measurement = Measurement.failed(variant.name, round_number, FailureKind.STALLED, f"stalled: {error}")
            except (ConnectionLost, Unreachable) as error:
                # Gone mid-command, or not answering a reconnect (after the retries): nothing more can run.
                failed |= _device_lost(plan, failed, store, variant.name, round_number, str(error), emit)
                break
            except DeviceError as error:
                if variant.name in model_paths:  # the command itself could not run: the device is gone
                    failed |= _device_lost(plan, failed, store, variant.name, round_number, str(error), emit)
                    break
                kind = FailureKind.DISK_FULL if isinstance(error, DiskFull) else FailureKind.DEVICE_ERROR
                measurement = Measurement.failed(variant.name, round_number, kind, str(error))
            measurement.context = context or None
            store.add(measurement)
            if measurement.status != "ok":
                failed.add(variant.name)
            elif variant.name == "float32" and round_number == 1:
                float32.keep(measurement.document.get("accuracy"), stage)
            emit("done", variant.name, round_number, status=measurement.status, message=measurement.error)
    status = run_status(store.measurements)
    store.finish(status, {"pushed_bytes": transport.bytes_pushed})
    return status


class Float32Predictions:
    """float32's predictions on the whole data set, measured on this device, handed to every later variant:
    with them a variant's accuracy stops once its change against float32 is settled (agent.settled_change).
    A small .npy kept out of the run folder (it is float32's document in another form), removed at the end."""

    def __init__(self):
        self.host_path: Path | None = None
        self.device_path: str | None = None

    def keep(self, accuracy: dict | None, stage: Callable[[Path, str], str]) -> None:
        if not accuracy or "indices" in accuracy or not accuracy.get("predictions"):
            return
        buffer = io.BytesIO()  # .npy, not .npz: no time stamp inside, so the same predictions are not pushed again
        np.save(buffer, np.asarray(accuracy["predictions"], dtype=np.int64), allow_pickle=False)
        # A fixed name: a device keeps files by content and name, and a second run finds this one there.
        self.host_path = Path(tempfile.mkdtemp(prefix="edgebench-")) / "float32-predictions.npy"
        self.host_path.write_bytes(buffer.getvalue())
        self.device_path = stage(self.host_path, sha256_file(self.host_path))

    def discard(self) -> None:
        if self.host_path:
            shutil.rmtree(self.host_path.parent, ignore_errors=True)
            self.host_path = None


def _staged_probes(variant: Variant, plan: RunPlan, round_number: int, stage, context: dict) -> list[str]:
    """With --profile, in the first round: the variant's single-operator probe models (made once, beside it in
    the variant cache, never beside a model the user or the package owns), pushed; operators that cannot be cut
    out are named in the measurement's context."""
    if not plan.settings.profile or round_number != 1:
        return []
    try:
        probes = probe_models(variant.path, plan.cache_dir or default_cache_dir())
    except (OSError, ValueError) as error:  # a read-only cache, a file the flatbuffer reader refuses
        context["operators_not_probed"] = [f"no probe models: {error}"]
        return []
    skipped = [f"#{p.index} {p.op}: {p.why}" for p in probes if p.path is None]
    if skipped:
        context["operators_not_probed"] = skipped
    return [stage(p.path, p.sha256) for p in probes if p.path is not None]


def automatic_rounds(first_round: Sequence[Measurement]) -> int:
    """Rounds for a run given no --rounds, from its first: AUTO_ROUNDS when every variant's timed runs took at
    most CHEAP_ROUND_SECONDS (a small model: two more fresh processes each cost a few seconds and make the
    verdict rest on processes), else 1 (a large model on a slow board: a round can take minutes)."""
    timed = [_timed_seconds(m.document["timing"]) for m in first_round if m.status == "ok"]
    if timed and max(timed) <= CHEAP_ROUND_SECONDS:
        return AUTO_ROUNDS
    return 1


def _timed_seconds(timing: dict) -> float:
    """Seconds of timed runs in one document: its samples, or benchmark_model's mean times count."""
    if timing.get("samples_us"):
        return sum(timing["samples_us"]) / 1e6
    stats = timing.get("stats") or {}
    return (stats.get("mean") or 0) * (stats.get("count") or 0) / 1e6


def _bytes_needed(plan: RunPlan) -> int:
    """Room the run needs on the device at least: its largest variant and the data files."""
    files = [p for p in (plan.dataset_path, plan.reference_path) if p]
    return max((v.size_bytes for v in plan.variants), default=0) + sum(Path(p).stat().st_size for p in files)


def _device_lost(plan: RunPlan, failed: set[str], store: RunStore, variant: str, round_number: int, error: str,
                 emit) -> set[str]:  # fmt: skip
    """The device went away: this measurement and every later one fail with the reason; no retries.

    Returns the variants that are now failed, so the loop skips them."""
    store.note(device_lost=error)  # the device failed, not this variant: a farm counts it against the device
    store.add(Measurement.failed(variant, round_number, FailureKind.LOST_CONNECTION, error))
    emit("done", variant, round_number, status="failed", message=error)
    names = [v.name for v in plan.variants if v.name not in failed]
    later = [(n, round_number) for n in names[names.index(variant) + 1 :]]
    rounds = store.record.rounds if plan.settings.rounds is None and round_number > 1 else plan.settings.rounds or 1
    later += [(n, r) for r in range(round_number + 1, rounds + 1) for n in names]
    for name, number in later:
        store.add(Measurement.failed(name, number, FailureKind.NOT_MEASURED, f"not measured: {error}"))
        emit("done", name, number, status="failed", message=error)
    return set(names)


def run_status(measurements: Sequence[Measurement]) -> str:
    """ok when every measurement is ok or an accelerator's refusal (a finding: the GPU cannot take int16x8),
    partial when some failed, failed when none is ok."""
    ok = sum(m.status == "ok" for m in measurements)
    refused = sum(m.kind == FailureKind.REFUSED for m in measurements)
    if ok and ok + refused == len(measurements):
        return "ok"
    return "partial" if ok else "failed"


def _progress_relay(emit, variant: str, round_number: int) -> Callable[[Progress], None]:
    def relay(progress: Progress) -> None:
        emit("progress", variant, round_number, phase=progress.phase, done=progress.done, total=progress.total)

    return relay


def _leftovers_message(agents: list[dict]) -> str:
    shown = ", ".join(f"pid {agent['pid']} measuring {Path(str(agent.get('model'))).name}" for agent in agents)
    return f"stopped {len(agents)} agent(s) an earlier measurement left running on the device ({shown})"
