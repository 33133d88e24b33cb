"""benchmark_model's per-operator table (`--enable_op_profiling=true`) -> rows edgebench can show and compare.

The binary prints "Operator-wise Profiling Info for Regular Benchmark Runs:" and then a "Run Order" table,
in one of two published layouts:
- TFLite 1.x/2.x before about 2.10: tab-separated, with a `[start]` column;
- later TFLite and LiteRT: space-aligned, every line after an `INFO: ` prefix or none, no `[start]`, node
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

HEADER = "Operator-wise Profiling Info for Regular Benchmark Runs:"
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
    lines = [
        re.sub(r"^(INFO|I\d+ [\d:.]+ \d+ [\w.]+:\d+\])[: ]\s?", "", line.rstrip("\n")) for line in text.splitlines()
    ]
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
