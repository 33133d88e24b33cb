"""benchmark_model's per-operator table (`--enable_op_profiling=true`) -> rows edgebench can show and compare.

The binary prints "Operator-wise Profiling Info for Regular Benchmark Runs:" and then a "Run Order" table,
in one of two published layouts:
- TFLite 1.x/2.x before about 2.10: tab-separated, with a `[start]` column;
- later TFLite and LiteRT: space-aligned, every line after an `INFO: ` prefix (LiteRT's tool adds the source
  line, `INFO: [benchmark_litert_model.h:92] `) or none, no `[start]`, node
  types that contain spaces ("Convolution (NHWC, QC8) IGEMM", XNNPACK's own operators when its detailed
  profiling is on, their names starting with "Delegate/").
Columns are found by their bracketed headers, so either layout (and a missing column) parses the same way.
Where each row ran is read from the row itself: a delegate's partition ("TfLiteXNNPackDelegate",
"TfLiteNnapiDelegate", "TfLiteGpuDelegate...") or one of XNNPACK's operators ("Delegate/...") ran on that
delegate; a builtin operator name (CONV_2D) ran on the runtime's own kernels.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cache

from google.protobuf.message import DecodeError

from edgebench.backends.benchmark_proto import _FLOAT, _INT32, _INT64, _STRING, message_class

HEADER = "Operator-wise Profiling Info for Regular Benchmark Runs:"
# What a logger puts before each line: "INFO: ", LiteRT's "INFO: [benchmark_litert_model.h:92] ", glog's
# "I0218 08:32:26.152118 9 file.cc:263] ".
_PREFIX = re.compile(r"^(?:INFO: (?:\[[\w./-]+:\d+\] ?)?|I\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] )")
_NUMBER = r"-?\d+(?:\.\d+)?%?"


@dataclass(frozen=True)
class OpRow:
    node_type: str
    avg_ms: float
    share: float | None  # of the run's total, 0..1
    times_called: int
    name: str
    index: int | None  # the node's index, from the ":N" the binary appends to the name
    on: str  # "builtin", "XNNPACK", "NNAPI", "GPU", or the delegate's name

    def as_dict(self) -> dict:
        return asdict(self)


def parse_op_profile(text: str) -> list[OpRow] | None:
    """The Run Order rows of the regular runs' profile; None when the output has no such table."""
    lines = [_PREFIX.sub("", line.rstrip("\n")) for line in text.splitlines()]
    start = next((i for i, line in enumerate(lines) if line.strip() == HEADER), None)
    if start is None:
        return None
    header_at = next((i for i in range(start, len(lines)) if "[node type]" in lines[i]), None)
    if header_at is None:
        return None
    columns = [c.strip("[] ").lower() for c in re.findall(r"\[[^\]]+\]", lines[header_at])]
    numeric = [c for c in columns if c not in ("node type", "name")]
    pattern = re.compile(r"^\s*(?P<type>.+?)\s+" + r"\s+".join(rf"(?P<n{i}>{_NUMBER})" for i in range(len(numeric)))
                         + r"\s+(?P<name>.*\S)\s*$")  # fmt: skip
    rows = []
    for line in lines[header_at + 1 :]:
        if not line.strip() or line.lstrip().startswith("="):
            break
        match = pattern.match(line.replace("\t", " "))
        if not match:
            continue
        values = dict(zip(numeric, (match[f"n{i}"] for i in range(len(numeric))), strict=True))
        name = match["name"]
        index = re.search(r":(\d+)$", name)
        rows.append(OpRow(
            node_type=match["type"].strip(), avg_ms=float(values.get("avg ms", "nan")),
            share=float(values["%"].rstrip("%")) / 100 if "%" in values else None,
            times_called=int(float(values.get("times called", "1"))), name=name,
            index=int(index[1]) if index else None, on=placement_of(match["type"].strip(), name),
        ))  # fmt: skip
    return rows


