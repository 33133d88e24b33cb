"""Run the agent on one device for each variant, one process at a time, and keep what it says.

The runner emits events and never prints. Each measurement is stored as soon
as it arrives, so a failure or a Ctrl-C later in the run loses nothing.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from edgebench.agent import agent
from edgebench.fileio import sha256_file
from edgebench.lease import LEASE_MARGIN_S, DeviceLease, Owner
from edgebench.results import AGENT_SCHEMA_VERSIONS, Measurement, RunStore
from edgebench.transport.base import (
    DEFAULT_STALL_SECONDS,
    CommandResult,
    ConnectionLost,
    DeviceError,
    Stalled,
    Transport,
)
from edgebench.variants import Variant

AGENT_FILE = Path(agent.__file__)
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class AgentSettings:
    """What the agent is told; defaults follow TFLite's benchmark_model."""

    threads: int = 1
    delegate: str = "xnnpack"
    cpus: tuple[int, ...] = ()
    samples: int | None = None  # None: the whole evaluation set
    warmup_min_runs: int = 1
    warmup_min_seconds: float = 0.5
    min_runs: int = 50
    min_seconds: float = 1.0
    max_seconds: float = 150.0
    runtime: str | None = None  # None: the first importable one

    def argv(self, *, with_accuracy: bool) -> list[str]:
        args = ["--threads", str(self.threads), "--delegate", self.delegate]
        args += ["--warmup-min-runs", str(self.warmup_min_runs), "--warmup-min-seconds", str(self.warmup_min_seconds)]
        args += ["--min-runs", str(self.min_runs), "--min-seconds", str(self.min_seconds)]
        args += ["--max-seconds", str(self.max_seconds)]
        if self.cpus:
            args += ["--cpus", ",".join(str(c) for c in self.cpus)]
        if self.runtime:
            args += ["--runtime", self.runtime]
        samples = self.samples if with_accuracy else 0
        if samples is not None:
            args += ["--samples", str(samples)]
        return args

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunEvent:
    kind: str  # "stage", "start", "progress" or "done"
    variant: str = ""
    round: int = 1
    phase: str | None = None
    done: int | None = None
    total: int | None = None
    status: str | None = None
    message: str | None = None


@dataclass
class RunPlan:
    variants: Sequence[Variant]
    dataset_path: Path | None
    settings: AgentSettings
    rounds: int = 1
    timeout: float | None = DEFAULT_TIMEOUT_S
    reference_path: Path | None = None  # float32 reference inputs and outputs, for fidelity
    owner: Owner | None = None  # who takes the device lease; None: no lease (tests driving execute directly)
    stall_timeout: float | None = DEFAULT_STALL_SECONDS  # an agent silent this long is stalled
    wait: float = 0.0  # how long to wait for a busy device


def execute(plan: RunPlan, transport: Transport, store: RunStore, on_event: Callable[[RunEvent], None]) -> str:
    """Measure every variant `plan.rounds` times, interleaved (A B C, A B C, ...).

    Interleaving spreads slow drift of the machine (heat, background load)
    over all variants instead of biasing the last ones. Returns the run status.
    """
    try:
        on_event(RunEvent("stage", message="agent and models"))
        agent_path = transport.stage(AGENT_FILE, sha256_file(AGENT_FILE))
        device_name = store.summary.get("device", {}).get("name", "")
        store.summary["device_probe"] = require_runnable(
            probe_device(transport, agent_path, plan.settings.runtime), device_name
        )
        if plan.settings.cpus and store.summary["device_probe"].get("cores"):
            check_cpus(plan.settings.cpus, range(store.summary["device_probe"]["cores"]), device_name)
        lease = None
        if plan.owner and transport.lease_dir():
            ttl = (plan.timeout or DEFAULT_TIMEOUT_S) + LEASE_MARGIN_S
            lease = DeviceLease(_lease_call(transport, agent_path, plan.owner, ttl), device_name)
            on_event(RunEvent("stage", message="waiting for the device lease"))
            lease.acquire(plan.wait)
        try:
            return _measure_all(plan, transport, store, on_event, agent_path, lease)
        finally:
            if lease:
                lease.release()
    except KeyboardInterrupt:
        store.finish("interrupted", {"pushed_bytes": transport.bytes_pushed})
        raise


