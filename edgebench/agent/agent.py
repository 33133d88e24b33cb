"""edgebench's on-device agent: the measuring instrument.

This file is copied to the device and run there on its own, so it may use only
the standard library, numpy and a TFLite runtime (ai_edge_litert,
tflite_runtime or tensorflow.lite). It never imports edgebench, and it must run
on Python 3.9+ with numpy 1.19+ (Raspberry Pi OS Bullseye). The host imports
its helpers so that host-side evaluation and on-device measurement feed the
model exactly the same bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import importlib
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from array import array as sample_array

try:
    import numpy as np
except ImportError:  # reported by --probe and as an error document, not as a traceback
    np = None

# Tried in this order: the maintained LiteRT first, then the frozen
# tflite-runtime that older boards carry, then full TensorFlow.
RUNTIME_MODULES = (
    ("ai_edge_litert", "ai_edge_litert.interpreter"),
    ("tflite_runtime", "tflite_runtime.interpreter"),
    ("tensorflow", "tensorflow.lite.python.interpreter"),
)

INTEGER_IO_TYPES = ("int8", "uint8", "int16")


class RuntimeNotFound(Exception):
    pass


def load_runtime(preferred=None):
    """Return (Interpreter class, runtime name, runtime version).

    `preferred` names one of RUNTIME_MODULES to use it and nothing else.
    """
    tried = []
    for name, module_name in RUNTIME_MODULES:
        if preferred and name != preferred:
            continue
        try:
            module = importlib.import_module(module_name)
            package = importlib.import_module(name)
        except ImportError as error:
            tried.append(f"{name} ({error})")
            continue
        version = getattr(package, "__version__", None) or _distribution_version(name)
        return module.Interpreter, name, version
    raise RuntimeNotFound("no TFLite runtime importable: " + "; ".join(tried))


def _distribution_version(name):
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8 has no importlib.metadata
        return "unknown"
    for distribution in (name.replace("_", "-"), name):
        try:
            return metadata.version(distribution)
        except Exception:
            continue
    return "unknown"


def load_npz(path):
    """Read an edgebench .npz: `x` (or `x0`, `x1`, ... for several inputs), optional `y`, `x_scale`, `x_offset`."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return arrays


def input_keys(arrays):
    """The arrays that feed the model's inputs, in input order: ["x"], or ["x0", "x1", ...]."""
    if "x" in arrays:
        return ["x"]
    numbered = [key for key in arrays if key[:1] == "x" and key[1:].isdigit()]
    return sorted(numbered, key=lambda key: int(key[1:]))


def model_inputs(arrays, start=0, stop=None, key=None, rows=None):
    """Samples [start:stop] (or these `rows`) of one input array in the model's float domain: x * x_scale +
    x_offset."""
    x = arrays[key or input_keys(arrays)[0]]
    x = (x[start:stop] if rows is None else x[rows]).astype(np.float32)
    scale = float(arrays["x_scale"]) if "x_scale" in arrays else 1.0
    offset = float(arrays["x_offset"]) if "x_offset" in arrays else 0.0
    if scale != 1.0:
        x *= np.float32(scale)
    if offset != 0.0:
        x += np.float32(offset)
    return x


def input_sets(arrays, start=0, stop=None, rows=None):
    """One float array per model input, samples [start:stop] (or these `rows`)."""
    return [model_inputs(arrays, start, stop, key, rows) for key in input_keys(arrays)]


def representative_inputs(details, count, seed=0):
    """Seeded stand-in inputs shaped like the model's inputs, in its float domain: uniform [0, 1).

    Used when no data set is given. Random inputs are a weak proxy for real
    data, and every figure made from them says so."""
    generator = np.random.RandomState(seed)
    sets = []
    for detail in details:
        shape = tuple(int(d) for d in detail["shape"][1:])
        if np.dtype(detail["dtype"]).kind in "iu" and np.dtype(detail["dtype"]).name not in INTEGER_IO_TYPES:
            info = np.iinfo(np.dtype(detail["dtype"]))
            values = generator.randint(max(info.min, 0), min(info.max, 255) + 1, size=(count, *shape))
            sets.append(values.astype(np.float32))
        else:
            sets.append(generator.random_sample((count, *shape)).astype(np.float32))
    return sets


def quantize_input(values, detail):
    """Float values -> the input tensor's dtype, using its scale and zero point."""
    dtype = np.dtype(detail["dtype"])
    if dtype.name not in INTEGER_IO_TYPES:
        return values.astype(dtype)
    scale, zero_point = detail["quantization"]
    if not scale:
        raise ValueError("input {!r} is {} without quantization parameters".format(detail["name"], dtype.name))
    info = np.iinfo(dtype)
    quantized = np.round(values / scale + zero_point)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def dequantize_output(values, detail):
    """An integer output tensor -> float, using its scale and zero point."""
    if np.dtype(detail["dtype"]).name not in INTEGER_IO_TYPES:
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * np.float32(scale or 1.0)


class ModelRunner:
    """One interpreter fed samples (or batches) on every input; float outputs out.

    Inputs are given in the model's float domain and quantized with each input
    tensor's own scale and zero point; integer outputs are dequantized. The
    first output is what a classifier's top-1 reads.
    """

    def __init__(self, interpreter):
        self.interpreter = interpreter
        self._refresh()
        self.batch = int(self.inputs[0]["shape"][0]) if len(self.inputs[0]["shape"]) else 1
        self.native_batch = self.batch  # what the model was made for, before any resize

    def _refresh(self):
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()

    def try_batch(self, batch):
        """Resize the batch dimension of every input for faster evaluation; keep the original if the model refuses.

        A model whose graph hard-codes batch 1 (a Reshape to [1, -1], say) may
        accept the resize yet fold the batch into one row; the output shapes
        tell, and then the original shapes are restored.
        """
        originals = [[int(d) for d in detail["shape"]] for detail in self.inputs]
        if any(not shape for shape in originals) or all(shape[0] == batch for shape in originals):
            return self.batch
        resized = self._resize([[batch, *shape[1:]] for shape in originals])
        if resized and all(
            len(o["shape"]) and int(o["shape"][0]) == batch for o in self.interpreter.get_output_details()
        ):
            self.batch = batch
        else:
            self._resize(originals)
        self._refresh()
        return self.batch

    def _resize(self, shapes):
        try:
            for detail, shape in zip(self.inputs, shapes):
                self.interpreter.resize_tensor_input(detail["index"], np.array(shape, dtype=np.int32))
            self.interpreter.allocate_tensors()
        except Exception:  # RuntimeError or ValueError, depending on the runtime version
            return False
        return True

    def set_inputs(self, values):
        """`values`: one array per input, each holding exactly one batch."""
        for detail, array in zip(self.inputs, values):
            shape = tuple(detail["shape"])
            self.interpreter.set_tensor(detail["index"], quantize_input(array.reshape(shape), detail))

    def output_values(self):
        """Every output as float, (batch, -1)."""
        results = []
        for detail in self.outputs:
            raw = self.interpreter.get_tensor(detail["index"])
            results.append(dequantize_output(raw, detail).reshape(self.batch, -1))
        return results

    def run(self, values):
        """Every output for every sample in `values` (one array per input, any count; padded to the batch)."""
        count = len(values[0])
        collected = [[] for _ in self.outputs]
        for start in range(0, count, self.batch):
            chunk = [array[start : start + self.batch] for array in values]
            used = len(chunk[0])
            if used < self.batch:
                chunk = [np.concatenate([c, np.zeros((self.batch - used, *c.shape[1:]), dtype=c.dtype)]) for c in chunk]
            self.set_inputs(chunk)
            self.interpreter.invoke()
            for index, output in enumerate(self.output_values()):
                collected[index].append(output[:used])
        return [np.concatenate(parts) for parts in collected]

    def predict(self, values):
        """Top-1 class of each sample, read from the first output."""
        return np.argmax(self.run(values)[0], axis=1).astype(np.int64)


def fidelity_metrics(outputs, reference):
    """How far `outputs` are from the float32 `reference`, per output tensor (both (samples, -1) float arrays).

    sqnr_db: 10 log10(signal power / error power) over all samples; cosine: the
    mean and the worst per-sample cosine similarity; max_abs_error: the largest
    absolute difference anywhere.
    """
    metrics = []
    for output, expected in zip(outputs, reference):
        output, expected = output.astype(np.float64), expected.astype(np.float64)
        error = output - expected
        noise, signal = float(np.sum(error * error)), float(np.sum(expected * expected))
        norms = np.linalg.norm(output, axis=1) * np.linalg.norm(expected, axis=1)
        dots = np.sum(output * expected, axis=1)
        cosine = np.where(
            norms > 0, dots / np.where(norms > 0, norms, 1), np.where(np.all(error == 0, axis=1), 1.0, 0.0)
        )
        metrics.append(
            {
                "elements": int(expected.shape[1]),
                # How large the reference itself is: an output near zero on these inputs has an SQNR of noise.
                "reference_rms": math.sqrt(signal / expected.size) if expected.size else 0.0,
                "exact": noise == 0.0,
                "sqnr_db": None if noise == 0.0 or signal == 0.0 else 10.0 * math.log10(signal / noise),
                "cosine_mean": float(np.mean(cosine)),
                "cosine_min": float(np.min(cosine)),
                "max_abs_error": float(np.max(np.abs(error))) if error.size else 0.0,
            }
        )
    return metrics


