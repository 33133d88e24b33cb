"""What TFLite's `benchmark_model` and LiteRT's `benchmark_litert_model` print -> figures in microseconds.

Every format in use is read (tests/data/benchmark_model holds published outputs of each):

- the statistics line of tensorflow/core/util/stats_calculator.h, after each "Running benchmark
  for ..." line (warm-up first, then the measured runs):
      count=50 first=137789 curr=137254 min=137079 max=143416 avg=137722 std=896
  with " p5=... median=... p95=..." appended by StatWithPercentiles, "count=1 curr=146161" or
  "count=3 curr=9(all same)" when every value was equal, and "count=0" when nothing ran;
- the summary line, older:
      Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722
  ("Inference:" instead of "no stats:" later), and newer:
      Inference timings in us: Init: 3337, First inference: 81913, Warmup (avg): 58984.7, Inference (avg): 56265.8
- memory: "Memory footprint delta from the start of the tool (MB): init=2.43 overall=8.68" and
  "Overall peak memory footprint (MB) via periodic monitoring: 13.18";
- the "========== BENCHMARK RESULTS ==========" block of benchmark_litert_model (milliseconds), and the
  " BENCHMARK RESULTS" block of its Python edition, with median, p5, p95 and "Fully accelerated".

Lines may carry any prefix ("INFO: ", a logcat tag, a timestamp); only the text after it is read.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"
_PAIR = re.compile(rf"\b(count|first|curr|min|max|avg|std|p5|median|p95)=({_NUMBER})")
_STAT = re.compile(r"(?:^|[\s:])count=\d+")
_RUNNING = re.compile(r"Running benchmark for")
_NEW_SUMMARY = re.compile(
    rf"Inference timings in us: Init: ({_NUMBER}), First inference: ({_NUMBER}), "
    rf"Warmup \(avg\): ({_NUMBER}), Inference \(avg\): ({_NUMBER})"
)
_OLD_SUMMARY = re.compile(
    rf"Average inference timings in us: Warmup: ({_NUMBER}), Init: ({_NUMBER}), (?:no stats|Inference): ({_NUMBER})"
)
_FOOTPRINT = re.compile(
    rf"Memory footprint delta from the start of the tool \(MB\): init=({_NUMBER}) overall=({_NUMBER})"
)
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})")
_BLOCK_START = "========== BENCHMARK RESULTS =========="
# TFLite's delegate log: "Replacing 7 out of 9 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 2
# partitions for the whole graph." (one line per delegate applied)
_REPLACING = re.compile(
    r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]+)\) node, yielding (\d+) partition"
)
# A GPU delegate that gave up a backend or the whole graph says so in its log.
_FALLBACK = re.compile(r"(?i)(falling back to [^.\n]*|fall(?:s|ing)? back to (?:the )?cpu[^.\n]*)")
_BLOCK = {
    "init_ms": re.compile(rf"Model initialization:\s+({_NUMBER}) ms"),
    "warmup_first_ms": re.compile(rf"Warmup \(first\):\s+({_NUMBER}) ms"),
    "warmup_avg_ms": re.compile(rf"Warmup \(avg\):\s+({_NUMBER}) ms \((\d+) runs\)"),
    "avg_ms": re.compile(rf"Inference \(avg\):\s+({_NUMBER}) ms \((\d+) runs\)"),
    "min_ms": re.compile(rf"Inference \(min\):\s+({_NUMBER}) ms"),
    "max_ms": re.compile(rf"Inference \(max\):\s+({_NUMBER}) ms"),
    "std_ms": re.compile(rf"Inference \(std\):\s+({_NUMBER})"),
    # The Python edition's block has percentiles and the placement too.
    "median_ms": re.compile(rf"Inference \(median\):\s+({_NUMBER}) ms"),
    "p5_ms": re.compile(rf"Inference \(p5\):\s+({_NUMBER}) ms"),
    "p95_ms": re.compile(rf"Inference \(p95\):\s+({_NUMBER}) ms"),
    "fully_accelerated": re.compile(r"Fully accelerated:\s+(True|False)"),
    "init_mb": re.compile(rf"Init footprint:\s+({_NUMBER}) MB"),
    "overall_mb": re.compile(rf"Overall footprint:\s+({_NUMBER}) MB"),
    "peak_mb": re.compile(rf"Peak memory:\s+({_NUMBER}) MB"),
}
_FAILURE = re.compile(r"(?:^|\s)(?:ERROR|E/?\w*|Error):\s*(.+)$|^(Failed to .+|Benchmarking failed.*)$")


@dataclass
class Timing:
    """One phase's statistics in µs; None where the format does not give it."""

    count: int | None = None
    mean: float | None = None
    first: float | None = None
    min: float | None = None
    max: float | None = None
    std: float | None = None
    p5: float | None = None
    median: float | None = None
    p95: float | None = None