def _measure_all(plan: RunPlan, transport: Transport, store: RunStore, on_event, agent_path: str,
                 lease: DeviceLease | None) -> str:  # fmt: skip
    """Every variant, every round, in order; each measurement stored as it arrives."""
    dataset_path = transport.stage(plan.dataset_path, sha256_file(plan.dataset_path)) if plan.dataset_path else None
    reference_path = None
    if plan.reference_path:
        reference_path = transport.stage(plan.reference_path, sha256_file(plan.reference_path))
    model_paths: dict[str, str] = {}
    failed: set[str] = set()  # a model that failed once is not retried in later rounds

    for round_number in range(1, plan.rounds + 1):
        for variant in plan.variants:
            if variant.name in failed:
                continue
            try:
                if variant.name not in model_paths:
                    # Pushed just before its first measurement: a model that does not fit
                    # on the device fails alone, and the ones that fit are still measured.
                    on_event(RunEvent("stage", variant.name, message=f"{variant.size_bytes:,} bytes"))
                    model_paths[variant.name] = transport.stage(variant.path, variant.sha256)
                if lease:
                    lease.renew()  # for one more agent timeout: a dead controller's lease expires soon
                on_event(RunEvent("start", variant.name, round_number))
                argv = [*transport.python(), agent_path, model_paths[variant.name], "--sha256", variant.sha256]
                if dataset_path:
                    argv += ["--dataset", dataset_path]
                if reference_path and round_number == 1:
                    argv += ["--reference", reference_path]
                argv += plan.settings.argv(with_accuracy=round_number == 1)
                result = transport.run(
                    argv, timeout=plan.timeout, on_stderr_line=_progress_relay(on_event, variant.name, round_number),
                    stall_timeout=plan.stall_timeout,
                )  # fmt: skip
            except Stalled as error:
                # This variant is lost; the connection was dropped, and the next command opens a
                # fresh one: a board that froze for a moment measures the rest, one that stays
                # silent fails that reconnect and ends the run below, what was measured kept.
                measurement = Measurement(variant.name, round_number, "failed", error=f"stalled: {error}")
            except ConnectionLost as error:
                failed |= _device_lost(plan, failed, store, variant.name, round_number, str(error), on_event)
                break
            except DeviceError as error:
                if variant.name in model_paths:  # the command itself could not run: the device is gone
                    failed |= _device_lost(plan, failed, store, variant.name, round_number, str(error), on_event)
                    break
                measurement = Measurement(variant.name, round_number, "failed", error=str(error))
            else:
                measurement = interpret(variant.name, round_number, result, plan.timeout)
            store.add(measurement)
            if measurement.status != "ok":
                failed.add(variant.name)
            on_event(RunEvent("done", variant.name, round_number, status=measurement.status,
                              message=measurement.error))  # fmt: skip
    status = run_status(store.measurements)
    store.finish(status, {"pushed_bytes": transport.bytes_pushed})
    return status


def _lease_call(transport: Transport, agent_path: str, owner: Owner, ttl: float) -> Callable[[str], dict]:
    """agent.py --lease ACTION on the device, as a function for DeviceLease."""

    def call(action: str) -> dict:
        argv = [*transport.python(), agent_path, "--lease", action, "--lease-dir", transport.lease_dir(),
                "--owner", json.dumps(dataclasses.asdict(owner)), "--ttl", str(ttl)]  # fmt: skip
        result = transport.run(argv, timeout=120)
        answer = _parse_document(result.stdout, agent.LEASE_KIND)
        if answer is None:
            raise DeviceError(f"the device lease could not be taken ({action}): {_crash_message(result)}")
        return answer

    return call


def probe_device(
    transport: Transport, agent_path: str, runtime: str | None = None, python: list[str] | None = None
) -> dict:
    """Run the agent's --probe on the device: what Python, numpy and runtime it has.

    `python` overrides the device's interpreter (devices setup checks the venv it made)."""
    python = python or transport.python()
    argv = [*python, agent_path, "--probe"] + (["--runtime", runtime] if runtime else [])
    result = transport.run(argv, timeout=120)
    document = _parse_document(result.stdout, agent.PROBE_KIND)
    if document is not None:
        return document
    python = " ".join(python)
    if result.exit_code == 127:
        raise DeviceError(f"the device's python {python!r} was not found: {' | '.join(result.stderr_tail[-2:])}")
    raise DeviceError(f"the agent could not start with {python!r} on the device: {_crash_message(result)}")


def check_cpus(cpus: Sequence[int], available: Sequence[int], device_name: str) -> None:
    """--cpus must name CPUs the device has (and may use), said before anything runs, not as 'Errno 22'."""
    missing = sorted(set(cpus) - set(available))
    if missing:
        raise DeviceError(
            f"--cpus {','.join(map(str, cpus))}: device {device_name!r} has no CPU {','.join(map(str, missing))} "
            f"(it has {','.join(map(str, available))})"
        )