# --------------------------------------------------------------------------
# Measurement. Everything below runs on the device.
# --------------------------------------------------------------------------

# Agent document history (schema_version):
#   1 - first version.
#   2 - "fidelity" (outputs against float32 reference outputs, per output tensor);
#       stats gain "mad", "iqr" and "robust_cv", which the high-variance warning now uses.
#     Added since, all optional (readers of version 2 ignore them): accuracy "change", "indices" and "order"
#     (accuracy stopped once settled); "placement" (the delegate's nodes); "layers" (--profile).
SCHEMA_VERSION = 2
RESULT_KIND = "edgebench.agent-result"
PROBE_KIND = "edgebench.probe"
PROGRESS_PREFIX = "edgebench-progress "
EVALUATION_BATCH = 100
Z_95 = 1.959963984540054

# Like TFLite's benchmark_model: both the minimum count and the minimum time
# must be reached, and the maximum time stops the runs whatever the count.
DEFAULTS = {
    "threads": 1,
    "delegate": "xnnpack",
    "accelerator": None,
    "vulkan_icd": None,
    "gpu_precision": None,
    "npu_vendor": None,
    "npu_libraries": None,
    "openvino_device": None,
    "cpus": None,
    "runtime": None,
    "dataset": None,
    "samples": None,
    "accuracy_tolerance": 0.5,
    "reference": None,
    "float32_predictions": None,
    "float32_model": None,
    "probes": None,
    "profile": False,
    "warmup_min_runs": 1,
    "warmup_min_seconds": 0.25,
    "min_runs": 64,
    "min_seconds": 0.5,
    "max_seconds": 150.0,
    "max_runs": None,
    "cv_warning": 0.10,
    "temperature_rise_warning_c": 10.0,
}

# Exit codes; the document says the same in "status" and "error".
EXIT_OK, EXIT_USAGE, EXIT_RUNTIME_MISSING, EXIT_MODEL_FAILED, EXIT_INVOKE_FAILED, EXIT_AGENT_ERROR = 0, 2, 3, 4, 5, 6


class AgentFailure(Exception):
    def __init__(self, kind, message, exit_code):
        Exception.__init__(self, message)
        self.kind = kind
        self.exit_code = exit_code


# ---- statistics -----------------------------------------------------------


def wilson_interval(correct, total, z=Z_95):
    """95% Wilson score interval of a proportion; sound near 0 and 1, unlike the normal one."""
    if total <= 0:
        return (0.0, 1.0)
    p = correct / total
    denominator = 1.0 + z * z / total
    center = (p + z * z / (2.0 * total)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / total + z * z / (4.0 * total * total)) / denominator
    # At 0 or all correct the bound is exactly 0 or 1; rounding would leave 1 - 1e-16.
    low = 0.0 if correct == 0 else max(0.0, center - half)
    high = 1.0 if correct == total else min(1.0, center + half)
    return (low, high)


def summarize(samples_us):
    values = np.asarray(samples_us, dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    p25, p50, p75, p90, p99 = np.percentile(values, [25, 50, 75, 90, 99])
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    mad = float(np.median(np.abs(values - p50)))
    return {
        "count": int(values.size),
        "min": float(values.min()),
        "mean": mean,
        "std": std,
        "cv": std / mean if mean > 0 else 0.0,
        "mad": mad,
        "iqr": float(p75 - p25),
        # 1.4826 MAD estimates the standard deviation of the bulk of the samples: a few
        # scheduler stalls (single inferences 5x the median) leave it alone, unlike std.
        "robust_cv": 1.4826 * mad / float(p50) if p50 > 0 else 0.0,
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(values.max()),
    }


def validity_warnings(stats, settings, thermal, max_time_hit):
    """pyperf/MLPerf-style reasons not to trust a result, each with a code and a sentence."""
    warnings = []
    if stats.get("count", 0) > 1 and stats["robust_cv"] > settings["cv_warning"]:
        warnings.append(
            {
                "code": "high-variance",
                "message": "latencies spread {:.0f}% around the median (1.4826 MAD / median), above {:.0f}%: "
                "the machine was busy or unstable".format(stats["robust_cv"] * 100, settings["cv_warning"] * 100),
            }
        )
    if stats.get("count", 0) < settings["min_runs"]:
        warnings.append(
            {
                "code": "few-samples",
                "message": f"only {stats.get('count', 0)} of the {settings['min_runs']} runs asked for",
            }
        )
    if max_time_hit:
        warnings.append(
            {"code": "max-time", "message": "stopped at the maximum time of {:g}s".format(settings["max_seconds"])}
        )
    before, after = thermal.get("before_c"), thermal.get("after_c")
    if before is not None and after is not None and after - before > settings["temperature_rise_warning_c"]:
        warnings.append(
            {
                "code": "temperature-rise",
                "message": f"temperature rose {after - before:.1f} °C during the run ({before:.1f} -> {after:.1f})",
            }
        )
    if thermal.get("throttled"):
        warnings.append(
            {"code": "throttled", "message": "the board reported throttling: {}".format(thermal["throttled"])}
        )
    return warnings


# ---- environment, never crashing on a missing file ------------------------


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, ValueError):
        return None


def _cpuinfo_fields():
    text = _read("/proc/cpuinfo") or ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_features():
    """An ARM CPU's feature list (asimddp: the dot product XNNPACK's int8 kernels use), or None elsewhere."""
    features = _cpuinfo_fields().get("Features")
    return features.split() if features else None


def cpu_model():
    fields = _cpuinfo_fields()
    # x86 has "model name"; a Raspberry Pi has "Model"; other ARM boards "Hardware" or only a CPU part.
    for key in ("model name", "Model", "Hardware", "Processor"):
        if fields.get(key):
            return fields[key]
    if fields.get("CPU part"):
        return "ARM CPU part {}".format(fields["CPU part"])
    return platform.processor() or platform.machine()


def cpu_frequencies(cpus):
    result = {}
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/"
        entry = {"governor": _read(base + "scaling_governor")}
        for name in ("scaling_cur_freq", "scaling_min_freq", "scaling_max_freq"):
            value = _read(base + name)
            entry[name.replace("scaling_", "").replace("_freq", "_mhz")] = int(value) / 1000.0 if value else None
        result[str(cpu)] = entry
    return result


def temperatures():
    """Every readable thermal zone, in °C."""
    zones = {}
    root = "/sys/class/thermal"
    try:
        names = sorted(n for n in os.listdir(root) if n.startswith("thermal_zone"))
    except OSError:
        names = []
    for name in names:
        value = _read(os.path.join(root, name, "temp"))
        try:
            celsius = int(value) / 1000.0
        except (TypeError, ValueError):
            continue
        zones["{}:{}".format(name, _read(os.path.join(root, name, "type")) or "?")] = celsius
    return zones