# tflite/profiling/proto/profiling_info.proto (package tflite.profiling), what `--op_profiling_output_mode=proto`
# writes to --op_profiling_output_file: the runtime profile's per-operator stats, per subgraph and delegate.
_PROFILING = {
    "BenchmarkProfilingData": [("model_name", 1, _STRING), ("init_profile", 2, "ModelProfilingData"),
                               ("runtime_profile", 3, "ModelProfilingData")],
    "ModelProfilingData": [("subgraph_profiles", 1, "SubGraphProfilingData"),
                           ("delegate_profiles", 2, "DelegateProfilingData")],
    "SubGraphProfilingData": [("subgraph_name", 1, _STRING), ("subgraph_index", 2, _INT32),
                              ("per_op_profiles", 3, "OpProfileData")],
    "DelegateProfilingData": [("delegate_name", 1, _STRING), ("per_op_profiles", 2, "OpProfileData")],
    "OpProfilingStat": [("first", 1, _INT64), ("last", 2, _INT64), ("avg", 3, _INT64), ("stddev", 4, _FLOAT),
                        ("variance", 5, _FLOAT), ("min", 6, _INT64), ("max", 7, _INT64), ("sum", 8, _INT64),
                        ("count", 9, _INT64)],
    "OpProfileData": [("node_type", 1, _STRING), ("inference_microseconds", 2, "OpProfilingStat"),
                      ("mem_kb", 3, "OpProfilingStat"), ("times_called", 4, _INT64), ("name", 5, _STRING),
                      ("run_order", 6, _INT64)],
}  # fmt: skip
_REPEATED = frozenset({"ModelProfilingData.subgraph_profiles", "ModelProfilingData.delegate_profiles",
                       "SubGraphProfilingData.per_op_profiles", "DelegateProfilingData.per_op_profiles"})  # fmt: skip


@cache
def profiling_class():
    return message_class("edgebench_profiling_info.proto", "tflite.profiling", _PROFILING, "BenchmarkProfilingData",
                         _REPEATED)  # fmt: skip


def parse_op_profile_proto(data: bytes) -> list[OpRow] | None:
    """The runtime profile's operators from a BenchmarkProfilingData proto, in run order; None if it is not one."""
    message = profiling_class()()
    try:
        message.ParseFromString(data)
    except DecodeError:
        return None
    if not message.HasField("runtime_profile"):
        return None
    profile = message.runtime_profile
    ops = [op for graph in profile.subgraph_profiles for op in graph.per_op_profiles]
    ops += [op for delegate in profile.delegate_profiles for op in delegate.per_op_profiles]
    total = sum(op.inference_microseconds.avg * max(op.times_called, 1) for op in ops) or 1
    rows = []
    for op in sorted(ops, key=lambda op: op.run_order):
        index = re.search(r":(\d+)$", op.name)
        us = op.inference_microseconds.avg * max(op.times_called, 1)
        rows.append(OpRow(op.node_type, op.inference_microseconds.avg / 1000, us / total, max(op.times_called, 1),
                          op.name, int(index[1]) if index else None, placement_of(op.node_type, op.name)))  # fmt: skip
    return rows


def encode_op_profile_proto(rows: list[tuple[str, float, str, int]]) -> bytes:
    """(node type, avg microseconds, name, run order) rows -> proto bytes, as the stand-in binary writes them."""
    message = profiling_class()()
    graph = message.runtime_profile.subgraph_profiles.add(subgraph_name="main", subgraph_index=0)
    for node_type, avg_us, name, order in rows:
        op = graph.per_op_profiles.add(node_type=node_type, name=name, times_called=1, run_order=order)
        op.inference_microseconds.avg = int(avg_us)
        op.inference_microseconds.count = 1
    return message.SerializeToString()


def placement_of(node_type: str, name: str) -> str:
    """Where a row of the table ran, from its node type and name."""
    if name.startswith("Delegate/"):
        return "XNNPACK"  # XNNPACK's detailed profiling lists its own operators under the delegate
    lowered = node_type.lower()
    for key, label in (("xnnpack", "XNNPACK"), ("nnapi", "NNAPI"), ("gpu", "GPU"), ("hexagon", "Hexagon")):
        if key in lowered:
            return label
    if "delegate" in lowered:
        return node_type
    return "builtin"
