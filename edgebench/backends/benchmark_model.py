"""The native benchmark_model backend: TFLite/LiteRT's own benchmark binary, run on a phone that has no Python.

It measures latency and memory with the phone's own runtime (the binary) and turns what the
binary prints (benchmark_output) or writes (benchmark_proto) into the document the Python agent
writes, so the table, history and verdicts read both. What it cannot give is marked, not
invented:
- no per-sample latencies: `timing.per_sample` is false, `samples_us` empty, p90 absent; p50 is
  the binary's median when it prints one, else its mean (`timing.p50_is`), and a comparison
  uses the statistics it has and says so;
- benchmark_model feeds random inputs: no accuracy comes from the phone. Accuracy and fidelity
  are computed on this host, with its own LiteRT runtime on the same variant files, and labelled
  so in the document (`sources`) and the table's header.
The device lease is taken with plain shell (mkdir), the same folder protocol as the agent's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shlex
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgebench.agent import agent
from edgebench.backends.android_facts import (
    TOOL_LITERT,
    TOOL_PYTHON,
    TOOL_TFLITE,
    describe,
    facts_script,
    parse_facts,
    temperature_script,
)
from edgebench.backends.base import Backend, HostFiles, Progress
from edgebench.backends.benchmark_output import Figures, figures_from_litert_json, figures_from_proto, parse_output
from edgebench.backends.benchmark_proto import parse_result
from edgebench.backends.op_profile import parse_op_profile, parse_op_profile_proto
from edgebench.core.fileio import sha256_file
from edgebench.core.settings import Settings
from edgebench.results.store import ASYNCHRONOUS_TIMING, FailureKind, Measurement
from edgebench.transport.base import DeviceError, HealthCheckFailed, Transport

SCHEMA_VERSION = 3  # an agent-result document without per-sample latencies (see results.AGENT_SCHEMA_VERSIONS)
NAME = "benchmark_model"


@dataclass(frozen=True)
class BenchmarkBinary:
    """The [benchmark_model] section: where the native benchmark binary comes from.

    `path` is a file on this host, pushed (content-addressed) like a model; `device_path` is one
    already on the device. `edgebench devices setup NAME --benchmark-binary FILE` fills in `path`."""

    path: Path | None = None
    device_path: str | None = None
    extra_flags: tuple[str, ...] = ()  # passed as given, after edgebench's own (e.g. "--use_gpu=true")
    version: str | None = None  # what the table says the runtime is (the binary does not print its version)


class BenchmarkModelBackend(Backend):
    profiles_operators = True  # --enable_op_profiling
    name = NAME

    def __init__(self, transport: Transport, device_name: str, source: BenchmarkBinary):
        self.transport = transport
        self.device_name = device_name
        self.source = source
        self._binary: str | None = None
        self.facts: dict = {}

    # -- the binary -------------------------------------------------------------------------------

    @property
    def binary(self) -> str:
        """Its path on the device: pushed once (content-addressed) when the device file names a host file."""
        if self._binary is None:
            source = self.source
            if source.path is not None:
                if not source.path.is_file():
                    raise DeviceError(f"device {self.device_name!r}: [benchmark_model] path {source.path} is missing")
                staged = self.transport.stage(source.path, sha256_file(source.path))
                self.transport.shell(f"chmod 755 {shlex.quote(staged)}")
                self._binary = staged
            else:
                self._binary = source.device_path
        return self._binary

    # -- the backend contract ---------------------------------------------------------------------

    def probe(self, runtime: str | None = None, python: list[str] | None = None, workdir: str | None = None) -> dict:
        """Device facts (getprop, cores and frequencies, temperatures, free space) and the binary's state."""
        workdir = workdir or self.transport.workdir()
        result = self.transport.shell(facts_script(workdir, self.binary))
        if result.exit_code != 0:
            why = " | ".join(result.stderr_tail[-2:])
            raise DeviceError(f"device {self.device_name!r}: reading its facts failed: {why}")
        facts = parse_facts(result.stdout)
        self.facts = facts
        return {"kind": agent.PROBE_KIND, "backend": NAME, "description": describe(facts), **facts,
                "binary_path": self.binary}  # fmt: skip

    def require_runnable(self, probe: dict, device_name: str | None = None) -> dict:
        state = probe.get("binary")
        if state == "executable":
            return probe
        where = f"{probe.get('binary_path')} on device {self.device_name!r}"
        if state == "not-executable":
            raise HealthCheckFailed(
                f"device {self.device_name!r} failed its health check: benchmark_model at {where} is not executable "
                "(chmod 755 it; on a stock phone only /data/local/tmp lets adb run binaries)"
            )
        raise HealthCheckFailed(
            f"device {self.device_name!r} failed its health check: no benchmark_model at {where}: set "
            f"[benchmark_model] path, or run 'edgebench devices setup {self.device_name} --benchmark-binary FILE'"
        )

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
        host: HostFiles | None = None,
        float32_predictions: str | None = None,  # the device's copy; the host's is host.float32_predictions
        float32_model: str | None = None,
        probes: Sequence[str] = (),  # the Python agent's; benchmark_model profiles operators itself
    ) -> Measurement:
        json_result = self.tool == TOOL_PYTHON
        suffix = "json" if json_result else "pb"
        proto_path = f"{self._scratch()}/result-{sha256[:12]}-r{round_number}.{suffix}"
        writes = json_result or self.facts.get("binary_writes_proto")
        argv = self.command(model_path, settings, proto_path if writes else None)
        on_progress(Progress("latency", None, None))
        before = self.facts.get("temperature_c")
        started = time.time()
        # benchmark_model logs to stderr; both streams are read whole, in order. It prints nothing while it
        # measures, so the phone beats for it: a line every few seconds while its CPU time grows. A frozen
        # phone, or a binary that stops progressing, falls silent and is a stall after --stall-timeout.
        timeout = settings.timeout
        result = self.transport.run(["sh", "-c", heartbeat_script(shlex.join(argv))], timeout=timeout,
                                    stall_timeout=settings.stall_timeout)  # fmt: skip
        if result.timed_out:
            why = f"benchmark_model timed out after {timeout:g}s"
            return Measurement.failed(variant, round_number, FailureKind.TIMED_OUT, why)
        figures = parse_output(result.stdout)
        if writes and figures.format != "proto":
            figures = self._result_file(proto_path, json_result, figures)
        if result.exit_code != 0 or not figures.measured:
            kind, why = _failure(result.exit_code, figures, result.stdout)
            return Measurement.failed(variant, round_number, kind, why)
        after = self.temperature()
        document = self.document(model_path, sha256, settings, figures, started, (before, after))
        if round_number == 1 and settings.profile:
            on_progress(Progress("operators", None, None))
            document["operators"] = self.operator_profile(model_path, settings)
        if round_number == 1 and host is not None:
            on_progress(Progress("accuracy", None, None))
            document.update(host_accuracy(host, settings.samples, settings.accuracy_tolerance, self.tool))
        return Measurement(variant, round_number, "ok", document)

    def _result_file(self, path: str, json_result: bool, printed: Figures) -> Figures:
        """The binary's result file (the Python edition's JSON, or the proto) merged over what it printed, then
        removed from the device; what it printed alone when the file is missing or unreadable."""
        data = self.transport.read_bytes(path)
        self.transport.shell(f"rm -f {shlex.quote(path)}")
        parsed = None
        if data and json_result:
            with contextlib.suppress(ValueError):
                parsed = figures_from_litert_json(json.loads(data))
        elif data:
            proto = parse_result(data)
            parsed = figures_from_proto(proto) if proto else None
        return _merge(parsed, printed) if parsed else printed

    def _scratch(self) -> str:
        """Where the binary writes its result files: the device's workdir; this machine's temporary folder when
        the device is this machine (it has no workdir)."""
        return self.transport.workdir() or tempfile.gettempdir()

    def operator_profile(self, model_path: str, settings: Settings) -> dict:
        """A second run of the binary with --enable_op_profiling=true, after the measured one: the profiler's own
        overhead stays out of the latency figures. Its Run Order table, parsed (backends/op_profile.py)."""
        started = time.time()
        flag = self.facts.get("binary_profiler_flag", "--enable_op_profiling=true")  # LiteRT's: --use_profiler
        argv = [*self.command(model_path, settings, None), flag]
        proto_path = f"{self._scratch()}/op-profile-{Path(model_path).parent.name[:12]}.pb"
        if self.facts.get("binary_writes_op_proto"):
            argv += ["--op_profiling_output_mode=proto", f"--op_profiling_output_file={proto_path}"]
        result = self.transport.run(["sh", "-c", heartbeat_script(shlex.join(argv))], timeout=settings.timeout,
                                    stall_timeout=settings.stall_timeout)  # fmt: skip
        rows, layout = (parse_op_profile(result.stdout), "text") if not result.timed_out else (None, None)
        if self.facts.get("binary_writes_op_proto") and not result.timed_out:
            data = self.transport.read_bytes(proto_path)
            self.transport.shell(f"rm -f {shlex.quote(proto_path)}")
            from_proto = parse_op_profile_proto(data) if data else None
            rows, layout = (from_proto, "proto") if from_proto is not None else (rows, layout)
        profile = {"source": f"benchmark_model {flag.split('=')[0]} (each node inside the model)", "format": layout,
                   "seconds": time.time() - started}  # fmt: skip
        if rows is None:
            profile["error"] = "benchmark_model printed no per-operator table"
        else:
            profile["rows"] = [row.as_dict() for row in rows]
        return profile

    @property
    def tool(self) -> str:
        """Which benchmark tool the binary is (its --help told the probe): TFLite's, LiteRT's, LiteRT's Python."""
        return self.facts.get("binary_tool", TOOL_TFLITE)

    def command(self, model_path: str, settings: Settings, proto_path: str | None) -> list[str]:
        """The binary's argv from the run's settings; `taskset` pins it when CPUs are given."""
        runs = max(settings.min_runs, 1)
        if self.tool == TOOL_PYTHON:
            argv = self._python_edition_command(model_path, settings, runs, proto_path)
        elif self.tool == TOOL_LITERT:
            argv = self._litert_command(model_path, settings, runs, proto_path)
        else:
            argv = self._tflite_command(model_path, settings, runs, proto_path)
        argv += list(self.source.extra_flags)
        if settings.cpus:
            argv = ["taskset", format(sum(1 << cpu for cpu in settings.cpus), "x"), *argv]
        return argv

    def _timing_flags(self, model_path: str, settings: Settings, runs: int) -> list[str]:
        """The flags TFLite's benchmark_model and LiteRT's C++ benchmark_litert_model share (BenchmarkModel's)."""
        return [
            self.binary, f"--graph={model_path}", f"--num_threads={settings.threads}",
            f"--warmup_runs={settings.warmup_min_runs}", f"--warmup_min_secs={settings.warmup_min_seconds:g}",
            f"--num_runs={runs}", f"--min_secs={settings.min_seconds:g}", f"--max_secs={settings.max_seconds:g}",
            "--report_peak_memory_footprint=true",
        ]  # fmt: skip

    def _litert_command(self, model_path: str, settings: Settings, runs: int, proto_path: str | None) -> list[str]:
        """LiteRT's benchmark_litert_model: TFLite's timing flags, CompiledModel's accelerators (no delegates)."""
        argv = self._timing_flags(model_path, settings, runs)
        argv += {"gpu": ["--use_gpu=true"], "npu": ["--use_npu=true"]}.get(settings.accelerator or "", [])
        if settings.accelerator == "gpu" and settings.gpu_precision == "fp32":
            argv.append("--allow_fp16=false")
        if proto_path:
            argv.append(f"--result_file_path={proto_path}")
        return argv

    def _python_edition_command(self, model_path: str, settings: Settings, runs: int,
                                json_path: str | None) -> list[str]:  # fmt: skip
        """The wheel's benchmark_litert_model.py: a fixed number of runs (no time limits), switches without
        values, its result as JSON."""
        argv = [self.binary, f"--model={model_path}", f"--num_threads={settings.threads}",
                f"--warmup_runs={settings.warmup_min_runs}", f"--num_runs={runs}"]  # fmt: skip
        argv += {"gpu": ["--use_gpu"], "npu": ["--use_npu"]}.get(settings.accelerator or "", [])
        if json_path:
            argv.append(f"--result_json={json_path}")
        return argv

    def _tflite_command(self, model_path: str, settings: Settings, runs: int, proto_path: str | None) -> list[str]:
        argv = self._timing_flags(model_path, settings, runs)
        argv.append(f"--use_xnnpack={'true' if settings.delegate == 'xnnpack' else 'false'}")
        # The device's accelerator, as benchmark_model spells it: the GPU delegate, or NNAPI for an NPU/DSP.
        argv += {"gpu": ["--use_gpu=true"], "npu": ["--use_nnapi=true"]}.get(settings.accelerator or "", [])
        if settings.accelerator == "npu" and settings.nnapi_accelerator:
            argv.append(f"--nnapi_accelerator_name={settings.nnapi_accelerator}")
        if settings.accelerator == "gpu" and settings.gpu_precision == "fp32":
            argv.append("--gpu_precision_loss_allowed=false")
        if proto_path:
            argv.append(f"--result_file_path={proto_path}")
        return argv

    def document(self, model_path: str, sha256: str, settings: Settings, figures: Figures, started: float,
                 temperatures: tuple) -> dict:  # fmt: skip
        inference = figures.inference
        median = inference.median
        stats = {
            "count": inference.count, "mean": inference.mean, "min": inference.min, "max": inference.max,
            "std": inference.std, "p5": inference.p5, "p95": inference.p95,
            # p50: the binary's median when it printed one, else its mean; p90: it never gives one.
            "p50": median if median is not None else inference.mean, "p90": None,
            "cv": inference.std / inference.mean if inference.std is not None and inference.mean else None,
        }  # fmt: skip
        warnings = []
        if median is None:
            warnings.append({"kind": "no-median", "message": "benchmark_model printed no median: p50 is its mean"})
        if self.tool != TOOL_TFLITE and settings.accelerator in ("gpu", "npu"):
            warnings.append({"kind": ASYNCHRONOUS_TIMING, "message": asynchronous_timing_message(self.tool)})
        memory_mb = figures.memory_mb
        android = self.facts.get("android", {})
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": agent.RESULT_KIND,
            "status": "ok",
            "backend": NAME,
            "model": {"path": model_path, "sha256": sha256},
            "timing": {
                "per_sample": False,
                "samples_us": [],
                "stats": stats,
                "p50_is": "median" if median is not None else "mean",
                "load_us": figures.init_us or 0.0,
                "allocate_us": 0.0,  # the binary's init includes allocation
                "warmup": {"count": figures.warmup.count, "mean": figures.warmup.mean, "first": figures.warmup.first},
                "source": figures.format,
            },
            "memory": {
                "peak_rss_after_runs": memory_mb["peak"] * 2**20 if "peak" in memory_mb else None,
                "footprint_init_bytes": memory_mb["init"] * 2**20 if "init" in memory_mb else None,
                "footprint_overall_bytes": memory_mb["overall"] * 2**20 if "overall" in memory_mb else None,
                "source": "benchmark_model periodic monitoring (peak) and footprint deltas",
            },
            "environment": {
                "runtime": {"name": self.tool, "version": self.source.version or "unknown"},
                "machine": android.get("abi"),
                "cpu_model": android.get("soc") or android.get("hardware"),
                "android": android,
                "big_cores": self.facts.get("big_cores"),
                "cores": self.facts.get("cores"),
                "binary": self.binary,
            },
            "settings": {
                "threads": settings.threads,
                "delegate": settings.delegate,
                "cpus": list(settings.cpus),
                "accelerator": settings.accelerator,
            },
            "placement": delegation_placement(figures, settings)
            if self.tool == TOOL_TFLITE
            else compiled_placement(figures, settings, self.tool),
            "thermal": {"before_c": temperatures[0], "after_c": temperatures[1]},
            "started_unix": started,
            "finished_unix": time.time(),
            "warnings": warnings,
            "sources": {"latency": f"device: {self.tool}", "memory": f"device: {self.tool}"},
        }

    def temperature(self) -> float | None:
        """The hottest thermal zone (or the battery) now: thermal sysfs and dumpsys only, not every fact."""
        try:
            return parse_facts(self.transport.shell(temperature_script()).stdout).get("temperature_c")
        except DeviceError:
            return None

    def lease_call(self, lease_dir: str, owner: object, ttl: float,
                   stall_timeout: float | None = None) -> Callable[[str], dict]:  # fmt: skip
        """The device lease with plain shell: the agent's folder protocol (mkdir), for a phone with no Python."""
        owner_json = json.dumps(dataclasses.asdict(owner))

        def call(action: str, replaces: tuple[str, ...] = ()) -> dict:
            values = {
                "@REPLACES@": " ".join(shlex.quote(f"{run_id}") for run_id in (*owner.replaces, *replaces)) or "''",
                "@DIR@": shlex.quote(lease_dir),
                "@LEASE@": agent.LEASE_FOLDER,
                "@ID@": shlex.quote(owner.id),
                "@TTL@": str(int(ttl)),
                "@ACTION@": shlex.quote(action),
                "@OWNER@": shlex.quote(owner_json),
            }
            # One pass: a value that happens to contain a placeholder's text is never substituted into again.
            script = re.sub(r"@[A-Z]+@", lambda match: values[match.group()], LEASE_SCRIPT)
            result = self.transport.shell(script, timeout=stall_timeout)
            return _lease_answer(result.stdout, action)

        return call


