"""STAND-IN for TFLite's native `benchmark_model` binary, for the end-to-end tests (no phone, no Android build here).

It runs the model with this host's real LiteRT runtime (ai_edge_litert) on random inputs, as the
real binary does, takes the real binary's flags, and prints exactly what TFLite 2.x's binary
prints to stderr (the stats_calculator lines with percentiles, the "Inference timings in us"
line, the memory lines), and writes the BenchmarkResult proto for --result_file_path, as LiteRT's
benchmark tool does. Its figures are real measurements of this host, not a phone's.

The tests push a two-line shell wrapper that execs this file to the fake device, the way a real
binary is pushed to /data/local/tmp. EDGEBENCH_STANDIN_FORMAT=litert prints LiteRT's
"BENCHMARK RESULTS" block instead; EDGEBENCH_STANDIN_HANG=SECONDS sleeps before measuring (a
wedged binary).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FLAGS = {
    "graph": "", "num_threads": "-1", "warmup_runs": "1", "warmup_min_secs": "0.5", "num_runs": "50",
    "min_secs": "1", "max_secs": "150", "use_xnnpack": "false", "report_peak_memory_footprint": "false",
    "result_file_path": "", "run_delay": "-1", "enable_op_profiling": "false", "op_profiling_output_mode": "stdout",
    "op_profiling_output_file": "", "use_gpu": "false", "use_nnapi": "false",
    "nnapi_accelerator_name": "", "gpu_precision_loss_allowed": "true",
}  # fmt: skip


def log(message: str = "") -> None:
    print(f"INFO: {message}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def stat_line(values: list[float]) -> str:
    """stats_calculator.h: Stat::OutputToStream, then StatWithPercentiles' p5/median/p95 (C++ %g-like output)."""
    if not values:
        return "count=0"
    ints = [int(v) for v in values]  # the tool keeps int64 microseconds
    if min(ints) == max(ints):
        return f"count={len(ints)} curr={ints[-1]}" + ("(all same)" if len(ints) > 1 else "")
    mean = sum(ints) / len(ints)
    std = int((sum(v * v for v in ints) / len(ints) - mean * mean) ** 0.5)

    def pct(p):
        ordered = sorted(ints)
        return ordered[min(len(ordered) * p // 100, len(ordered) - 1)]

    return (f"count={len(ints)} first={ints[0]} curr={ints[-1]} min={min(ints)} max={max(ints)} avg={mean:.6g} "
            f"std={std} p5={pct(5)} median={pct(50)} p95={pct(95)}")  # fmt: skip


def timed_runs(interpreter, min_runs: int, min_secs: float, max_secs: float) -> list[float]:
    times: list[float] = []
    start = time.perf_counter()
    while True:
        begin = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - begin) * 1e6)
        elapsed = time.perf_counter() - start
        if elapsed > max_secs or (len(times) >= min_runs and elapsed >= min_secs):
            return times


