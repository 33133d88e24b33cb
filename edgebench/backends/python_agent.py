"""The Python agent backend: edgebench/agent/agent.py run on the device with its own Python.

Owns the agent protocol: the argv it takes, its --probe and --lease actions, the
one JSON document it prints, and what a crash without a document means.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from edgebench.agent import agent
from edgebench.backends.base import Backend, HostFiles, Progress
from edgebench.core.fileio import sha256_file
from edgebench.core.settings import Settings
from edgebench.results.store import AGENT_SCHEMA_VERSIONS, FailureKind, Measurement
from edgebench.transport.base import CommandResult, DeviceError, HealthCheckFailed, Stalled, Transport

AGENT_FILE = Path(agent.__file__)
PROBE_TIMEOUT_S = 120.0


class PythonAgent(Backend):
    """The agent on one device, reached through one open transport."""

    name = "python-agent"

    def __init__(self, transport: Transport):
        self.transport = transport
        self._agent_path: str | None = None

    @property
    def agent_path(self) -> str:
        """The agent's path on the device, pushed on first use (content-addressed: once per device)."""
        if self._agent_path is None:
            self._agent_path = self.transport.stage(AGENT_FILE, sha256_file(AGENT_FILE))
        return self._agent_path

    def probe(self, runtime: str | None = None, python: list[str] | None = None, workdir: str | None = None) -> dict:
        """What Python, numpy and runtime the device has, its cores, free disk and temperature.

        `python` overrides the device's interpreter (devices setup checks the venv it made)."""
        python = python or self.transport.python()
        argv = [*python, self.agent_path, "--probe"] + (["--runtime", runtime] if runtime else [])
        if workdir:
            argv += ["--workdir", workdir]
        result = self.transport.run(argv, timeout=PROBE_TIMEOUT_S)
        document = parse_document(result.stdout, agent.PROBE_KIND)
        if document is not None:
            return document
        shown = " ".join(python)
        if result.exit_code == 127:
            raise DeviceError(f"the device's python {shown!r} was not found: {' | '.join(result.stderr_tail[-2:])}")
        raise DeviceError(f"the agent could not start with {shown!r} on the device: {crash_message(result)}")

    def measure(
        self,
        variant: str,
        round_number: int,
        model_path: str,
        sha256: str,
        settings: Settings,
        *,
        dataset_path: str | None,
        reference_path: str | None,
        on_progress: Callable[[Progress], None],
        host: HostFiles | None = None,  # unused: the agent measures accuracy on the device itself
        float32_predictions: str | None = None,
        float32_model: str | None = None,
        probes: Sequence[str] = (),
    ) -> Measurement:
        """One agent process measuring one variant; accuracy and fidelity in the first round only."""
        argv = [*self.transport.python(), self.agent_path, model_path, "--sha256", sha256]
        if dataset_path:
            argv += ["--dataset", dataset_path]
        if reference_path and round_number == 1:
            argv += ["--reference", reference_path]
        if float32_predictions and round_number == 1:
            argv += ["--float32-predictions", float32_predictions]
        if float32_model and settings.profile and round_number == 1:
            argv += ["--float32-model", float32_model]
        if probes and settings.profile and round_number == 1:
            argv += ["--probes", ",".join(probes)]
        argv += settings.agent_argv(with_accuracy=round_number == 1)
        lease_dir = self.transport.lease_dir()
        if lease_dir:  # so the next lease holder can stop this agent if its controller loses it
            argv += ["--register", lease_dir]
        result = self.transport.run(
            argv, timeout=settings.timeout, on_stderr_line=_progress_relay(on_progress),
            stall_timeout=settings.stall_timeout,
        )  # fmt: skip
        return interpret(variant, round_number, result, settings.timeout)

    def require_runnable(self, probe: dict, device_name: str) -> dict:
        return require_runnable(probe, device_name)

    def temperature(self) -> float | None:
        """The device's temperature now (the probe reads it), for a cool-down."""
        return self.probe().get("temperature_c")

    def lease_call(self, lease_dir: str, owner: object, ttl: float,
                   stall_timeout: float | None = None) -> Callable[[str], dict]:  # fmt: skip
        """agent.py --lease ACTION on the device, as a function for DeviceLease. A lease action takes a second;
        one that says nothing for the stall timeout is a frozen board (Stalled), not a busy one."""

        def call(action: str, replaces: tuple[str, ...] = ()) -> dict:
            who = owner.replacing(replaces) if replaces else owner
            argv = [*self.transport.python(), self.agent_path, "--lease", action, "--lease-dir", lease_dir,
                    "--owner", json.dumps(dataclasses.asdict(who)), "--ttl", str(ttl)]  # fmt: skip
            result = self.transport.run(argv, timeout=stall_timeout or PROBE_TIMEOUT_S, stall_timeout=stall_timeout)
            if result.timed_out:
                raise Stalled(
                    f"the device did not answer the lease {action} within {stall_timeout or PROBE_TIMEOUT_S:g}s"
                )
            answer = parse_document(result.stdout, agent.LEASE_KIND)
            if answer is None:
                raise DeviceError(f"the device lease could not be taken ({action}): {crash_message(result)}")
            return answer

        return call