@dataclass
class Figures:
    format: str  # which output it was read from: "stat", "stat+percentiles", "average-line", "litert-block", "proto"
    inference: Timing = field(default_factory=Timing)
    warmup: Timing = field(default_factory=Timing)
    init_us: float | None = None
    memory_mb: dict = field(default_factory=dict)  # init, overall (deltas from the tool's start), peak
    errors: list[str] = field(default_factory=list)
    delegation: list[dict] = field(default_factory=list)  # each "Replacing N out of M node(s)" line
    fallbacks: list[str] = field(default_factory=list)  # "Falling back to OpenGL", ...
    fully_accelerated: bool | None = None  # LiteRT's tools: the CompiledModel's own answer

    @property
    def measured(self) -> bool:
        return bool(self.inference.count) and self.inference.mean is not None

    def as_dict(self) -> dict:
        return asdict(self)


def parse_output(text: str) -> Figures:
    """The figures of one run's output (stdout and stderr together, in order)."""
    lines = [line.rstrip() for line in text.splitlines()]
    figures = _parse_block(lines) if any(_is_block_start(line) for line in lines) else _parse_stats(lines)
    for line in lines:
        if match := _FOOTPRINT.search(line):
            figures.memory_mb.update(init=float(match[1]), overall=float(match[2]))
        if match := _PEAK.search(line):
            figures.memory_mb["peak"] = float(match[1])
        if match := _FAILURE.search(line) or _FAILURE.search(_strip_prefix(line)):
            figures.errors.append((match[1] or match[2]).strip())
        if match := _REPLACING.search(line):
            figures.delegation.append({"delegate": match[3], "delegated": int(match[1]), "nodes": int(match[2]),
                                       "partitions": int(match[4])})  # fmt: skip
        if match := _FALLBACK.search(line):
            figures.fallbacks.append(" ".join(match[1].split()))
    return figures


def _parse_stats(lines: list[str]) -> Figures:
    figures = Figures("stat")
    phases: list[Timing] = []
    expecting = False
    for line in lines:
        if _RUNNING.search(line):
            expecting = True  # the next statistics line is this phase's
            continue
        if expecting and _STAT.search(line) and not line.lstrip().startswith(("Timings", "Memory (bytes)")):
            phases.append(_stat(line))
            expecting = False
    if phases:
        figures.inference = phases[-1]
        if len(phases) > 1:
            figures.warmup = phases[-2]
        if figures.inference.median is not None:
            figures.format = "stat+percentiles"
    for line in lines:
        if match := _NEW_SUMMARY.search(line):
            figures.init_us, first, warm, inference = (float(g) for g in match.groups())
            figures.warmup.first = figures.warmup.first if figures.warmup.first is not None else first
            figures.warmup.mean = figures.warmup.mean if figures.warmup.mean is not None else warm
            figures.inference.mean = figures.inference.mean if figures.inference.mean is not None else inference
        elif match := _OLD_SUMMARY.search(line):
            warm, figures.init_us, inference = (float(g) for g in match.groups())
            figures.warmup.mean = figures.warmup.mean if figures.warmup.mean is not None else warm
            figures.inference.mean = figures.inference.mean if figures.inference.mean is not None else inference
            if not phases:
                figures.format = "average-line"
    return figures


def _stat(line: str) -> Timing:
    """One stats_calculator line; '(all same)' and a lone curr= mean every value was that one."""
    values = {key: float(value) for key, value in _PAIR.findall(line)}
    count = int(values.get("count", 0))
    if count == 0:
        return Timing(count=0)
    if "avg" not in values:  # all the same: only curr is printed
        same = values.get("curr")
        return Timing(count, same, same, same, same, 0.0, same, same, same)
    return Timing(count, values["avg"], values.get("first"), values.get("min"), values.get("max"), values.get("std"),
                  values.get("p5"), values.get("median"), values.get("p95"))  # fmt: skip


