"""The report's plots: plot_data's numbers drawn with matplotlib, each returned as an inline SVG string.

The edge of the report: nothing here decides what to show (plot_data does). Text stays text
(svg.fonttype none), so the files stay small and the labels searchable; no network, no fonts
fetched. Matplotlib is imported only here, with the Agg backend.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from edgebench.report.plot_data import (
    Distribution,
    Heatmap,
    HistoryPoint,
    OperatorShares,
    ThermalPoint,
    TradeoffPoint,
    log_scale,
)

plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
GREY = "#9a9a9a"


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: no XML prolog or DOCTYPE


def latency_plot(distributions: Sequence[Distribution]) -> str:
    """Box plot per variant (or the statistics a backend gave) beside the ECDF of every sample."""
    figure, (box, ecdf) = plt.subplots(1, 2, figsize=(9, 0.5 * len(distributions) + 2.2))
    names = [d.variant for d in distributions]
    logarithmic = log_scale(distributions)
    for row, d in enumerate(distributions):
        colour = GREY if d.greyed else f"C{row % 10}"
        if d.samples_us:
            values = np.asarray(d.samples_us) / 1000
            box.boxplot(values, positions=[row], orientation="horizontal", widths=0.6, showfliers=False,
                        patch_artist=True, boxprops={"facecolor": colour, "alpha": 0.45})  # fmt: skip
            x, y = d.ecdf
            ecdf.step(x / 1000, y, where="post", color=colour, label=d.variant)
        else:  # p5-p95 bar with the median: all a statistics-only backend gives
            low, mid, high = (d.stats.get(k) for k in ("p5", "p50", "p95"))
            if mid is not None:
                box.plot([(low or mid) / 1000, (high or mid) / 1000], [row, row], color=colour, linewidth=6, alpha=0.45)
                box.plot([mid / 1000], [row], "|", color="black", markersize=14)
    box.set_yticks(range(len(names)), names)
    box.set_xlabel("latency per inference, ms" + (" (log)" if logarithmic else ""))
    box.set_title("distribution (box: quartiles, whiskers 1.5 IQR; bar: p5–p95)")
    ecdf.set_xlabel("latency per inference, ms" + (" (log)" if logarithmic else ""))
    ecdf.set_ylabel("share of inferences at or below")
    ecdf.set_title("ECDF of every sample")
    if logarithmic:
        for axis in (box, ecdf):
            axis.set_xscale("log")
            axis.xaxis.set_major_formatter(ticker.ScalarFormatter())
            axis.xaxis.set_minor_formatter(ticker.NullFormatter())
    if any(d.samples_us for d in distributions):
        ecdf.legend(fontsize=7, loc="lower right")
    else:
        ecdf.text(0.5, 0.5, "no per-sample latencies\n(benchmark_model gives statistics only)",
                  ha="center", va="center", transform=ecdf.transAxes, color=GREY)  # fmt: skip
    if any(d.greyed for d in distributions):
        figure.suptitle(distributions[0].greyed, color=GREY)
    return _svg(figure)


def tradeoff_plot(points: Sequence[TradeoffPoint]) -> str:
    """Speed-up against size reduction, one panel per device; colour: accuracy change in pp, size: SQNR."""
    devices = list(dict.fromkeys(p.device for p in points))
    figure, axes = plt.subplots(1, len(devices), figsize=(4.2 * len(devices), 3.6), squeeze=False)
    deltas = [p.accuracy_delta_pp for p in points if p.accuracy_delta_pp is not None]
    spread = max([abs(d) for d in deltas] + [0.5])
    scatter = None
    for axis, device in zip(axes[0], devices, strict=True):
        mine = [p for p in points if p.device == device]
        colours = [p.accuracy_delta_pp if p.accuracy_delta_pp is not None else 0.0 for p in mine]
        sizes = [30 + 4 * min(p.sqnr_db, 60) if p.sqnr_db is not None else 280 for p in mine]
        scatter = axis.scatter([p.size_ratio for p in mine], [p.speedup for p in mine], c=colours, s=sizes,
                               cmap="RdYlGn", vmin=-spread, vmax=spread, edgecolors="black", linewidths=0.5,
                               alpha=0.5 if any(p.greyed for p in mine) else 0.9)  # fmt: skip
        for p, lift in zip(mine, _label_lifts(mine), strict=True):
            axis.annotate(p.variant, (p.size_ratio, p.speedup), fontsize=7, xytext=(6, 4 + lift),
                          textcoords="offset points", arrowprops={"arrowstyle": "-", "color": GREY, "lw": 0.5}
                          if lift else None)  # fmt: skip
        axis.axhline(1.0, color=GREY, linewidth=0.8, linestyle="--")
        axis.set_xlabel("smaller than float32 by (×)")
        axis.set_ylabel("speed-up against float32 (×)")
        axis.set_title(device + (" (emulated)" if any(p.greyed for p in mine) else ""))
    if scatter is not None:
        figure.colorbar(scatter, ax=list(axes[0]), label="top-1 change, pp (green better)", shrink=0.8)
    return _svg(figure)


def _label_lifts(points: Sequence[TradeoffPoint]) -> list[int]:
    """Points this close (int8, qat-int8 and int16x8 all near 3.96x smaller, 1x speed) share a spot: their
    labels are stacked 9 points apart instead of drawn over each other."""
    lifts, placed = [], []
    for p in points:
        near = [q for q in placed if abs(q.size_ratio / p.size_ratio - 1) < 0.12
                and abs(q.speedup / p.speedup - 1) < 0.12]  # fmt: skip
        lifts.append(9 * len(near))
        placed.append(p)
    return lifts


def heatmap_plot(heatmap: Heatmap) -> str:
    values = np.array([[np.nan if v is None else v for v in row] for row in heatmap.values], dtype=float)
    finite = values[np.isfinite(values)]
    shown = np.where(np.isinf(values), finite.max() if finite.size else 0, values)
    figure, axis = plt.subplots(figsize=(1.1 * len(heatmap.columns) + 2.5, 0.5 * len(heatmap.rows) + 1.6))
    image = axis.imshow(np.ma.masked_invalid(shown), cmap="viridis", aspect="auto")
    axis.set_xticks(range(len(heatmap.columns)), heatmap.columns, rotation=30, ha="right")
    axis.set_yticks(range(len(heatmap.rows)), heatmap.rows)
    for (row, column), value in np.ndenumerate(values):
        label = "—" if np.isnan(value) else ("exact" if np.isinf(value) else f"{value:.2f}{heatmap.unit}")
        # Dark text on the light end of the colour map, light text on the dark end: readable on every cell.
        red, green, blue, _ = image.cmap(image.norm(shown[row, column])) if not np.isnan(value) else (0, 0, 0, 0)
        light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
        axis.text(column, row, label, ha="center", va="center", fontsize=8, color="black" if light else "white",
                  fontweight="bold")  # fmt: skip
    axis.set_title(heatmap.title)
    figure.colorbar(image, ax=axis, label=heatmap.unit)
    return _svg(figure)


def history_plot(series: dict[str, list[HistoryPoint]], baseline: dict[str, float] | None = None) -> str:
    """p50 over runs per variant with its 95% interval; regressions (red) and change points (triangles)."""
    figure, axis = plt.subplots(figsize=(9, 3.8))
    for index, (variant, points) in enumerate(series.items()):
        colour = f"C{index % 10}"
        x = np.arange(len(points))
        y = np.array([p.p50_us for p in points]) / 1000
        axis.plot(x, y, marker="o", markersize=3, color=colour, label=variant)
        low = [p.low_us / 1000 if p.low_us is not None else v for p, v in zip(points, y, strict=True)]
        high = [p.high_us / 1000 if p.high_us is not None else v for p, v in zip(points, y, strict=True)]
        axis.fill_between(x, low, high, color=colour, alpha=0.2)
        regressions = [i for i, p in enumerate(points) if p.regression]
        axis.scatter(regressions, y[regressions], s=60, facecolors="none", edgecolors="red", zorder=3)
        changes = [i for i, p in enumerate(points) if p.change_point]
        axis.scatter(changes, y[changes], marker="v", s=50, color="black", zorder=3)
        if baseline and variant in baseline:
            axis.axhline(baseline[variant] / 1000, color=colour, linestyle=":", linewidth=1)
    longest = max(series.values(), key=len, default=[])
    # Runs of one day are told apart by their time; at most about twelve labels, evenly spaced.
    step = max(1, math.ceil(len(longest) / 12))
    ticks = list(range(0, len(longest), step))
    axis.set_xticks(ticks, [_when(longest[i].started_at) for i in ticks], rotation=30, ha="right", fontsize=7)
    axis.set_ylabel("p50 latency, ms (band: 95% interval of the median)")
    axis.set_title("p50 per run · red ring: slower than the run before · ▼ change point · dotted: baseline")
    axis.legend(fontsize=7, ncol=min(4, max(1, len(series))))
    return _svg(figure)


def _when(started_at: str) -> str:
    """'2026-12-03T05:18:31Z' -> '12-03 05:18'."""
    return f"{started_at[5:10]} {started_at[11:16]}" if len(started_at) >= 16 else started_at


def thermal_plot(points: Sequence[ThermalPoint]) -> str:
    figure, axis = plt.subplots(figsize=(9, 3.2))
    x = np.arange(len(points))
    labels = [f"{p.variant} r{p.round}" for p in points]
    before = [p.before_c if p.before_c is not None else math.nan for p in points]
    after = [p.after_c if p.after_c is not None else math.nan for p in points]
    axis.plot(x, before, marker="o", label="°C before", color="C3")
    axis.plot(x, after, marker="s", label="°C after", color="C1")
    axis.set_ylabel("°C")
    axis.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
    if any(p.cur_mhz for p in points):
        frequency = axis.twinx()
        frequency.plot(x, [p.cur_mhz or math.nan for p in points], marker="^", color="C0", label="MHz")
        frequency.set_ylabel("CPU MHz (mean of the measured CPUs)")
    axis.legend(fontsize=7, loc="upper left")
    axis.set_title("temperature and frequency per measurement, in the order they ran")
    return _svg(figure)


def operator_plot(shares: Sequence[OperatorShares]) -> str:
    """A stacked bar per variant: its operators' time by type (each alone, or inside the model), with where its
    nodes ran beside it."""
    types = list(dict.fromkeys(t for s in shares for t in sorted(s.microseconds, key=lambda k: -s.microseconds[k])))
    figure, axis = plt.subplots(figsize=(9, 0.55 * len(shares) + 1.8))
    left = np.zeros(len(shares))
    for index, kind in enumerate(types):
        values = np.array([s.microseconds.get(kind, 0.0) for s in shares]) / 1000
        axis.barh(range(len(shares)), values, left=left, color=f"C{index % 10}", label=kind)
        left += values
    axis.set_yticks(range(len(shares)), [f"{s.label}\n{s.placement}" for s in shares], fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel("time per inference by operator type, ms")
    axis.set_title("where the time goes (--profile)")
    axis.legend(fontsize=7, loc="lower right", ncol=min(3, max(1, len(types))))
    return _svg(figure)


def layers_plot(series: dict[str, list[tuple[str, float | None]]]) -> str:
    """SQNR against float32 after each layer, one line per variant: where the precision goes."""
    figure, axis = plt.subplots(figsize=(9, 3.6))
    longest: list[tuple[str, float | None]] = []
    for index, (label, points) in enumerate(series.items()):
        values = [math.nan if db is None else db for _, db in points]
        axis.plot(range(len(points)), values, marker="o", markersize=3, color=f"C{index % 10}", label=label)
        longest = points if len(points) > len(longest) else longest
    axis.axhline(20, color=GREY, linewidth=0.8, linestyle="--")
    step = max(1, math.ceil(len(longest) / 16))
    ticks = list(range(0, len(longest), step))
    axis.set_xticks(ticks, [longest[i][0] for i in ticks], rotation=30, ha="right", fontsize=7)
    axis.set_ylabel("SQNR against float32, dB")
    axis.set_title("error after each layer (--profile; dashed: 20 dB)")
    axis.legend(fontsize=7)
    return _svg(figure)