HEARTBEAT_SECONDS = 5


def delegation_placement(figures: Figures, settings: Settings) -> dict | None:
    """Which nodes each delegate took, from the binary's own "Replacing N out of M node(s)" lines, and any
    fallback it logged, beside what was asked (the accelerator, NNAPI's device, the GPU's precision); None when
    it printed none (an older binary, or no delegate)."""
    if not figures.delegation and not figures.fallbacks:
        return None
    asked = {"nnapi_accelerator": settings.nnapi_accelerator if settings.accelerator == "npu" else None,
             "gpu_precision": settings.gpu_precision if settings.accelerator == "gpu" else None}  # fmt: skip
    placement = {"source": "benchmark_model log", "asked": settings.accelerator, "delegates": figures.delegation,
                 "fallbacks": figures.fallbacks, **{k: v for k, v in asked.items() if v}}  # fmt: skip
    if figures.delegation:  # the last delegate applied is the one that holds the graph
        placement |= figures.delegation[-1]
    return placement


def compiled_placement(figures: Figures, settings: Settings, tool: str) -> dict | None:
    """LiteRT's tools: the accelerator asked for and the CompiledModel's is_fully_accelerated, as they printed it."""
    if figures.fully_accelerated is None and not settings.accelerator:
        return None
    return {"source": f"{tool} log", "accelerator": settings.accelerator or "cpu",
            "fully_accelerated": figures.fully_accelerated}  # fmt: skip