def _is_block_start(line: str) -> bool:
    # The C++ tool's "========== BENCHMARK RESULTS ==========", or the Python edition's title between two rules.
    return _BLOCK_START in line or line.strip() == "BENCHMARK RESULTS"


def _parse_block(lines: list[str]) -> Figures:
    found: dict[str, tuple[str, ...]] = {}
    start = next(i for i, line in enumerate(lines) if _is_block_start(line))
    for line in lines[start:]:
        for key, pattern in _BLOCK.items():
            if key not in found and (match := pattern.search(line)):
                found[key] = match.groups()

    def us(key: str) -> float | None:
        return float(found[key][0]) * 1000 if key in found else None

    figures = Figures("litert-block")
    runs = int(found["avg_ms"][1]) if "avg_ms" in found else None
    figures.inference = Timing(runs, us("avg_ms"), None, us("min_ms"), us("max_ms"), us("std_ms"), us("p5_ms"),
                               us("median_ms"), us("p95_ms"))  # fmt: skip
    if "fully_accelerated" in found:
        figures.fully_accelerated = found["fully_accelerated"][0] == "True"
    warm_runs = int(found["warmup_avg_ms"][1]) if "warmup_avg_ms" in found else None
    figures.warmup = Timing(warm_runs, us("warmup_avg_ms"), us("warmup_first_ms"))
    figures.init_us = us("init_ms")
    for key, name in (("init_mb", "init"), ("overall_mb", "overall"), ("peak_mb", "peak")):
        if key in found:
            figures.memory_mb[name] = float(found[key][0])
    return figures


def figures_from_proto(result: dict) -> Figures:
    """The BenchmarkResult proto (benchmark_proto.parse_result) as Figures; it has medians the text lacks."""
    latency, memory, misc = (result.get(k, {}) for k in ("latency_metrics", "memory_metrics", "misc_metrics"))

    def us(key: str) -> float | None:
        return float(latency[key]) * 1000 if key in latency else None

    figures = Figures("proto")
    figures.inference = Timing(misc.get("num_runs"), us("avg_ms"), None, us("min_ms"), us("max_ms"), us("stddev_ms"),
                               us("p5_ms"), us("median_ms"), us("p95_ms"))  # fmt: skip
    figures.warmup = Timing(misc.get("num_warmup_runs"), us("average_warm_up_ms"), us("first_inference_ms"))
    figures.init_us = us("init_ms")
    if "init_footprint_kb" in memory:
        figures.memory_mb["init"] = memory["init_footprint_kb"] / 1024
    if "overall_footprint_kb" in memory:
        figures.memory_mb["overall"] = memory["overall_footprint_kb"] / 1024
    if "peak_mem_mb" in memory:
        figures.memory_mb["peak"] = float(memory["peak_mem_mb"])
    return figures


def figures_from_litert_json(result: dict) -> Figures:
    """benchmark_litert_model.py --result_json=FILE (the ai-edge-litert wheel's Python edition) as Figures."""
    latency = result.get("latency", {})

    def us(key: str) -> float | None:
        return float(latency[key]) * 1000 if latency.get(key) is not None else None

    figures = Figures("litert-json")
    figures.inference = Timing(latency.get("num_runs"), us("avg_ms"), None, us("min_ms"), us("max_ms"), us("std_ms"),
                               us("p5_ms"), us("median_ms"), us("p95_ms"))  # fmt: skip
    figures.warmup = Timing(latency.get("num_warmup_runs"), us("warmup_avg_ms"), us("warmup_first_ms"))
    figures.init_us = us("init_ms")
    if isinstance(result.get("fully_accelerated"), bool):
        figures.fully_accelerated = result["fully_accelerated"]
    return figures


def _strip_prefix(line: str) -> str:
    """'INFO: x', 'E tflite  : x', '2017-11-27 08:56:35.518009: I file.cc:324] x' -> 'x'."""
    return re.sub(r"^(?:\S+ \S+: [A-Z] \S+\] |[A-Z]/?\w*\s*:\s|INFO: |WARNING: |VERBOSE: )", "", line.strip())
