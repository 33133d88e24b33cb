"""Two profiles of one variant (--profile, in two runs) -> what moved: operators whose kernel changed, operators
whose time changed by a share that matters, and the first layer whose error changed. Pure functions.

"FULLY_CONNECTED #5 +11.7 ms: builtin kernels now (was XNNPACK)" is the line a user needs when a runtime
upgrade or a new model file makes a variant slower: which operator, by how much, and why if the placement says.
"""

from __future__ import annotations

from dataclasses import dataclass

# An operator's time counts as changed when it moved by this share of the variant's whole profile (small
# operators jitter by large ratios and matter little) and by this share of its own time.
SHARE_OF_TOTAL = 0.05
SHARE_OF_ITSELF = 0.20
LAYER_DB = 3.0  # a layer's SQNR that moved by this much or more is named


@dataclass(frozen=True)
class OperatorTime:
    index: int | None  # the operator's index in the model, where the profile says it
    op: str
    microseconds: float  # per inference: a probe's p50, or benchmark_model's mean times the calls
    on: str  # where it ran: "builtin", "XNNPACK", ...


def operator_figures(profile: dict | None) -> list[OperatorTime]:
    """The per-operator times of either kind of profile (agent probes, or benchmark_model's table), one reader for
    compare, the run table and the report."""
    profile = profile or {}
    figures = [OperatorTime(p.get("index"), p["op"], p["p50_us"], p["on"]) for p in profile.get("probes") or []
               if p.get("p50_us") is not None]  # fmt: skip
    figures += [OperatorTime(r.get("index"), r["node_type"], r["avg_ms"] * 1000 * r["times_called"], r["on"])
                for r in profile.get("rows") or []]  # fmt: skip
    return figures


def operator_times(document: dict | None) -> dict[int, tuple[str, float, str]]:
    """index -> (operator, microseconds, where it ran), from the profile a round-1 document holds."""
    return {f.index: (f.op, f.microseconds, f.on) for f in operator_figures((document or {}).get("operators"))
            if f.index is not None}  # fmt: skip


def profile_changes(baseline: dict | None, candidate: dict | None) -> list[str]:
    """What changed between two round-1 documents of one variant; [] when either has no profile."""
    before, after = operator_times(baseline), operator_times(candidate)
    lines = []
    if before and after:
        total = max(sum(t for _, t, _ in before.values()), sum(t for _, t, _ in after.values()))
        for index in sorted(set(before) & set(after), key=lambda i: -abs(after[i][1] - before[i][1])):
            op, then, was = before[index]
            _, now, on = after[index]
            delta = now - then
            moved = abs(delta) >= SHARE_OF_TOTAL * total and abs(delta) >= SHARE_OF_ITSELF * max(then, 1e-9)
            if not moved and on == was:
                continue
            line = f"{op} #{index} {_signed_time(delta)}"
            if on != was:
                line += f": {_where(on)} now (was {was})"
            lines.append(line)
    lines += _layer_change(baseline, candidate)
    return lines


def _layer_change(baseline: dict | None, candidate: dict | None) -> list[str]:
    def layers(document):
        return {(layer["index"], layer["tensor"]): layer for layer in ((document or {}).get("layers") or {}).get(
            "layers") or []}  # fmt: skip

    before, after = layers(baseline), layers(candidate)
    for key, layer in after.items():
        old = before.get(key)
        if old is None or old["sqnr_db"] is None or layer["sqnr_db"] is None:
            continue
        if abs(layer["sqnr_db"] - old["sqnr_db"]) >= LAYER_DB:
            return [f"first layer whose error moved: {layer['op']} #{layer['index']} {old['sqnr_db']:.1f} → "
                    f"{layer['sqnr_db']:.1f} dB"]  # fmt: skip
    return []


def _where(on: str) -> str:
    return "builtin kernels" if on == "builtin" else on


def _signed_time(us: float) -> str:
    sign = "+" if us >= 0 else "-"
    us = abs(us)
    return f"{sign}{us / 1000:.2f} ms" if us >= 1000 else f"{sign}{us:.0f} µs"