def asynchronous_timing_message(tool: str) -> str:
    """Why a LiteRT tool's GPU or NPU latency is no inference time: both editions time the run call alone, which
    returns once the work is queued (the C++ RunImpl returns before its lock on the outputs; the Python edition
    never reads them). Measured here: the Python edition timed MNIST on SwiftShader at 0.08 ms, where waiting for
    the outputs (the Python agent's path) takes 17 to 28 ms."""
    return (f"{tool} times the CompiledModel's run call without waiting for the accelerator's outputs: on a GPU or "
            "NPU that is the time to queue the work, not an inference (no speed claims; the Python agent's "
            "accelerator path waits for the outputs)")  # fmt: skip


def heartbeat_script(command: str) -> str:
    """`command` (its stderr into its stdout) in the background, and a line on stderr every few seconds for as
    long as its CPU time (utime + stime, /proc/PID/stat fields 14-15) keeps growing. Lines carry the agent's
    progress prefix, so they are read as heartbeats and never shown as the command's own output."""
    prefix = shlex.quote(agent.PROGRESS_PREFIX + '{"heartbeat": true}')
    # The sleep holds no pipe, so killing the beating subshell closes the last one and the command ends at once.
    # The binary runs in the background of this shell: if the phone's watchdog kills only the shell (a `timeout`
    # that signals its child, not the group), the beating subshell sees its parent gone and kills the binary.
    return (
        f"{command} 2>&1 & b=$!; "
        f"(last=; while kill -0 $b 2>/dev/null; do kill -0 $$ 2>/dev/null || {{ kill -9 $b; break; }}; "
        f"t=$(cut -d' ' -f14,15 /proc/$b/stat 2>/dev/null); "
        f'[ "$t" != "$last" ] && echo {prefix} >&2; last=$t; sleep {HEARTBEAT_SECONDS} </dev/null >/dev/null 2>&1; '
        "done) & h=$!; wait $b; c=$?; kill $h 2>/dev/null; exit $c"
    )