def require_runnable(probe: dict, device_name: str) -> dict:
    setup = f"run 'edgebench devices setup {device_name}'"
    if probe.get("numpy") is None:
        raise DeviceError(f"numpy is not installed on device {device_name!r} (Python {probe.get('python')}): {setup}")
    if probe.get("runtime") is None:
        raise DeviceError(
            f"no TFLite runtime on device {device_name!r} ({probe.get('runtime_error')}): {setup} (installs "
            "ai-edge-litert, or tflite-runtime with numpy<2 where only that fits)"
        )
    return probe


def _device_lost(plan: RunPlan, failed: set[str], store: RunStore, variant: str, round_number: int, error: str,
                 on_event) -> set[str]:  # fmt: skip
    """The device went away: this measurement and every later one fail with the reason; no retries.

    Returns the variants that are now failed, so the loop skips them."""
    store.add(Measurement(variant, round_number, "failed", error=error))
    on_event(RunEvent("done", variant, round_number, status="failed", message=error))
    names = [v.name for v in plan.variants if v.name not in failed]
    later = [(n, round_number) for n in names[names.index(variant) + 1 :]]
    later += [(n, r) for r in range(round_number + 1, plan.rounds + 1) for n in names]
    for name, number in later:
        store.add(Measurement(name, number, "failed", error=f"not measured: {error}"))
        on_event(RunEvent("done", name, number, status="failed", message=error))
    return set(names)


def run_status(measurements: Sequence[Measurement]) -> str:
    ok = sum(m.status == "ok" for m in measurements)
    if ok == len(measurements):
        return "ok"
    return "partial" if ok else "failed"


def interpret(variant: str, round_number: int, result: CommandResult, timeout: float | None) -> Measurement:
    """The agent's exit and output -> a Measurement with a one-line error when it failed."""
    document = _parse_document(result.stdout)
    if result.timed_out:
        return Measurement(variant, round_number, "failed", document, f"agent timed out after {timeout:g}s")
    if document is None:
        return Measurement(variant, round_number, "failed", None, _crash_message(result))
    if document.get("schema_version") not in AGENT_SCHEMA_VERSIONS:
        message = f"the agent wrote schema_version {document.get('schema_version')!r}; this edgebench reads " + (
            ", ".join(str(v) for v in AGENT_SCHEMA_VERSIONS)
        )
        return Measurement(variant, round_number, "failed", None, message)
    if document.get("status") != "ok":
        error = document.get("error") or {}
        message = f"{error.get('kind', 'error')}: {error.get('message', 'no message')}"
        if error.get("kind") == "model-load-failed":
            # The device's runtime refuses the file (an op or type it does not know): a
            # property of that device, not a crash.
            message = f"unsupported on this device: {error.get('message', '')}"
        return Measurement(variant, round_number, "failed", document, message)
    return Measurement(variant, round_number, "ok", document)


def _parse_document(stdout: str, kind: str = agent.RESULT_KIND) -> dict | None:
    """The agent's JSON document of this kind: the last such line of its stdout."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and document.get("kind") == kind:
            return document
    return None


def _crash_message(result: CommandResult) -> str:
    code = result.exit_code
    how = f"exit code {code}"
    if code is not None and code < 0:
        how = f"signal {signal.Signals(-code).name}" if -code in signal.valid_signals() else how
    elif code is not None and code > 128:  # a shell reports a signalled child as 128 + N
        how += f" (signal {signal.Signals(code - 128).name})" if code - 128 in signal.valid_signals() else ""
    tail = [line for line in result.stderr_tail if not line.startswith(agent.PROGRESS_PREFIX)][-3:]
    last = "; last stderr: " + " | ".join(tail) if tail else ""
    return f"agent crashed ({how}) without a result{last}"


def _progress_relay(on_event, variant: str, round_number: int) -> Callable[[str], None]:
    def relay(line: str) -> None:
        if not line.startswith(agent.PROGRESS_PREFIX):
            return
        try:
            update = json.loads(line[len(agent.PROGRESS_PREFIX) :])
        except ValueError:
            return
        if update.get("heartbeat"):
            return  # proof of life for stall detection, nothing new to show
        on_event(RunEvent("progress", variant, round_number, update.get("phase"), update.get("done"),
                          update.get("total")))  # fmt: skip

    return relay