def require_runnable(probe: dict, device_name: str) -> dict:
    """A device without numpy or a runtime fails its health check: a farm quarantines it until it passes."""
    setup = f"run 'edgebench devices setup {device_name}'"
    if probe.get("numpy") is None:
        python = probe.get("python")
        raise HealthCheckFailed(
            f"device {device_name!r} failed its health check: numpy is not installed (Python {python}): {setup}"
        )
    if probe.get("runtime") is None:
        raise HealthCheckFailed(
            f"device {device_name!r} failed its health check: no TFLite runtime on device {device_name!r} "
            f"({probe.get('runtime_error')}): {setup} (installs "
            "ai-edge-litert, or tflite-runtime with numpy<2 where only that fits)"
        )
    return probe


def interpret(variant: str, round_number: int, result: CommandResult, timeout: float | None) -> Measurement:
    """The agent's exit and output -> a Measurement with a one-line error when it failed."""
    document = parse_document(result.stdout)
    if result.timed_out:
        return Measurement.failed(variant, round_number, FailureKind.TIMED_OUT, f"agent timed out after {timeout:g}s",
                                  document)  # fmt: skip
    if document is None:
        return Measurement.failed(variant, round_number, FailureKind.CRASHED, crash_message(result))
    if document.get("schema_version") not in AGENT_SCHEMA_VERSIONS:
        message = f"the agent wrote schema_version {document.get('schema_version')!r}; this edgebench reads " + (
            ", ".join(str(v) for v in AGENT_SCHEMA_VERSIONS)
        )
        return Measurement.failed(variant, round_number, FailureKind.AGENT_ERROR, message)
    if document.get("status") != "ok":
        error = document.get("error") or {}
        message = f"{error.get('kind', 'error')}: {error.get('message', 'no message')}"
        kind = FailureKind.AGENT_ERROR
        if error.get("kind") == "model-load-failed":
            # The device's runtime refuses the file (an op or type it does not know): a property of that device,
            # not a crash.
            message = f"unsupported on this device: {error.get('message', '')}"
            kind = FailureKind.UNSUPPORTED
        elif error.get("kind") == "accelerator-failed":
            message = error.get("message", "")  # "the gpu accelerator could not take this model: ..."
            kind = FailureKind.REFUSED
        return Measurement.failed(variant, round_number, kind, message, document)
    return Measurement(variant, round_number, "ok", document)


def parse_document(stdout: str, kind: str = agent.RESULT_KIND) -> dict | None:
    """The agent's JSON document of this kind: the last such line of its stdout."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and document.get("kind") == kind:
            return document
    return None


def crash_message(result: CommandResult) -> str:
    code = result.exit_code
    how = f"exit code {code}"
    if code is not None and code < 0:
        how = f"signal {signal.Signals(-code).name}" if -code in signal.valid_signals() else how
    elif code is not None and code > 128:  # a shell reports a signalled child as 128 + N
        how += f" (signal {signal.Signals(code - 128).name})" if code - 128 in signal.valid_signals() else ""
    tail = [line for line in result.stderr_tail if not line.startswith(agent.PROGRESS_PREFIX)][-3:]
    last = "; last stderr: " + " | ".join(tail) if tail else ""
    return f"agent crashed ({how}) without a result{last}"


def _progress_relay(on_progress: Callable[[Progress], None]) -> Callable[[str], None]:
    def relay(line: str) -> None:
        if not line.startswith(agent.PROGRESS_PREFIX):
            return
        try:
            update = json.loads(line[len(agent.PROGRESS_PREFIX) :])
        except ValueError:
            return
        if update.get("heartbeat"):
            return  # proof of life for stall detection, nothing new to show
        on_progress(Progress(update.get("phase"), update.get("done"), update.get("total")))

    return relay