def pi_throttle_flags():
    """The Pi firmware's throttle flags, when vcgencmd exists: None, or a description of what happened."""
    if not shutil.which("vcgencmd"):
        return None
    try:
        output = subprocess.run(
            ["vcgencmd", "get_throttled"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=5
        ).stdout.decode()
        value = int(output.strip().split("=")[-1], 16)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    names = {0: "under-voltage", 1: "frequency capped", 2: "throttled", 3: "soft temperature limit"}
    now = [names[bit] for bit in names if value & (1 << bit)]
    earlier = [names[bit] + " since boot" for bit in names if value & (1 << (bit + 16))]
    return {"raw": hex(value), "events": now + earlier}


def environment(runtime_name, runtime_version):
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    env = {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "runtime": {"name": runtime_name, "version": runtime_version},
        "machine": platform.machine(),
        "system": platform.system(),
        "kernel": platform.release(),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_features": cpu_features(),
        "cores": os.cpu_count(),
        "affinity": affinity,
        "cpufreq": cpu_frequencies(affinity),
    }
    try:
        import psutil

        env["psutil"] = psutil.__version__
    except ImportError:
        env["psutil"] = None
    return env


# ---- memory: psutil when present, /proc otherwise ---------------------------


def _proc_status_kb(field):
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def rss_bytes():
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        kb = _proc_status_kb("VmRSS")
        return kb * 1024 if kb is not None else None


def peak_rss_bytes():
    """VmHWM: the high-water mark of resident memory; it only ever rises in a process."""
    kb = _proc_status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux kB


def memory_source():
    try:
        import psutil  # noqa: F401

        return "psutil rss + /proc VmHWM"
    except ImportError:
        return "/proc VmRSS + VmHWM"


# ---- the measurement ---------------------------------------------------------


HEARTBEAT_SECONDS = 5.0
EXIT_CONTROLLER_GONE = 141  # as a shell reports SIGPIPE: nobody reads our output


class Progress:
    """One JSON line per update on stderr, which the host turns into a progress bar.

    A heartbeat thread also writes a line whenever nothing else was written for
    HEARTBEAT_SECONDS, so the host can tell a slow phase (loading a big model,
    evaluating under an emulator) from a frozen board: silence means stalled."""

    def __init__(self, stream):
        self.stream = stream
        self.last = 0.0
        self.lock = threading.Lock()
        self.phase = "start"

    def __call__(self, phase, done=None, total=None, force=False):
        now = time.monotonic()
        if not force and now - self.last < 0.25:
            return
        self.phase = phase
        self._write({"phase": phase, "done": done, "total": total}, now)

    def _write(self, update, now):
        with self.lock:
            self.last = now
            try:
                self.stream.write(PROGRESS_PREFIX + json.dumps(update) + "\n")
                self.stream.flush()
            except (BrokenPipeError, ValueError):
                # Nobody reads us any more: the controller died (or its SSH session dropped). Measuring on
                # would only hold the board busy for a result nobody can receive, so stop within a heartbeat.
                os._exit(EXIT_CONTROLLER_GONE)

    def start_heartbeat(self):
        def beat():
            while True:
                time.sleep(HEARTBEAT_SECONDS / 5)
                now = time.monotonic()
                if now - self.last >= HEARTBEAT_SECONDS:
                    self._write({"phase": self.phase, "heartbeat": True}, now)

        threading.Thread(target=beat, name="edgebench-heartbeat", daemon=True).start()


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def timed_runs(invoke, min_runs, min_seconds, max_seconds, progress=None, phase="measure", max_runs=None):
    """Invoke until both min_runs and min_seconds are reached, or max_seconds passes, or max_runs were made.

    Returns (samples in microseconds, max time hit). Only invoke() is inside
    the clock; the stopping checks run outside it.
    """
    clock = time.perf_counter_ns
    samples = sample_array("d")  # 8 bytes a sample, not a float object and a list slot (32)
    started = clock()
    limit_ns = max_seconds * 1e9
    enough_ns = min_seconds * 1e9
    while True:
        before = clock()
        invoke()
        after = clock()
        samples.append((after - before) / 1000.0)
        elapsed = after - started
        if elapsed >= limit_ns:
            return samples, True
        if (len(samples) >= min_runs and elapsed >= enough_ns) or len(samples) == max_runs:
            return samples, False
        if progress is not None:
            progress(phase, len(samples), min_runs)


def create_interpreter(interpreter_class, model_path, threads, delegate):
    kwargs = {"model_path": model_path, "num_threads": threads}
    if delegate == "none":
        # The default resolver applies XNNPACK; this one runs the builtin kernels alone.
        resolver = getattr(sys.modules[interpreter_class.__module__], "OpResolverType", None)
        if resolver is None:
            raise AgentFailure("delegate-unsupported", "this runtime cannot disable its default delegate", EXIT_USAGE)
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return interpreter_class(**kwargs)


ACCELERATORS = ("cpu", "gpu", "npu")
GPU_PRECISIONS = ("default", "fp32")
# The vendor dispatch libraries an ai-edge-litert wheel carries (ai_edge_litert/vendors/<name>).
NPU_VENDORS = ("intel_openvino", "qualcomm", "mediatek", "google_tensor", "samsung")
OPENVINO_DEVICES = ("CPU", "GPU", "NPU")
# A vendor compiler plugin's partitioning, in the runtime's log: how many nodes went to the NPU.
PARTITION_LINE = re.compile(r"selected (?P<selected>\d+) ops, from a total of (?P<total>\d+) ops\. "
                            r"resulted in (?P<partitions>\d+) partitions")  # fmt: skip
# ... and whether it then compiled them: "0 compiler plugins were applied successfully" means every node it
# selected runs on the CPU after all; the plugin's exception (next line included) says why.
PLUGINS_APPLIED = re.compile(r"(?P<count>\d+) compiler plugins were applied successfully")
PLUGIN_EXCEPTION = re.compile(r"Exception in compilation: (?P<what>[^\n]*)(?:\n(?P<detail>[^\n]+))?")
# The runtime's log line naming the GPU it picked (WebGPU over Vulkan), e.g. "Selected adapter: SwiftShader Device
# (Subzero), arch=swiftshader, vendor=google, backend=Vulkan, adapterType=CPU / Software".
ADAPTER_LINE = re.compile(r"Selected adapter: (?P<name>[^,]+),.*?adapterType=(?P<kind>[^\n]+)")


class CompiledModelInterpreter:
    """LiteRT's CompiledModel (CPU, GPU or NPU accelerator) behind the interpreter calls ModelRunner and the
    timing loop make: get_input_details, set_tensor, invoke, get_tensor. Its tensor details carry no
    quantization, so they come from the plain interpreter's signature runner on the same file (created, read,
    dropped before anything is measured). The batch stays the model's own (no resize)."""

    def __init__(self, interpreter_class, model_path, accelerator, settings):
        from ai_edge_litert.compiled_model import CompiledModel

        plain = interpreter_class(model_path=model_path)
        signatures = plain.get_signature_list()
        if len(signatures) != 1:
            raise AgentFailure("model-load-failed", f"the {accelerator} accelerator needs a model with one "
                               f"signature; this one has {len(signatures)}", EXIT_MODEL_FAILED)  # fmt: skip
        key = next(iter(signatures))
        runner = plain.get_signature_runner(key)
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        del runner, plain
        arguments, self.options = compiled_model_options(accelerator, settings)
        before = time.perf_counter()
        try:
            self.model, self.log = _stderr_of(lambda: CompiledModel.from_file(model_path, **arguments))
        except RuntimeError as error:
            raise AgentFailure(
                "accelerator-failed",
                f"the {accelerator} accelerator could not take this model: "
                f"{_runtime_reason(getattr(error, 'log', ''), error, accelerator)}",
                EXIT_MODEL_FAILED,
            ) from None
        self.compile_us = (time.perf_counter() - before) * 1e6
        self._inputs = [dict(inputs[name], index=i) for i, name in enumerate(signatures[key]["inputs"])]
        self._outputs = [dict(outputs[name], index=i) for i, name in enumerate(signatures[key]["outputs"])]
        self.input_buffers = self.model.create_input_buffers(0)
        self.output_buffers = self.model.create_output_buffers(0)
        self.results = []
        for detail, buffer in zip(self._inputs, self.input_buffers):
            try:  # the Python TensorBuffer takes some types only (not int16): said at load, not mid-measurement
                buffer.write(np.zeros(detail["shape"], dtype=detail["dtype"]))
            except (RuntimeError, ValueError, TypeError) as error:
                raise AgentFailure("accelerator-failed", f"LiteRT's CompiledModel cannot be fed this model's "
                                   f"{np.dtype(detail['dtype']).name} input: {' '.join(str(error).split())}",
                                   EXIT_MODEL_FAILED) from None  # fmt: skip

    def get_input_details(self):
        return self._inputs

    def get_output_details(self):
        return self._outputs

    def allocate_tensors(self):
        pass  # the compiled model allocated its buffers when it was made

    def resize_tensor_input(self, index, shape):
        raise ValueError("a compiled model keeps its own input shapes")

    def set_tensor(self, index, value):
        # The buffer takes exactly its tensor's type: a float64 array is refused only when it is read back.
        self.input_buffers[index].write(np.ascontiguousarray(value, dtype=self._inputs[index]["dtype"]))

    def invoke(self):
        # A GPU runs asynchronously: run_by_index returns once the work is queued (a timed loop of it measured
        # 50 µs "inferences" while SwiftShader worked minutes behind). Reading the outputs waits for the result,
        # so an invoke is a whole inference, as the interpreter's is.
        self.model.run_by_index(0, self.input_buffers, self.output_buffers)
        self.results = [self._read(index) for index in range(len(self._outputs))]

    def _read(self, index):
        detail = self._outputs[index]
        count = int(np.prod(detail["shape"]))
        return self.output_buffers[index].read(count, np.dtype(detail["dtype"])).reshape(detail["shape"])

    def get_tensor(self, index):
        return self.results[index]


def _stderr_of(make):
    """(make(), what the native runtime wrote to stderr meanwhile): the GPU accelerator says which adapter it
    picked only in its log. Read at the file descriptor, since the log comes from C++; then written through."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            result = make()
        except Exception as error:
            error.log = _written_back(capture, saved)
            raise
        text = _written_back(capture, saved)
    return result, text


def _written_back(capture, saved):
    os.dup2(saved, 2)
    os.close(saved)
    capture.seek(0)
    text = capture.read().decode("utf-8", "replace")
    sys.stderr.write(text)
    return text


# The runtime's own reason for refusing an accelerator, in its log: "Failed to initialize WebGPU environment:
# INTERNAL: No adapters found", "Vulkan shaderUniform*ArrayDynamicIndexing required", "Couldn't load Vulkan".
_REASON = re.compile(r"(Failed to [^\n]*|[^\n]*required[^\n]*|Couldn't load [^\n]*|No adapters found[^\n]*)")


def _runtime_reason(log, error, accelerator="gpu"):
    # "Failed to load plugin" is every x86 wheel's OpenVINO compiler plugin without libopenvino: not the reason,
    # unless the NPU was asked for (then it is the reason: "libopenvino.so.2631: cannot open shared object").
    found = [" ".join(m.group(0).split()) for m in _REASON.finditer(log)
             if accelerator == "npu" or "load plugin" not in m.group(0)]  # fmt: skip
    return "; ".join(dict.fromkeys(found[:3])) if found else " ".join(str(error).split())


def accelerator_placement(interpreter, accelerator):
    """What ran where on a compiled model: the accelerator asked for, whether the runtime says every node is on
    it, and for a GPU the adapter it picked (a software one is labelled: its latency is a CPU's)."""
    placement = {"accelerator": accelerator, "fully_accelerated": bool(interpreter.model.is_fully_accelerated()),
                 **interpreter.options}  # fmt: skip
    partitions = list(PARTITION_LINE.finditer(interpreter.log))
    if partitions:  # a vendor compiler plugin says how many nodes it took (the GPU's log does not)
        selected, total = (sum(int(m.group(key)) for m in partitions) for key in ("selected", "total"))
        placement["nodes"] = {"accelerated": selected, "total": total,
                              "partitions": sum(int(m.group("partitions")) for m in partitions)}  # fmt: skip
        applied = PLUGINS_APPLIED.search(interpreter.log)
        if applied and int(applied.group("count")) == 0:  # selected, then not compiled: all of it on the CPU
            placement["nodes"].update(accelerated=0, partitions=0)
            failed = PLUGIN_EXCEPTION.search(interpreter.log)
            placement["fallback"] = (" ".join(f"{failed.group('what')} {failed.group('detail') or ''}".split())
                                     if failed else "the compiler plugin was not applied")  # fmt: skip
    found = ADAPTER_LINE.search(interpreter.log)
    if interpreter.options.get("openvino_device") == "CPU":
        # OpenVINO compiling the NPU path for its CPU device: the path is real, the hardware is a CPU.
        placement["adapter"] = "OpenVINO CPU device"
        placement["software"] = True
    elif found:
        name, kind = found.group("name").strip(), found.group("kind").strip()
        placement["adapter"] = name
        placement["software"] = "software" in kind.lower() or "swiftshader" in name.lower()
    elif accelerator == "gpu":
        placement["adapter"] = None
    return placement


def compiled_model_options(accelerator, settings):
    """CompiledModel.from_file's arguments for this accelerator and settings, and what was used (for the
    placement record): the CPU beside the accelerator, as LiteRT advises (operators the GPU or NPU cannot run
    fall back to the CPU instead of refusing the model; is_fully_accelerated() says whether any did), the
    threads, the GPU's precision, an NPU vendor's dispatch and compiler plugin."""
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    wanted = getattr(HardwareAccelerator, accelerator.upper()) | HardwareAccelerator.CPU
    try:
        from ai_edge_litert.options import CpuOptions, GpuOptions, Options
    except ImportError:  # a LiteRT 2.x before grouped options: the accelerator only
        return {"hardware_accel": wanted}, {}
    threads = settings.get("threads") or 1
    used = {"threads": threads}
    groups = {"cpu_options": CpuOptions(num_threads=threads)}
    if accelerator == "gpu":
        fp32 = settings.get("gpu_precision") == "fp32"
        groups["gpu_options"] = GpuOptions(enforce_f32=fp32)
        used["gpu_precision"] = "fp32" if fp32 else "default"
    arguments = {}
    vendor = settings.get("npu_vendor")
    if accelerator == "npu" and vendor:
        arguments["environment"], extra = npu_environment(vendor, settings)
        used.update(extra)
        if vendor == "intel_openvino" and settings.get("openvino_device"):
            from ai_edge_litert.intel_openvino_options import IntelOpenVinoGraphBackend, IntelOpenVinoOptions

            backend = IntelOpenVinoGraphBackend[settings["openvino_device"]]
            groups["intel_openvino_options"] = IntelOpenVinoOptions(graph_backend=backend)
            used["openvino_device"] = settings["openvino_device"]
    arguments["options"] = Options(hardware_accelerators=wanted, **groups)
    return arguments, used


def npu_environment(vendor, settings):
    """A LiteRT environment with the wheel's dispatch library and compiler plugin of this vendor, after loading
    the vendor's own runtime (its libraries cannot be found through LD_LIBRARY_PATH once the process runs)."""
    import ctypes
    import importlib.util

    import ai_edge_litert
    from ai_edge_litert.environment import Environment, EnvironmentOptions

    folder = os.path.join(os.path.dirname(ai_edge_litert.__file__), "vendors", vendor)
    dispatch = os.path.join(folder, "dispatch")
    if not os.path.isdir(dispatch):
        raise AgentFailure("accelerator-failed", f"this ai-edge-litert has no {vendor} dispatch ({folder})",
                           EXIT_MODEL_FAILED)  # fmt: skip
    libraries = settings.get("npu_libraries")
    if not libraries and vendor == "intel_openvino":
        spec = importlib.util.find_spec("openvino")  # found, not imported: the agent needs only its libraries
        libraries = os.path.join(os.path.dirname(spec.origin), "libs") if spec and spec.origin else None
    if vendor == "intel_openvino":
        check_openvino(dispatch, libraries)
    if libraries:
        # Loaded globally, so the dispatch finds them by soname (libopenvino.so.2631); a library whose own
        # dependencies are not loaded yet fails and is tried again in the next pass. Device plugins are left to
        # the vendor's runtime, which loads them itself.
        pending = [n for n in sorted(os.listdir(libraries)) if ".so" in n and "plugin" not in n]
        while pending:
            failed = []
            for name in pending:
                try:
                    ctypes.CDLL(os.path.join(libraries, name), mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    failed.append(name)
            if len(failed) == len(pending):
                break
            pending = failed
    options = EnvironmentOptions(dispatch_library_path=dispatch,
                                 compiler_plugin_path=os.path.join(folder, "compiler"))  # fmt: skip
    return Environment.create(options=options), {"npu_vendor": vendor, "npu_libraries": libraries}


def check_openvino(dispatch, libraries):
    """The OpenVINO runtime the wheel's dispatch was linked against (libopenvino.so.2631 is openvino 2026.3.1)
    must be the one found: another version fails deep in the runtime's log, so it is said here, with the fix."""
    needed = set()
    for name in os.listdir(dispatch):
        with open(os.path.join(dispatch, name), "rb") as library:
            needed |= set(re.findall(rb"libopenvino\.so\.\d+", library.read()))
    if not needed:
        return
    soname = sorted(needed)[0].decode()
    digits = soname.rsplit(".", 1)[1]
    wheel = f"openvino==20{digits[:2]}.{digits[2]}.{digits[3:]}" if len(digits) >= 4 else "openvino"
    if not libraries or not os.path.isdir(libraries):
        raise AgentFailure("accelerator-failed", f"the intel_openvino NPU dispatch needs the OpenVINO runtime "
                           f"({soname}): pip install '{wheel}' on the device, or set npu_libraries",
                           EXIT_MODEL_FAILED)  # fmt: skip
    present = os.listdir(libraries)
    if soname not in present:
        found = ", ".join(n for n in sorted(present) if n.startswith("libopenvino.so.")) or "none"
        raise AgentFailure("accelerator-failed", f"the intel_openvino NPU dispatch needs {soname}; {libraries} has "
                           f"{found} (pip install '{wheel}')", EXIT_MODEL_FAILED)  # fmt: skip


def prepare_accelerator(settings):
    """Before the runtime starts: a Vulkan ICD the device file names (a software GPU such as SwiftShader), and a
    private XDG_RUNTIME_DIR where none is set (the GPU stack wants one)."""
    if settings.get("vulkan_icd"):
        os.environ["VK_ICD_FILENAMES"] = settings["vulkan_icd"]
    if settings.get("accelerator") == "gpu" and not os.environ.get("XDG_RUNTIME_DIR"):
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="edgebench-xdg-")


def probe(settings):
    """What this device can run: Python, numpy, runtime, CPU, disk, temperature. Never raises."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "kind": PROBE_KIND,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "numpy": np.__version__ if np is not None else None,
        "runtime": None,
        "runtime_error": None,
        "temperature_c": _max_or_none(temperatures()),
        "throttled": pi_throttle_flags(),
        "free_bytes": shutil.disk_usage(settings.get("workdir") or ".").free,
    }
    try:
        import psutil

        document["psutil"] = psutil.__version__
    except ImportError:
        document["psutil"] = None
    if np is None:
        document["runtime_error"] = "numpy is not installed"
        return document
    try:
        _, name, version = load_runtime(settings.get("runtime"))
        document["runtime"] = {"name": name, "version": version}
    except RuntimeNotFound as error:
        document["runtime_error"] = str(error)
    return document


def measure(settings, progress, document):
    """Fill `document` step by step, so a failure still returns what was measured."""
    if np is None:
        raise AgentFailure("numpy-missing", "numpy is not installed on this device", EXIT_RUNTIME_MISSING)
    model_path = settings["model"]
    document["model"] = {"path": model_path, "bytes": os.path.getsize(model_path), "sha256": sha256_file(model_path)}
    expected = settings.get("sha256")
    if expected and expected != document["model"]["sha256"]:
        # Checked before loading: a damaged copy must not pass for a model the runtime refuses.
        raise AgentFailure(
            "model-corrupt",
            f"{model_path} does not match the sha256 the host sent (expected {expected[:16]}, found "
            f"{document['model']['sha256'][:16]}): the copy on the device is damaged",
            EXIT_MODEL_FAILED,
        )
    document["thermal"] = {"before_c": _max_or_none(temperatures())}

    started = time.perf_counter()
    try:
        interpreter_class, runtime_name, runtime_version = load_runtime(settings["runtime"])
    except RuntimeNotFound as error:
        raise AgentFailure("runtime-missing", str(error), EXIT_RUNTIME_MISSING) from None
    document["timing"] = {"runtime_import_us": (time.perf_counter() - started) * 1e6}
    document["environment"] = environment(runtime_name, runtime_version)

    # The data set is read before the baseline, so memory deltas are the model's alone.
    dataset = load_npz(settings["dataset"]) if settings["dataset"] else None
    gc.collect()
    memory = document["memory"] = {"source": memory_source(), "baseline_rss": rss_bytes()}

    progress("load", force=True)
    timing = document["timing"]
    if settings.get("accelerator"):
        # LiteRT's CompiledModel bindings take most of a second to import: the runtime's cost, not the model's.
        before = time.perf_counter()
        importlib.import_module("ai_edge_litert.compiled_model")
        timing["compiled_model_import_us"] = (time.perf_counter() - before) * 1e6
    try:
        before = time.perf_counter()
        if settings.get("accelerator"):
            interpreter = CompiledModelInterpreter(interpreter_class, model_path, settings["accelerator"], settings)
        else:
            interpreter = create_interpreter(interpreter_class, model_path, settings["threads"], settings["delegate"])
        timing["load_us"] = (time.perf_counter() - before) * 1e6  # a compiled model: loading and compiling
        if hasattr(interpreter, "compile_us"):  # compiling for the accelerator alone (apps pay it at start)
            timing["compile_us"] = interpreter.compile_us
        before = time.perf_counter()
        interpreter.allocate_tensors()
        timing["allocate_us"] = (time.perf_counter() - before) * 1e6
    except (RuntimeError, ValueError) as error:
        raise AgentFailure("model-load-failed", f"{runtime_name}: {error}", EXIT_MODEL_FAILED) from None
    memory["peak_rss_after_load"] = peak_rss_bytes()
    memory["rss_after_load"] = rss_bytes()
    # Which nodes the delegate took, from the interpreter itself: free, so always recorded.
    if settings.get("accelerator"):
        document["placement"] = accelerator_placement(interpreter, settings["accelerator"])
    else:
        document["placement"] = kernel_placement(interpreter, settings["delegate"])

    runner = ModelRunner(interpreter)
    # Without a data set, latency is measured on a fixed pseudo-random input per model input.
    first = input_sets(dataset, 0, 1) if dataset is not None else representative_inputs(runner.inputs, 1)
    try:
        if len(first) != len(runner.inputs):
            raise AgentFailure(
                "input-mismatch", f"the data set has {len(first)} input array(s), the model {len(runner.inputs)}",
                EXIT_USAGE,
            )  # fmt: skip
        runner.set_inputs(first)
        before = time.perf_counter()
        interpreter.invoke()
        timing["first_inference_us"] = (time.perf_counter() - before) * 1e6

        progress("warmup", force=True)
        warmup, _ = timed_runs(
            interpreter.invoke, settings["warmup_min_runs"], settings["warmup_min_seconds"],
            settings["max_seconds"], progress, "warmup",
        )  # fmt: skip
        timing["warmup_runs"] = len(warmup)
        # The model's memory: load, allocate and inference, read before the measured runs, whose own samples
        # (hundreds of thousands for a micro model) and the evaluation after them cannot move this figure.
        memory["peak_rss_model"] = peak_rss_bytes()
        samples, max_time_hit = timed_runs(
            interpreter.invoke, settings["min_runs"], settings["min_seconds"], settings["max_seconds"], progress,
            max_runs=settings["max_runs"],
        )  # fmt: skip
    except (RuntimeError, ValueError) as error:
        raise AgentFailure("invoke-failed", f"{runtime_name}: {error}", EXIT_INVOKE_FAILED) from None
    timing["samples_us"] = samples.tolist()
    timing["max_time_hit"] = max_time_hit
    timing["stats"] = stats = summarize(timing["samples_us"])
    memory["peak_rss_after_runs"] = peak_rss_bytes()
    memory["rss_after_runs"] = rss_bytes()
    baseline = memory["baseline_rss"]
    if baseline is not None:
        memory["load_delta"] = memory["peak_rss_after_load"] - baseline
        memory["peak_delta"] = memory["peak_rss_after_runs"] - baseline
        if memory["peak_rss_model"] is not None:
            memory["model_delta"] = memory["peak_rss_model"] - baseline
    document["thermal"]["after_c"] = _max_or_none(temperatures())
    document["thermal"]["zones_after"] = temperatures()
    document["thermal"]["throttled"] = pi_throttle_flags()

    try:
        if dataset is not None and settings["samples"] != 0 and "y" in dataset:
            float32 = settings["float32_predictions"]
            document["accuracy"] = evaluate(
                runner, dataset, settings["samples"], progress,
                float32=np.load(float32, allow_pickle=False) if float32 else None,
                tolerance_pp=settings["accuracy_tolerance"],
            )  # fmt: skip
        if settings["reference"] and settings["samples"] != 0:
            document["fidelity"] = fidelity(runner, load_npz(settings["reference"]), progress)
    except (RuntimeError, ValueError) as error:
        raise AgentFailure("invoke-failed", f"{runtime_name}: {error}", EXIT_INVOKE_FAILED) from None
    if settings["profile"] and settings["float32_model"] and settings["reference"]:
        progress("layers", force=True)
        before = time.perf_counter()
        try:
            document["layers"] = layer_errors(
                interpreter_class, model_path, settings["float32_model"], load_npz(settings["reference"])
            )
        except (RuntimeError, ValueError) as error:
            document["layers"] = {"error": " ".join(str(error).split())}
        document["layers"]["seconds"] = time.perf_counter() - before
    if settings["profile"] and settings["probes"]:
        progress("operators", force=True)
        before = time.perf_counter()
        document["operators"] = {
            "probes": time_probes(
                interpreter_class,
                settings["probes"].split(","),
                settings,
                progress,
                tensor_values(interpreter_class, model_path, first),
            ),
            "seconds": None,
        }
        document["operators"]["seconds"] = time.perf_counter() - before
    document["warnings"] = validity_warnings(stats, settings, document["thermal"], max_time_hit)


# ---- why: kernel placement and per-layer error ---------------------------------


def _ops(interpreter):
    """The interpreter's nodes after delegation: the model's own, then one DELEGATE node per partition."""
    try:
        return interpreter._get_ops_details()
    except (AttributeError, RuntimeError, ValueError):  # a runtime too old to list them
        return None


def kernel_placement(interpreter, delegate):
    """Which of the model's nodes a delegate took, in how many partitions, and which ran on the runtime's own
    (builtin) kernels: read from the delegated graph. A DELEGATE node replaced the nodes between its input
    and output tensors; walking back from its outputs to its inputs finds them."""
    ops = _ops(interpreter)
    if ops is None:
        return {"error": "this runtime does not list its nodes (no _get_ops_details)"}
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    nodes = [o for o in ops if o["op_name"] != "DELEGATE"]
    producer = {int(t): o["index"] for o in nodes for t in o["outputs"]}
    by_index = {o["index"]: o for o in nodes}
    taken = {}
    for partition, node in enumerate(delegates):
        inputs = {int(t) for t in node["inputs"]}
        stack, found = [int(t) for t in node["outputs"]], set()
        while stack:
            tensor = stack.pop()
            if tensor in inputs or tensor not in producer or producer[tensor] in found:
                continue
            found.add(producer[tensor])
            stack.extend(int(t) for t in by_index[producer[tensor]]["inputs"] if int(t) >= 0)
        for index in found:
            taken[index] = partition
    name = {"xnnpack": "XNNPACK", "none": "none"}.get(delegate, delegate)
    return {
        "delegate": name, "nodes": len(nodes), "delegated": len(taken), "partitions": len(delegates),
        "operators": [
            {"index": o["index"], "op": o["op_name"], "on": name if o["index"] in taken else "builtin",
             "partition": taken.get(o["index"])}
            for o in nodes
        ],
    }  # fmt: skip


LAYER_SAMPLES = 20  # inputs the per-layer error is measured on: the fidelity reference's first ones


def layer_errors(interpreter_class, model_path, float32_path, reference, samples=LAYER_SAMPLES):
    """Per-layer SQNR of this variant against float32 on the reference inputs: both models run with every
    intermediate tensor kept (on the runtime's builtin kernels: a delegate keeps its partition's tensors to
    itself), each operator's output matched to float32's tensor of the same name (quantized ones dequantized
    with their scale and zero point), in the variant's execution order."""
    inputs = [reference[k] for k in sorted((k for k in reference if k.startswith("in")), key=lambda k: int(k[2:]))]
    count = min(samples, len(inputs[0]))
    runners = []
    for path in (model_path, float32_path):
        interpreter = _kept_tensors_interpreter(interpreter_class, path)
        runners.append((interpreter, ModelRunner(interpreter)))
    (variant, variant_runner), (float32, float32_runner) = runners
    # Only float tensors of float32's graph carry a signal to compare (shapes and indices are exact or not).
    float32_tensors = {d["name"]: d["index"] for d in float32.get_tensor_details()
                       if np.issubdtype(d["dtype"], np.floating)}  # fmt: skip
    details = {d["index"]: d for d in variant.get_tensor_details()}
    layers = []
    operators = [op for op in _ops(variant) or [] if op["op_name"] != "DELEGATE"]
    for op in operators:
        for tensor in op["outputs"]:
            detail = details.get(int(tensor))
            if detail is not None and detail["name"] in float32_tensors:
                layers.append({"op": op["op_name"], "index": op["index"], "tensor": detail["name"],
                               "mine": int(tensor), "float32": float32_tensors[detail["name"]],
                               "signal": 0.0, "noise": 0.0})  # fmt: skip
    for sample in range(count):
        one = [array[sample : sample + 1] for array in inputs]
        for runner in (variant_runner, float32_runner):
            runner.set_inputs(one)
            runner.interpreter.invoke()
        for layer in layers:
            expected = float32.get_tensor(layer["float32"]).astype(np.float64)
            got = _dequantized(variant.get_tensor(layer["mine"]), details[layer["mine"]])
            if got.shape != expected.shape:
                layer["noise"] = None
                continue
            if layer["noise"] is not None:
                layer["signal"] += float(np.sum(expected * expected))
                layer["noise"] += float(np.sum((got - expected) ** 2))
    shown = []
    for layer in layers:
        if layer["noise"] is None:
            continue
        sqnr = None if layer["noise"] == 0 else 10 * math.log10(max(layer["signal"], 1e-30) / layer["noise"])
        shown.append({"op": layer["op"], "index": layer["index"], "tensor": layer["tensor"], "sqnr_db": sqnr})
    # A model made by another converter names its tensors otherwise: how many layers found a match is said.
    return {"samples": count, "kernels": "builtin", "layers": shown, "operators": len(operators)}


def _kept_tensors_interpreter(interpreter_class, path):
    """One thread, builtin kernels (a delegate keeps its partition's tensors to itself), every tensor kept after
    invoke, allocated: what per-layer error and probe inputs read intermediate tensors from."""
    resolver = getattr(sys.modules[interpreter_class.__module__], "OpResolverType", None)
    builtin = {"experimental_op_resolver_type": resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if resolver else {}
    with warnings.catch_warnings():  # "intended for debugging": it is, and the table says how it was measured
        warnings.simplefilter("ignore")
        interpreter = interpreter_class(model_path=path, num_threads=1, experimental_preserve_all_tensors=True,
                                        **builtin)  # fmt: skip
    interpreter.allocate_tensors()
    return interpreter


def tensor_values(interpreter_class, model_path, inputs):
    """Every tensor of the model, by name, after one inference on `inputs` (builtin kernels: a delegate keeps its
    partition's tensors to itself): what each probe is fed, so that a shape computed in the graph is a shape."""
    try:
        interpreter = _kept_tensors_interpreter(interpreter_class, model_path)
        runner = ModelRunner(interpreter)
        runner.set_inputs(inputs)
        interpreter.invoke()
        values = {}
        for detail in interpreter.get_tensor_details():
            with contextlib.suppress(ValueError):  # a tensor without data (an unused one)
                values[detail["name"]] = interpreter.get_tensor(detail["index"])
        return values
    except (RuntimeError, ValueError, TypeError):
        return {}


def time_probes(interpreter_class, paths, settings, progress, values=None):
    """Each single-operator probe model timed like a variant (the run's threads, delegate and stopping rules),
    with the kernel that took it: where the time goes, operator by operator. Inputs are the tensors of the same
    name from one real inference (`values`), or made up where there is none."""
    results = []
    for number, path in enumerate(paths, 1):
        name = os.path.basename(path)
        progress("operators", number, len(paths), force=True)
        try:
            interpreter = create_interpreter(interpreter_class, path, settings["threads"], settings["delegate"])
            interpreter.allocate_tensors()
            for detail in interpreter.get_input_details():
                real = (values or {}).get(detail["name"])
                fits = real is not None and real.dtype == detail["dtype"] and list(real.shape) == list(detail["shape"])
                interpreter.set_tensor(detail["index"], real if fits else _probe_input(detail))
            timed_runs(interpreter.invoke, settings["warmup_min_runs"], settings["warmup_min_seconds"],
                       settings["max_seconds"])  # fmt: skip
            samples, _ = timed_runs(interpreter.invoke, settings["min_runs"], settings["min_seconds"],
                                    settings["max_seconds"], max_runs=settings["max_runs"])  # fmt: skip
        except (RuntimeError, ValueError) as error:
            results.append({"probe": name, "error": " ".join(str(error).split())[:300]})
            continue
        placement = kernel_placement(interpreter, settings["delegate"])
        operator = (placement.get("operators") or [{}])[-1]  # the probed one: constant makers come before it
        results.append({"probe": name, "index": _probe_index(name), "op": operator.get("op"),
                        "on": operator.get("on"), "p50_us": float(np.median(samples)),
                        "runs": len(samples)})  # fmt: skip
    return results


def _probe_index(name):
    """'005-fully_connected.tflite' -> 5: the operator's index in the model (quantize/probes.py names them)."""
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _probe_input(detail):
    """A probe's input of the right shape and type: uniform [0, 1) for floats, small values for integers (an
    operator's time depends on shapes, not values, for the dense kernels probed here)."""
    shape = [max(int(d), 1) for d in detail["shape"]]
    dtype = detail["dtype"]
    generator = np.random.RandomState(0)
    if np.issubdtype(dtype, np.floating):
        return generator.uniform(0, 1, shape).astype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return generator.randint(max(info.min, -64), min(info.max, 64) + 1, shape).astype(dtype)
    return np.zeros(shape, dtype)


def _dequantized(values, detail):
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if values.dtype.kind in "iu" and scale:
        return (values.astype(np.float64) - zero_point) * scale
    return values.astype(np.float64)


BATCH_CHECK_SAMPLES = 10  # run both ways before batching: a few samples show a batch-dependent kernel


def batch_if_faithful(runner, inputs, batch=EVALUATION_BATCH):
    """Evaluate in batches only where that computes what batch 1 computes.

    Batching is a speed-up for evaluation, never a change of what is measured:
    a kernel whose result depends on the batch (or on other samples) would make
    a batched accuracy differ from what a deployment at batch 1 gets. The first
    samples are run both ways; any difference keeps batch 1. Returns the batch used."""
    native = runner.native_batch
    check = [array[:BATCH_CHECK_SAMPLES] for array in inputs]
    one_by_one = runner.run(check)
    if runner.try_batch(batch) == native:
        return native
    batched = runner.run(check)
    if all(np.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(one_by_one, batched)):
        return runner.batch
    runner.try_batch(native)
    return runner.batch


# Accuracy without --samples: a fixed random order (RandomState's stream is frozen by numpy's compatibility
# policy, so every device draws the same), looked at after 800, 1,600, 3,200, ... samples and at the end. Below
# about 770 a change of 0.5 pp cannot be told from none (95%) even with no disagreement at all; few looks keep a
# chance settlement unlikely.
ORDER_SEED = 0
FIRST_LOOK = 800


def evaluate(runner, dataset, samples, progress, float32=None, tolerance_pp=0.0):
    """Top-1 of the first output against the labels `y`, and its change against float32's on the same samples.

    With `samples`: on the first `samples` samples (all when it is the data set's size). Without, and given
    float32's predictions on the whole set: in a fixed random order, until the change against float32 is
    settled (`settled_change`), so a slow variant is not run over 10,000 images to confirm what 1,000 show.
    Without float32's predictions (float32 itself, or a run without it): every sample.
    `float32`: float32's predictions on the first len(float32) samples, in file order."""
    count = len(dataset["y"])
    float32 = None if float32 is None else np.asarray(float32)
    settle = samples is None and float32 is not None and len(float32) == count and tolerance_pp > 0
    total = count if samples is None else min(samples, count)
    order = np.random.RandomState(ORDER_SEED).permutation(count) if settle else np.arange(total)
    # A batch no larger than what is evaluated: --samples 50 at batch 100 computed every batch half empty (on an
    # emulated Pi 5, 24 s of a float32 variant's 29). Few samples are run one by one: checking a batch would cost
    # more than it saves.
    if total > 2 * BATCH_CHECK_SAMPLES:
        batch_if_faithful(runner, input_sets(dataset, 0, BATCH_CHECK_SAMPLES), min(EVALUATION_BATCH, total))
    labels = np.asarray(dataset["y"])
    predictions = []
    done = 0
    change = None
    for look in _looks(total) if settle else [total]:
        while done < look:
            stop = min(done + 1000, look)
            predictions.extend(int(p) for p in runner.predict(input_sets(dataset, rows=order[done:stop])))
            done = stop
            progress("accuracy", done, total)
        if float32 is not None and len(float32) >= done:
            chosen = order[:done]
            change = settled_change(np.asarray(predictions), float32[chosen], labels[chosen], tolerance_pp)
            if settle and change["settled"]:
                break
    evaluated = order[:done]
    correct = int(np.sum(np.asarray(predictions) == labels[evaluated]))
    low, high = wilson_interval(correct, done)
    result = {
        "total": done, "predictions": predictions, "batch": runner.batch,
        "correct": correct, "top1": correct / done, "wilson95": [low, high],
    }  # fmt: skip
    if settle:
        result.update(indices=evaluated.tolist(), order=f"RandomState({ORDER_SEED}).permutation")
    if change is not None:
        result["change"] = change
    return result


def _looks(total):
    """Where evaluation stops to ask whether the change is settled: 800, 1,600, 3,200, ... and the whole set."""
    looks, look = [], FIRST_LOOK
    while look < total:
        looks.append(look)
        look *= 2
    return [*looks, total]


def settled_change(predictions, float32, labels, tolerance_pp, z=Z_95):
    """The accuracy change against float32 on the same samples, with an interval, and whether it is settled.

    Paired: only samples where exactly one of the two is right move the change. `gained` (this variant right,
    float32 wrong) and `lost` each get a Wilson interval; the change lies within [gained_low - lost_high,
    gained_high - lost_low]. Settled when that interval lies wholly above -tolerance (loses less than the
    tolerance) or wholly below it (loses more): more samples cannot change which side it is on."""
    mine, theirs = predictions == labels, float32 == labels
    n = len(labels)
    gained, lost = int(np.sum(mine & ~theirs)), int(np.sum(theirs & ~mine))
    gained_low, gained_high = wilson_interval(gained, n, z)
    lost_low, lost_high = wilson_interval(lost, n, z)
    low, high = (gained_low - lost_high) * 100, (gained_high - lost_low) * 100
    return {
        "samples": n, "gained": gained, "lost": lost, "delta_pp": (gained - lost) / n * 100,
        "interval_pp": [low, high], "tolerance_pp": tolerance_pp,
        "settled": low > -tolerance_pp or high < -tolerance_pp,
        "agrees": int(np.sum(predictions == float32)),
    }  # fmt: skip


def fidelity(runner, reference, progress):
    """This variant's outputs against the float32 reference outputs, on the reference's own inputs.

    `reference` holds in0, in1, ... (model inputs, float domain) and out0,
    out1, ... (float32 outputs, (samples, -1)), plus a `source` string."""
    inputs = [reference[key] for key in sorted((k for k in reference if k.startswith("in")), key=lambda k: int(k[2:]))]
    expected = [reference[k] for k in sorted((k for k in reference if k.startswith("out")), key=lambda k: int(k[3:]))]
    if len(inputs) != len(runner.inputs) or len(expected) != len(runner.outputs):
        raise AgentFailure(
            "reference-mismatch",
            f"the reference outputs are for {len(inputs)} input(s) and {len(expected)} output(s); this model has "
            f"{len(runner.inputs)} and {len(runner.outputs)}",
            EXIT_USAGE,
        )
    progress("fidelity", 0, len(inputs[0]), force=True)
    runner.try_batch(runner.native_batch)
    outputs = runner.run(inputs)  # at the model's own batch size: what a deployment computes, no check needed
    progress("fidelity", len(inputs[0]), len(inputs[0]), force=True)
    names = [str(detail["name"]) for detail in runner.outputs]
    metrics = fidelity_metrics(outputs, [e.reshape(len(e), -1) for e in expected])
    for name, metric in zip(names, metrics):
        metric["name"] = name
    return {"samples": len(inputs[0]), "source": str(reference.get("source", "unknown")), "outputs": metrics}


def _max_or_none(zones):
    return max(zones.values()) if zones else None


# ---- the device lease: one measurement per device, across controllers ---------------

LEASE_KIND = "edgebench.lease"
LEASE_FOLDER = "edgebench.lease"


def lease(action, directory, owner, ttl):
    """Take, renew or give back this device's lease: a folder made with mkdir (atomic on any POSIX
    filesystem) holding owner.json with who holds it and until when.

    A lease held by someone else is taken over only once it has expired (its holder died
    without giving it back); an expired holder's folder is renamed away first, so two
    controllers taking over at once still meet at the one mkdir that succeeds."""
    path = os.path.join(directory, LEASE_FOLDER)
    owner_file = os.path.join(path, "owner.json")
    now = time.time()
    holder = _read_json(owner_file)
    mine = holder is not None and holder.get("id") == owner["id"]
    if action == "release":
        if mine:
            shutil.rmtree(path, ignore_errors=True)
        return {"kind": LEASE_KIND, "released": mine}
    if not mine:
        if action == "renew":
            return {"kind": LEASE_KIND, "acquired": False, "holder": holder, "lost": True}
        os.makedirs(directory, exist_ok=True)
        try:
            os.mkdir(path)
        except FileExistsError:
            # Half-made (no owner.json yet) counts as held for a minute, then as abandoned. A holder the
            # new owner names as dead (its lab worker's broker lease expired) is taken over at once.
            replaced = holder is not None and holder.get("id") in (owner.get("replaces") or ())
            expired = replaced or (holder["expires"] < now if holder else os.path.getmtime(path) < now - 60)
            if not expired:
                return {"kind": LEASE_KIND, "acquired": False, "holder": holder}
            stale = f"{path}.expired-{int(now)}-{os.getpid()}"
            try:
                os.rename(path, stale)
                os.mkdir(path)
            except OSError:  # another controller took it over first
                return {"kind": LEASE_KIND, "acquired": False, "holder": _read_json(owner_file)}
            shutil.rmtree(stale, ignore_errors=True)
    answer_extra = {"stopped_agents": stop_leftover_agents(directory)}  # nobody else may measure now
    record = dict(owner, expires=now + ttl, renewed=now)
    record.setdefault("since", now)
    if mine:
        record["since"] = holder.get("since", now)
    temporary = owner_file + f".{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        json.dump(record, f)
    os.replace(temporary, owner_file)
    return {"kind": LEASE_KIND, "acquired": True, "holder": record, **answer_extra}


# ---- agents measuring on this device, so a leftover one can be stopped -------------

AGENTS_FOLDER = "edgebench.agents"
STOP_WAIT_S = 5.0


def process_start(pid):
    """When a process started (clock ticks since boot, /proc/<pid>/stat field 22); None when it is gone or a
    zombie. With the pid it names one process: a pid reused later has another start."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name in parentheses may hold spaces
    return None if fields[0] == "Z" else int(fields[19])


def register_agent(directory, model):
    """Say on the device that this agent is measuring `model`; returns the file to remove when done."""
    folder = os.path.join(directory, AGENTS_FOLDER)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{os.getpid()}.json")
    with open(path, "w") as f:
        json.dump({"pid": os.getpid(), "start": process_start(os.getpid()), "model": model, "since": time.time()}, f)
    return path


def stop_leftover_agents(directory):
    """Stop every agent still measuring here: run by the lease's holder before it measures, so an agent
    whose controller lost it (a stalled connection, a killed controller) never measures beside the next
    one. TERM, then KILL; returns what was found, each with "stopped" true once confirmed gone."""
    folder = os.path.join(directory, AGENTS_FOLDER)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = []
    for name in names:
        path = os.path.join(folder, name)
        record = _read_json(path)
        if not isinstance(record, dict) or record.get("pid") == os.getpid():
            continue
        pid, start = record.get("pid"), record.get("start")
        alive = isinstance(pid, int) and start is not None and process_start(pid) == start
        if alive:
            gone = any(_signal_and_wait(pid, start, sig) for sig in (signal.SIGTERM, signal.SIGKILL))
            found.append({"pid": pid, "model": record.get("model"), "since": record.get("since"), "stopped": gone})
            if not gone:
                continue  # still there: its file stays, and the holder is told
        with contextlib.suppress(OSError):
            os.remove(path)
    return found


def _signal_and_wait(pid, start, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        if process_start(pid) != start:
            return True
        time.sleep(0.05)
    return False


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ---- entry point ---------------------------------------------------------------


def parse_settings(argv):
    parser = argparse.ArgumentParser(prog="agent.py", description="edgebench on-device agent")
    parser.add_argument("model", nargs="?", help="the .tflite to measure")
    parser.add_argument("--config", help="a JSON file of settings; flags override it")
    parser.add_argument("--dataset", help=".npz with x (and y) for accuracy")
    parser.add_argument("--samples", type=int, help="evaluate the first N samples (0: no accuracy, no fidelity)")
    parser.add_argument(
        "--accuracy-tolerance",
        type=float,
        help="without --samples: stop once the change against float32 is settled within this (pp)",
    )
    parser.add_argument(
        "--float32-predictions", help=".npy of float32's predictions on the first samples of the data set"
    )
    parser.add_argument("--float32-model", help="with --profile: float32's model here, for the per-layer error")
    parser.add_argument("--profile", action="store_true", help="also the per-layer error against float32")
    parser.add_argument("--probes", help="with --profile: single-operator probe models, comma-separated, to time")
    parser.add_argument("--reference", help=".npz of float32 reference inputs (in0, ...) and outputs (out0, ...)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--delegate", choices=("xnnpack", "none"))
    parser.add_argument("--accelerator", choices=ACCELERATORS, help="measure through LiteRT's CompiledModel on it")
    parser.add_argument("--vulkan-icd", help="with --accelerator gpu: the Vulkan driver manifest to load")
    parser.add_argument("--gpu-precision", choices=GPU_PRECISIONS, help="with --accelerator gpu: fp32 enforces it")
    parser.add_argument("--npu-vendor", choices=NPU_VENDORS, help="with --accelerator npu: the wheel's dispatch")
    parser.add_argument("--npu-libraries", help="with --npu-vendor: the folder of the vendor's runtime libraries")
    parser.add_argument("--openvino-device", choices=OPENVINO_DEVICES, help="with --npu-vendor intel_openvino")
    parser.add_argument("--cpus", help="pin to these CPUs, e.g. 2,3")
    parser.add_argument("--runtime", choices=[name for name, _ in RUNTIME_MODULES])
    parser.add_argument("--sha256", help="the model's expected sha256; a mismatch is reported as a damaged copy")
    for name in ("warmup_min_runs", "min_runs", "max_runs"):
        parser.add_argument("--" + name.replace("_", "-"), type=int)
    for name in ("warmup_min_seconds", "min_seconds", "max_seconds", "cv_warning"):
        parser.add_argument("--" + name.replace("_", "-"), type=float)
    parser.add_argument("--output", help="write the document here instead of stdout")
    parser.add_argument("--probe", action="store_true", help="describe what this device can run, and exit")
    parser.add_argument("--workdir", help="with --probe: report free disk space here")
    parser.add_argument("--register", help="while measuring, record this agent's pid in this folder (the workdir)")
    parser.add_argument("--lease", choices=("acquire", "renew", "release"), help="take or give back the device lease")
    parser.add_argument("--lease-dir", help="with --lease: the folder the lease lives in (the device's workdir)")
    parser.add_argument("--owner", help="with --lease: JSON describing the holder, with a unique 'id'")
    parser.add_argument("--ttl", type=float, help="with --lease: seconds until the lease expires unless renewed")
    args = parser.parse_args(argv)
    settings = dict(DEFAULTS)
    if args.config:
        with open(args.config) as f:
            settings.update(json.load(f))
    for key, value in vars(args).items():
        if value is not None and key not in ("config", "output"):
            settings[key] = value
    if isinstance(settings["cpus"], str):
        settings["cpus"] = [int(c) for c in settings["cpus"].split(",") if c.strip()]
    if args.lease:
        if not (args.lease_dir and args.owner and args.ttl):
            parser.error("--lease needs --lease-dir, --owner and --ttl")
        settings["lease"] = (args.lease, args.lease_dir, json.loads(args.owner), args.ttl)
    elif not settings.get("model") and not args.probe:
        parser.error("a model path is needed (argument or config)")
    settings["probe"] = args.probe
    settings["workdir"] = args.workdir
    return settings, args.output


def main(argv=None):
    started = time.perf_counter()
    settings, output_path = parse_settings(argv)
    if settings["probe"]:
        sys.stdout.write(json.dumps(probe(settings)) + "\n")
        return EXIT_OK
    if settings.get("lease"):
        sys.stdout.write(json.dumps(lease(*settings["lease"])) + "\n")
        return EXIT_OK
    # Native code (the runtime's "Created delegate" line) may print to fd 1;
    # send all of it to stderr and keep the real stdout for the one document.
    sys.stdout.flush()
    document_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    # Its own copy of stderr: the heartbeat keeps beating while a runtime log is read at fd 2 (_stderr_of).
    progress = Progress(os.fdopen(os.dup(2), "w", buffering=1))
    progress.start_heartbeat()
    document = {
        "schema_version": SCHEMA_VERSION,
        "kind": RESULT_KIND,
        "status": "ok",
        "settings": {
            key: value for key, value in settings.items() if key not in ("model", "probe", "workdir", "register")
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # The device's clock, to the microsecond: when two runs shared a board, these show whether they overlapped.
        "started_unix": time.time(),
    }
    exit_code = EXIT_OK
    registration = None
    try:
        if settings.get("register"):
            registration = register_agent(settings["register"], settings["model"])
        if settings["cpus"]:
            os.sched_setaffinity(0, settings["cpus"])  # before the runtime starts its threads
        prepare_accelerator(settings)
        measure(settings, progress, document)
    except AgentFailure as failure:
        document["status"] = "error"
        document["error"] = {"kind": failure.kind, "message": " ".join(str(failure).split())}
        exit_code = failure.exit_code
    except OSError as error:
        document["status"] = "error"
        document["error"] = {"kind": "os-error", "message": " ".join(str(error).split())}
        exit_code = EXIT_AGENT_ERROR
    finally:
        if registration:
            with contextlib.suppress(OSError):
                os.remove(registration)
    progress("done", force=True)
    document["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    document["finished_unix"] = time.time()
    document["elapsed_s"] = time.perf_counter() - started  # the agent's own wall time, for overhead accounting
    text = json.dumps(document)
    if output_path:
        temporary = output_path + ".tmp"
        with open(temporary, "w") as f:
            f.write(text)
        os.replace(temporary, output_path)
    else:
        document_stream.write(text + "\n")
        document_stream.flush()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