def main(argv: list[str]) -> int:
    flags = dict(FLAGS)
    for arg in argv:
        if arg in ("--help", "-h"):
            print("usage: benchmark_model (edgebench STAND-IN)\nFlags:", file=sys.stderr)
            for name, default in FLAGS.items():
                print(f"\t--{name}={default}", file=sys.stderr)
            return 0
        name, _, value = arg.lstrip("-").partition("=")
        if name in flags:
            flags[name] = value
        else:
            print(f"WARNING: Unconsumed cmdline flags: {arg}", file=sys.stderr)
    log("STARTING!")
    log(f"Graph: [{flags['graph']}]")
    threads = int(flags["num_threads"])
    log(f"Num threads: [{threads}]")
    if hang := float(os.environ.get("EDGEBENCH_STANDIN_HANG", "0")):
        time.sleep(hang)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    base_rss = rss_mb()
    init_start = time.perf_counter()
    try:
        kind = (
            OpResolverType.AUTO if flags["use_xnnpack"] == "true" else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        interpreter = Interpreter(model_path=flags["graph"], num_threads=max(threads, 1),
                                  experimental_op_resolver_type=kind)  # fmt: skip
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        print(f"ERROR: {str(error).splitlines()[0]}", file=sys.stderr)
        print(f"ERROR: Failed to mmap model {flags['graph']}", file=sys.stderr)
        log("Benchmarking failed.")
        return 1
    if flags["use_xnnpack"] == "true":
        from edgebench.agent import agent

        log("Created TensorFlow Lite XNNPACK delegate for CPU.")
        placement = agent.kernel_placement(interpreter, "xnnpack")
        log(
            f"Replacing {placement['delegated']} out of {placement['nodes']} node(s) with delegate "
            f"(TfLiteXNNPackDelegate) node, yielding {placement['partitions']} partitions for the whole graph."
        )
    # A STAND-IN has no GPU or NPU: it prints what the real binary logs when it applies them (every float node
    # taken; an integer model's GPU delegate falls back to the CPU), and measures on the CPU as before.
    nodes = len(interpreter._get_ops_details())
    integer = any(np.issubdtype(d["dtype"], np.integer) for d in interpreter.get_input_details())
    if flags["use_gpu"] == "true":
        if integer:
            log("ERROR: Following operations are not supported by GPU delegate: integer tensors")
            log("Falling back to the CPU for the whole graph.")
        else:
            log("Created TensorFlow Lite delegate for GPU.")
            log(f"Replacing {nodes} out of {nodes} node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 "
                "partitions for the whole graph.")  # fmt: skip
    if flags["use_nnapi"] == "true":
        if flags["nnapi_accelerator_name"]:
            log(f"nnapi accelerator: [{flags['nnapi_accelerator_name']}]")
        log(f"Replacing {nodes} out of {nodes} node(s) with delegate (TfLiteNnapiDelegate) node, yielding 1 "
            "partitions for the whole graph.")  # fmt: skip
    init_us = (time.perf_counter() - init_start) * 1e6
    init_rss = rss_mb()
    log(f"Initialized session in {init_us / 1000:.4g}ms.")
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        dtype = detail["dtype"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            data = rng.integers(info.min, info.max, size=detail["shape"], endpoint=True).astype(dtype)
        else:
            data = rng.random(detail["shape"]).astype(dtype)
        interpreter.set_tensor(detail["index"], data)

    max_secs = float(flags["max_secs"])

    def phase(runs: int, seconds: float) -> list[float]:
        """One 'Running benchmark for ...' phase and its statistics line, as the binary logs them."""
        log(f"Running benchmark for at least {runs} iterations and at least {seconds:g} seconds but terminate if "
            f"exceeding {max_secs:g} seconds.")  # fmt: skip
        times = timed_runs(interpreter, runs, seconds, max_secs)
        log(stat_line(times))
        log()
        return times

    warmup = phase(int(flags["warmup_runs"]), float(flags["warmup_min_secs"]))
    inference = phase(int(flags["num_runs"]), float(flags["min_secs"]))
    ints = [int(v) for v in inference]
    mean = sum(ints) / len(ints)
    overall_rss = rss_mb()
    memory = {"init": init_rss - base_rss, "overall": overall_rss - base_rss, "peak": overall_rss}
    if os.environ.get("EDGEBENCH_STANDIN_FORMAT") == "litert":
        print_litert_block(init_us, warmup, ints, memory)
    else:
        log(f"Inference timings in us: Init: {int(init_us)}, First inference: {int(warmup[0])}, "
            f"Warmup (avg): {sum(map(int, warmup)) / len(warmup):.6g}, Inference (avg): {mean:.6g}")  # fmt: skip
        log("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
            "actual memory footprint of the model at runtime. Take the information at your discretion.")  # fmt: skip
        log(f"Memory footprint delta from the start of the tool (MB): init={memory['init']:.6g} "
            f"overall={memory['overall']:.6g}")  # fmt: skip
        if flags["report_peak_memory_footprint"] == "true":
            log(f"Overall peak memory footprint (MB) via periodic monitoring: {memory['peak']:.6g}")
    if flags["enable_op_profiling"] == "true":
        print_op_profile(flags["graph"], kind, max(threads, 1), flags)
    if flags["result_file_path"]:
        write_proto(flags["result_file_path"], init_us, warmup, ints, memory)
    return 0


def print_op_profile(graph: str, kind, threads: int, flags: dict) -> None:
    """The Run Order table in the space-aligned layout of later binaries. The real binary times each node inside
    the model; this STAND-IN times each operator alone (edgebench's probe models, on this host's LiteRT), so
    its figures are real measurements of this host, not a phone's, and not inside-the-graph times."""
    import tempfile

    from ai_edge_litert.interpreter import Interpreter

    from edgebench.agent import agent
    from edgebench.quantize.probes import probe_models

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for probe in probe_models(Path(graph), Path(folder)):
            if probe.path is None:
                continue
            interpreter = Interpreter(
                model_path=str(probe.path), num_threads=threads, experimental_op_resolver_type=kind
            )
            interpreter.allocate_tensors()
            for detail in interpreter.get_input_details():
                interpreter.set_tensor(detail["index"], agent._probe_input(detail))
            times = timed_runs(interpreter, 20, 0.02, 5.0)
            delegated = agent.kernel_placement(interpreter, "xnnpack")["delegated"]
            rows.append((("TfLiteXNNPackDelegate" if delegated else probe.op), sum(times) / len(times) / 1000,
                         probe.index))  # fmt: skip
    if flags["op_profiling_output_mode"] == "proto" and flags["op_profiling_output_file"]:
        from edgebench.backends.op_profile import encode_op_profile_proto

        data = [(node_type, ms * 1000, f"[op {index}]:{index}", order) for order, (node_type, ms, index) in
                enumerate(rows)]  # fmt: skip
        Path(flags["op_profiling_output_file"]).write_bytes(encode_op_profile_proto(data))
        return
    total = sum(ms for _, ms, _ in rows) or 1.0
    print("INFO: Operator-wise Profiling Info for Regular Benchmark Runs:", file=sys.stderr)
    print("============================== Run Order ==============================", file=sys.stderr)
    print(f"{'[node type]':>48}{'[first]':>17}{'[avg ms]':>16}{'[%]':>15}{'[cdf%]':>16}{'[mem KB]':>18}"
          f"{'[times called]':>22}  [Name]", file=sys.stderr)  # fmt: skip
    cdf = 0.0
    for node_type, ms, index in rows:
        cdf += ms / total * 100
        print(f"{node_type:>48}{ms:>17.3f}{ms:>16.3f}{ms / total * 100:>14.3f}%{cdf:>15.3f}%{0.0:>18.3f}{1:>17}"
              f"       [op {index}]:{index}", file=sys.stderr)  # fmt: skip
    print("", file=sys.stderr)


def print_litert_block(init_us, warmup, ints, memory) -> None:
    mean = sum(ints) / len(ints)
    std = (sum(v * v for v in ints) / len(ints) - mean * mean) ** 0.5
    print("INFO: \n========== BENCHMARK RESULTS ==========", file=sys.stderr)
    log(f"Model initialization: {init_us / 1000:.2f} ms")
    log(f"Warmup (first):       {warmup[0] / 1000:.2f} ms")
    log(f"Warmup (avg):         {sum(warmup) / len(warmup) / 1000:.2f} ms ({len(warmup)} runs)")
    log(f"Inference (avg):      {mean / 1000:.2f} ms ({len(ints)} runs)")
    log(f"Inference (min):      {min(ints) / 1000:.2f} ms")
    log(f"Inference (max):      {max(ints) / 1000:.2f} ms")
    log(f"Inference (std):      {std / 1000:.2f}")
    log("\nMemory Usage:")
    log(f"Init footprint:       {memory['init']:.2f} MB")
    log(f"Overall footprint:    {memory['overall']:.2f} MB")
    log(f"Peak memory:          {memory['peak']:.2f} MB")
    log("======================================\n")


def write_proto(path, init_us, warmup, ints, memory) -> None:
    from edgebench.backends.benchmark_proto import encode_result

    ordered = sorted(ints)
    mean = sum(ints) / len(ints)

    def pct(p):
        return ordered[min(len(ordered) * p // 100, len(ordered) - 1)] / 1000

    latency = {
        "init_ms": init_us / 1000, "first_inference_ms": warmup[0] / 1000,
        "average_warm_up_ms": sum(warmup) / len(warmup) / 1000, "min_ms": ordered[0] / 1000,
        "max_ms": ordered[-1] / 1000, "avg_ms": mean / 1000,
        "stddev_ms": (sum(v * v for v in ints) / len(ints) - mean * mean) ** 0.5 / 1000,
        "median_ms": pct(50), "p5_ms": pct(5), "p95_ms": pct(95),
    }  # fmt: skip
    memory_metrics = {
        "init_footprint_kb": int(memory["init"] * 1024), "overall_footprint_kb": int(memory["overall"] * 1024),
        "peak_mem_mb": memory["peak"],
    }  # fmt: skip
    log(f"Saving benchmark result to: {path}")
    Path(path).write_bytes(
        encode_result(latency, memory_metrics, {"num_runs": len(ints), "num_warmup_runs": len(warmup)})
    )
    log(f"Saved benchmark result to: {path}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