# Mirrors agent.lease: mkdir is atomic; an expired holder's folder is renamed away before taking over.
LEASE_SCRIPT = """p=@DIR@/@LEASE@; id=@ID@; now=$(date +%s); mkdir -p @DIR@
held=$(cat "$p/id" 2>/dev/null); exp=$(cat "$p/expires" 2>/dev/null)
if [ @ACTION@ = release ]; then
  if [ "$held" = "$id" ]; then rm -rf "$p"; echo released=1; else echo released=0; fi; exit 0
fi
if [ "$held" != "$id" ]; then
  if [ @ACTION@ = renew ]; then echo acquired=0; echo lost=1; cat "$p/owner.json" 2>/dev/null; exit 0; fi
  if ! mkdir "$p" 2>/dev/null; then
    if [ -n "$exp" ]; then expired=$([ "$exp" -lt "$now" ] && echo 1); else
      expired=$([ $(( now - $(stat -c %Y "$p" 2>/dev/null || echo $now) )) -gt 60 ] && echo 1); fi
    for dead in @REPLACES@; do [ -n "$held" ] && [ "$dead" = "$held" ] && expired=1; done
    if [ -z "$expired" ]; then echo acquired=0; cat "$p/owner.json" 2>/dev/null; exit 0; fi
    stale="$p.expired-$now-$$"
    if ! { mv "$p" "$stale" && mkdir "$p"; } 2>/dev/null; then echo acquired=0; exit 0; fi
    rm -rf "$stale"
  fi
  echo "$now" > "$p/since"
fi
printf '%s' @OWNER@ > "$p/owner.json"; echo $(( now + @TTL@ )) > "$p/expires"; echo "$id" > "$p/id"
echo acquired=1; cat "$p/owner.json"
"""


