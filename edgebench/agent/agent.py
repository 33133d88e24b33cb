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
import gc
import hashlib
import importlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time

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
    """Read an edgebench .npz: `x`, optional `y`, `x_scale`, `x_offset`."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return arrays


def model_inputs(arrays, start=0, stop=None):
    """Samples [start:stop] in the model's float input domain: x * x_scale + x_offset."""
    x = arrays["x"][start:stop].astype(np.float32)
    scale = float(arrays["x_scale"]) if "x_scale" in arrays else 1.0
    offset = float(arrays["x_offset"]) if "x_offset" in arrays else 0.0
    if scale != 1.0:
        x *= np.float32(scale)
    if offset != 0.0:
        x += np.float32(offset)
    return x


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


class Classifier:
    """One interpreter fed one sample (or batch) at a time, classes out."""

    def __init__(self, interpreter):
        self.interpreter = interpreter
        self.input = interpreter.get_input_details()[0]
        self.output = interpreter.get_output_details()[0]
        self.batch = int(self.input["shape"][0]) if len(self.input["shape"]) else 1

    def try_batch(self, batch):
        """Resize the batch dimension for faster evaluation; keep the original if the model refuses.

        A model whose graph hard-codes batch 1 (a Reshape to [1, -1], say) may
        accept the resize yet fold the batch into one row; the output shape
        tells, and then the original shape is restored.
        """
        original = [int(d) for d in self.input["shape"]]
        if not original or original[0] == batch:
            return self.batch
        if self._resize([batch, *original[1:]]) and int(self.interpreter.get_output_details()[0]["shape"][0]) == batch:
            self.batch = batch
        else:
            self._resize(original)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        return self.batch

    def _resize(self, shape):
        try:
            self.interpreter.resize_tensor_input(self.input["index"], np.array(shape, dtype=np.int32))
            self.interpreter.allocate_tensors()
        except Exception:  # RuntimeError or ValueError, depending on the runtime version
            return False
        return True

    def set_input(self, values):
        shape = tuple(self.input["shape"])
        self.interpreter.set_tensor(self.input["index"], quantize_input(values.reshape(shape), self.input))

    def scores(self):
        raw = self.interpreter.get_tensor(self.output["index"])
        return dequantize_output(raw, self.output).reshape(raw.shape[0], -1)

    def predict(self, values):
        """Top-1 class of each sample in `values` (any count; padded to the batch)."""
        count = len(values)
        predictions = np.empty(count, dtype=np.int64)
        for start in range(0, count, self.batch):
            chunk = values[start : start + self.batch]
            if len(chunk) < self.batch:
                pad = np.zeros((self.batch - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            self.set_input(chunk)
            self.interpreter.invoke()
            predictions[start : start + self.batch] = np.argmax(self.scores(), axis=1)[: min(self.batch, count - start)]
        return predictions


# --------------------------------------------------------------------------
# Measurement. Everything below runs on the device.
# --------------------------------------------------------------------------

SCHEMA_VERSION = 1
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
    "cpus": None,
    "runtime": None,
    "dataset": None,
    "samples": None,
    "warmup_min_runs": 1,
    "warmup_min_seconds": 0.5,
    "min_runs": 50,
    "min_seconds": 1.0,
    "max_seconds": 150.0,
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
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {
        "count": int(values.size),
        "min": float(values.min()),
        "mean": mean,
        "std": std,
        "cv": std / mean if mean > 0 else 0.0,
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(values.max()),
    }


def validity_warnings(stats, settings, thermal, max_time_hit):
    """pyperf/MLPerf-style reasons not to trust a result, each with a code and a sentence."""
    warnings = []
    if stats.get("count", 0) > 1 and stats["cv"] > settings["cv_warning"]:
        warnings.append(
            {
                "code": "high-variance",
                "message": "coefficient of variation {:.0f}% is above {:.0f}%: the machine was busy or unstable".format(
                    stats["cv"] * 100, settings["cv_warning"] * 100
                ),
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


def cpu_model():
    text = _read("/proc/cpuinfo") or ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
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


class Progress:
    """One JSON line per update on stderr, which the host turns into a progress bar."""

    def __init__(self, stream):
        self.stream = stream
        self.last = 0.0

    def __call__(self, phase, done=None, total=None, force=False):
        now = time.monotonic()
        if not force and now - self.last < 0.25:
            return
        self.last = now
        self.stream.write(PROGRESS_PREFIX + json.dumps({"phase": phase, "done": done, "total": total}) + "\n")
        self.stream.flush()


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def timed_runs(invoke, min_runs, min_seconds, max_seconds, progress=None, phase="measure"):
    """Invoke until both min_runs and min_seconds are reached, or max_seconds passes.

    Returns (samples in microseconds, max time hit). Only invoke() is inside
    the clock; the stopping checks run outside it.
    """
    clock = time.perf_counter_ns
    samples = []
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
        if len(samples) >= min_runs and elapsed >= enough_ns:
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
    try:
        before = time.perf_counter()
        interpreter = create_interpreter(interpreter_class, model_path, settings["threads"], settings["delegate"])
        timing["load_us"] = (time.perf_counter() - before) * 1e6
        before = time.perf_counter()
        interpreter.allocate_tensors()
        timing["allocate_us"] = (time.perf_counter() - before) * 1e6
    except (RuntimeError, ValueError) as error:
        raise AgentFailure("model-load-failed", f"{runtime_name}: {error}", EXIT_MODEL_FAILED) from None
    memory["peak_rss_after_load"] = peak_rss_bytes()
    memory["rss_after_load"] = rss_bytes()

    classifier = Classifier(interpreter)
    if dataset is not None:
        sample = model_inputs(dataset, 0, 1)
    else:  # no data set: a fixed pseudo-random input in [0, 1)
        sample = np.random.RandomState(0).random_sample(tuple(classifier.input["shape"])).astype(np.float32)
    try:
        classifier.set_input(sample)
        before = time.perf_counter()
        interpreter.invoke()
        timing["first_inference_us"] = (time.perf_counter() - before) * 1e6

        progress("warmup", force=True)
        warmup, _ = timed_runs(
            interpreter.invoke, settings["warmup_min_runs"], settings["warmup_min_seconds"],
            settings["max_seconds"], progress, "warmup",
        )  # fmt: skip
        timing["warmup_runs"] = len(warmup)
        samples, max_time_hit = timed_runs(
            interpreter.invoke, settings["min_runs"], settings["min_seconds"], settings["max_seconds"], progress
        )
    except (RuntimeError, ValueError) as error:
        raise AgentFailure("invoke-failed", f"{runtime_name}: {error}", EXIT_INVOKE_FAILED) from None
    timing["samples_us"] = samples
    timing["max_time_hit"] = max_time_hit
    timing["stats"] = stats = summarize(samples)
    memory["peak_rss_after_runs"] = peak_rss_bytes()
    memory["rss_after_runs"] = rss_bytes()
    baseline = memory["baseline_rss"]
    if baseline is not None:
        memory["load_delta"] = memory["peak_rss_after_load"] - baseline
        memory["peak_delta"] = memory["peak_rss_after_runs"] - baseline
    document["thermal"]["after_c"] = _max_or_none(temperatures())
    document["thermal"]["zones_after"] = temperatures()
    document["thermal"]["throttled"] = pi_throttle_flags()

    if dataset is not None and settings["samples"] != 0:
        document["accuracy"] = evaluate(classifier, dataset, settings["samples"], progress)
    document["warnings"] = validity_warnings(stats, settings, document["thermal"], max_time_hit)


def evaluate(classifier, dataset, samples, progress):
    total = len(dataset["x"]) if samples is None else min(samples, len(dataset["x"]))
    classifier.try_batch(EVALUATION_BATCH)
    predictions = []
    for start in range(0, total, 1000):
        stop = min(start + 1000, total)
        predictions.extend(int(p) for p in classifier.predict(model_inputs(dataset, start, stop)))
        progress("accuracy", stop, total)
    correct = int(np.sum(np.asarray(predictions) == dataset["y"][:total])) if "y" in dataset else None
    result = {"total": total, "predictions": predictions, "batch": classifier.batch}
    if correct is not None:
        low, high = wilson_interval(correct, total)
        result.update({"correct": correct, "top1": correct / total, "wilson95": [low, high]})
    return result


def _max_or_none(zones):
    return max(zones.values()) if zones else None


# ---- entry point ---------------------------------------------------------------


def parse_settings(argv):
    parser = argparse.ArgumentParser(prog="agent.py", description="edgebench on-device agent")
    parser.add_argument("model", nargs="?", help="the .tflite to measure")
    parser.add_argument("--config", help="a JSON file of settings; flags override it")
    parser.add_argument("--dataset", help=".npz with x (and y) for accuracy")
    parser.add_argument("--samples", type=int, help="evaluate the first N samples (0: no accuracy)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--delegate", choices=("xnnpack", "none"))
    parser.add_argument("--cpus", help="pin to these CPUs, e.g. 2,3")
    parser.add_argument("--runtime", choices=[name for name, _ in RUNTIME_MODULES])
    parser.add_argument("--sha256", help="the model's expected sha256; a mismatch is reported as a damaged copy")
    for name in ("warmup_min_runs", "min_runs"):
        parser.add_argument("--" + name.replace("_", "-"), type=int)
    for name in ("warmup_min_seconds", "min_seconds", "max_seconds", "cv_warning"):
        parser.add_argument("--" + name.replace("_", "-"), type=float)
    parser.add_argument("--output", help="write the document here instead of stdout")
    parser.add_argument("--probe", action="store_true", help="describe what this device can run, and exit")
    parser.add_argument("--workdir", help="with --probe: report free disk space here")
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
    if not settings.get("model") and not args.probe:
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
    # Native code (the runtime's "Created delegate" line) may print to fd 1;
    # send all of it to stderr and keep the real stdout for the one document.
    sys.stdout.flush()
    document_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    progress = Progress(sys.stderr)
    document = {
        "schema_version": SCHEMA_VERSION,
        "kind": RESULT_KIND,
        "status": "ok",
        "settings": {key: value for key, value in settings.items() if key not in ("model", "probe", "workdir")},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    exit_code = EXIT_OK
    try:
        if settings["cpus"]:
            os.sched_setaffinity(0, settings["cpus"])  # before the runtime starts its threads
        measure(settings, progress, document)
    except AgentFailure as failure:
        document["status"] = "error"
        document["error"] = {"kind": failure.kind, "message": " ".join(str(failure).split())}
        exit_code = failure.exit_code
    except OSError as error:
        document["status"] = "error"
        document["error"] = {"kind": "os-error", "message": " ".join(str(error).split())}
        exit_code = EXIT_AGENT_ERROR
    progress("done", force=True)
    document["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
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