def _lease_answer(stdout: str, action: str) -> dict:
    lines = stdout.strip().splitlines()
    flags = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("{"))
    holder = next((json.loads(line) for line in lines if line.startswith("{")), None)
    if action == "release":
        return {"kind": agent.LEASE_KIND, "released": flags.get("released") == "1"}
    if "acquired" not in flags:
        raise DeviceError(f"the device lease could not be taken ({action}): {stdout.strip()[-200:] or 'no answer'}")
    answer = {"kind": agent.LEASE_KIND, "acquired": flags["acquired"] == "1", "holder": holder}
    if flags.get("lost"):
        answer["lost"] = True
    return answer


def _merge(proto: Figures, text: Figures) -> Figures:
    """The proto's figures, with what only the text gave (the first inference, memory lines, the delegates'
    lines) filled in."""
    proto.inference.first = proto.inference.first if proto.inference.first is not None else text.inference.first
    for key, value in text.memory_mb.items():
        proto.memory_mb.setdefault(key, value)
    proto.errors, proto.delegation, proto.fallbacks = text.errors, text.delegation, text.fallbacks
    if proto.fully_accelerated is None:
        proto.fully_accelerated = text.fully_accelerated
    return proto


def _failure(exit_code: int | None, figures: Figures, output: str) -> tuple[FailureKind, str]:
    if exit_code == 126:
        return FailureKind.DEVICE_ERROR, "benchmark_model is not executable on the device (exit 126)"
    if exit_code == 127:
        return FailureKind.DEVICE_ERROR, "benchmark_model was not found on the device (exit 127)"
    if figures.errors:
        message = "; ".join(dict.fromkeys(figures.errors))
        if "flatbuffer" in message.lower() or "mmap model" in message.lower() or "load model" in message.lower():
            return FailureKind.UNSUPPORTED, f"unsupported on this device: {message}"
        return FailureKind.AGENT_ERROR, f"benchmark_model failed (exit code {exit_code}): {message}"
    last = [line for line in output.strip().splitlines() if line.strip()][-1:] or ["no output"]
    return FailureKind.CRASHED, f"benchmark_model printed no timings (exit code {exit_code}): {last[0][:200]}"


def host_accuracy(host: HostFiles, samples: int | None, tolerance_pp: float = 0.0, tool: str = TOOL_TFLITE) -> dict:
    """Top-1 and fidelity of the variant file on THIS host's runtime: the phone's binary feeds random inputs."""
    import numpy as np

    from edgebench.accuracy.evaluate import host_runner  # the host's LiteRT, loaded only when a phone needs it

    runner = host_runner(host.model)
    _, name, version = agent.load_runtime("ai_edge_litert")
    label = f"host: {name} {version} on the same file, not the device ({tool} feeds random inputs)"
    update: dict = {"sources": {"latency": f"device: {tool}", "memory": f"device: {tool}",
                                "accuracy": label, "fidelity": label}}  # fmt: skip

    def quiet(*_args, **_kwargs):
        return None

    if host.dataset is not None and samples != 0:
        dataset = agent.load_npz(host.dataset)
        if "y" in dataset:
            float32 = np.load(host.float32_predictions, allow_pickle=False) if host.float32_predictions else None
            accuracy = agent.evaluate(runner, dataset, samples, quiet, float32=float32, tolerance_pp=tolerance_pp)
            update["accuracy"] = dict(accuracy, source=label)
    if host.reference is not None and samples != 0:
        update["fidelity"] = dict(agent.fidelity(runner, agent.load_npz(host.reference), quiet), source=label)
    return update
