"""One self-contained HTML report: summary first, the variant tables, the plots, and how to reproduce it.

No network is needed to view it: styles are inline, plots are inline SVG (report/plots.py), and a
Content-Security-Policy forbids the page from loading anything at all. It reads on a phone
screen (the viewport is set; wide tables scroll sideways). Links to the raw JSON are relative
to where the report is written.
"""

from __future__ import annotations

import dataclasses
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgebench import __version__
from edgebench.compare.accelerator_matrix import matrix_cells
from edgebench.compare.run_summary import RunSummaryView
from edgebench.report import plot_data, plots
from edgebench.report.compare_table import compare_table
from edgebench.report.matrix_table import matrix_table, matrix_title
from edgebench.report.run_table import shown_run
from edgebench.report.table import DataTable
from edgebench.results.layout import is_run_folder, run_file, run_folder
from edgebench.results.record import RunRecord
from edgebench.results.store import RunData, load

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:12px;
color:#1b1b1b}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
h3{font-size:1.05em}.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:12.5px;margin:.4em 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}th{background:#f3f3f3}
td.l,th.l{text-align:left}.notes li{font-size:12.5px}.warn{background:#fff4d6;border-left:4px solid #e0a800;
padding:6px 10px;margin:6px 0}.bad{background:#fde2e1;border-left:4px solid #c0392b;padding:6px 10px}
.good{background:#e3f6e8;border-left:4px solid #2e8b57;padding:6px 10px}.grey{color:#777}
figure{margin:.6em 0}figure svg{max-width:100%;height:auto}code,pre{font-size:12px;background:#f6f6f6}
pre{padding:8px;overflow-x:auto}dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 12px}
dt{color:#555}dd{margin:0}dd,h1,h3,p,li,.warn,.bad,.good{overflow-wrap:anywhere}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@dataclass
class Report:
    title: str
    summary: list[str] = field(default_factory=list)  # HTML fragments, first on the page
    verdict: tuple[str, str] | None = None  # (css class, text)
    warnings: list[str] = field(default_factory=list)
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (id, heading, HTML)
    reproduce: list[str] = field(default_factory=list)

    def render(self) -> str:
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
            '<section id="summary"><h2>Summary</h2>',
            *self.summary,
        ]
        if self.verdict:
            parts.append(f'<div class="{self.verdict[0]}" id="verdict">{html.escape(self.verdict[1])}</div>')
        parts += [f'<div class="warn">{html.escape(w)}</div>' for w in self.warnings]
        parts.append("</section>")
        for section_id, heading, body in self.sections:
            parts.append(f'<section id="{section_id}"><h2>{html.escape(heading)}</h2>{body}</section>')
        parts.append('<section id="reproduce"><h2>Reproduce</h2>' + "".join(self.reproduce) + "</section>")
        parts.append(f'<p class="grey">edgebench {__version__}</p></body></html>')
        return "\n".join(parts)


def table_html(table: DataTable) -> str:
    """A DataTable (the terminal's) as HTML: the same header lines, columns, rows and notes."""
    head = "".join(f"<p class=grey>{html.escape(line)}</p>" for line in table.header)
    cells = "".join(
        f'<th class="{"l" if c.align == "left" else ""}">{html.escape(c.header)}</th>' for c in table.columns
    )
    rows = []
    for row in table.rows:
        rows.append(
            "<tr>"
            + "".join(
                f'<td class="{"l" if c.align == "left" else ""}">{html.escape(str(value))}</td>'
                for c, value in zip(table.columns, row, strict=True)
            )
            + "</tr>"
        )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
    return (
        f"<h3>{html.escape(table.title)}</h3>{head}<div class=scroll><table><thead><tr>{cells}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>" + (f"<ul class=notes>{notes}</ul>" if notes else "")
    )


def _figure(svg: str, caption: str, plot_id: str) -> str:
    caption = f'<figcaption class="grey">{html.escape(caption)}</figcaption>'
    return f'<figure class="plot" id="{plot_id}">{svg}{caption}</figure>'


def _link(path: Path, out: Path) -> str:
    relative = os.path.relpath(path, out.parent)
    return f'<a href="{html.escape(relative)}">{html.escape(relative)}</a>'


def _facts(items: Sequence[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items) + "</dl>"


@dataclass(frozen=True)
class _Shown:
    """One run as the report shows it: its record, its per-variant view and the terminal's table of it."""

    record: RunRecord
    view: RunSummaryView
    table: DataTable


def runs_report(folders: Sequence[Path], out: Path, comparison=None, baseline=None) -> Report:
    """One or more runs (several devices, or one device several times): tables, distributions, trade-off.
    With a comparison (and the baseline's data), the verdict table and the baseline's own figures beside."""
    runs = [load(folder) for folder in folders]  # read and validated once; the tables are built from these
    outcomes = [_Shown(run.record, *shown_run(run.record, list(run.measurements))) for run in runs]
    models = sorted({o.record.model_name for o in outcomes})
    devices = list(dict.fromkeys(o.view.device for o in outcomes))
    report = Report(f"edgebench report: {', '.join(models)} on {', '.join(devices)}")
    for outcome in outcomes:
        s, view = outcome.record, outcome.view
        report.summary.append(
            _facts(
                [
                    ("run", f"{s['run_id']} ({s['status']})"),
                    ("device", f"{view.device} ({s['device'].get('address') or 'this machine'})"),
                    ("model", s.model_name),
                    ("runtime", view.runtime or "—"),
                    ("Python / numpy", f"{view.python or '—'} / {view.numpy or '—'}"),
                    (
                        "settings",
                        ", ".join(f"{k}={v}" for k, v in s.settings.items() if v not in (None, [], ())),
                    ),
                    ("started", s.get("started_at", "—")),
                ]
            )
        )
        if view.emulated:
            report.warnings.append(f"{view.device} is EMULATED: its latencies are an emulator's (greyed in the plots)")
        if view.software_accelerator:
            report.warnings.append(f"{view.device} ran on a {view.speed_caveat} (greyed in the plots)")
        if view.sources:
            report.warnings.append(
                f"{view.device}: latency from {view.sources.get('latency')}; accuracy from "
                f"{view.sources.get('accuracy', 'the device')}"
            )
        report.warnings += [n for n in outcome.table.notes if n.startswith(("warning", "REGRESSION"))]
        report.warnings += [f"{v.name} failed: {v.error}" for v in view.variants if v.status == "failed"]
    if comparison is not None:
        regressions = [v.variant for v in comparison.regressions]
        report.verdict = (
            ("bad", f"REGRESSION against {comparison.run_a}: {', '.join(regressions)}")
            if regressions
            else ("good", f"no regression against {comparison.run_a} (threshold {comparison.threshold:.0%})")
        )
    matrices = _matrix_tables(outcomes)
    if matrices:
        report.sections.append(("matrix", "Variant × accelerator", matrices))
    tables = "".join(table_html(o.table) for o in outcomes)
    report.sections.append(("tables", "Variants", tables))
    if comparison is not None:
        against = table_html(compare_table(comparison))
        if baseline is not None:
            _, baseline_table = shown_run(baseline.record, list(baseline.measurements))
            against += table_html(dataclasses.replace(baseline_table, title=f"the baseline: {baseline_table.title}"))
        report.sections.append(("baseline", f"Against the baseline {comparison.run_a}", against))
    distributions = ""
    for run in runs:
        data = plot_data.latency_distributions(run)
        if data:
            distributions += _figure(
                plots.latency_plot(data),
                f"latency of {run.run_id} on {run.record.device_name}",
                f"latency-{run.run_id}",
            )
    report.sections.append(("latency", "Latency distributions", distributions or "<p>no successful measurement</p>"))
    points = plot_data.tradeoff_points([o.view for o in outcomes])
    if points:
        report.sections.append(
            (
                "tradeoff",
                "Trade-off: speed-up against size",
                _figure(
                    plots.tradeoff_plot(points),
                    "colour: top-1 change in pp; larger points: higher SQNR against float32 (largest: exact)",
                    "tradeoff-plot",
                ),
            )
        )
    shares, layers = (
        plot_data.operator_shares([o.view for o in outcomes]),
        plot_data.layer_series([o.view for o in outcomes]),
    )
    if shares or layers:
        why = _figure(plots.operator_plot(shares), "each variant's operators by type, and where its nodes ran",
                      "operators-plot") if shares else ""  # fmt: skip
        why += (
            _figure(plots.layers_plot(layers), "SQNR against float32 after each layer", "layers-plot") if layers else ""
        )
        report.sections.append(("profile", "Why: operators and layers", why))
    thermal = ""
    for run in runs:
        series = plot_data.thermal_series(run)
        if plot_data.has_readings(series):
            thermal += _figure(plots.thermal_plot(series), f"{run.run_id}", f"thermal-{run.run_id}")
    report.sections.append(
        (
            "thermal",
            "Temperature and frequency",
            thermal or "<p class=grey>the devices reported no temperature or frequency</p>",
        )
    )
    report.reproduce += _reproduce(outcomes, folders, out)
    return report


def _matrix_tables(outcomes) -> str:
    """The variant x accelerator table of each matrix whose runs are in the report (two or more of them)."""
    groups: dict[str, list] = {}
    for outcome in outcomes:
        if outcome.record.matrix:
            groups.setdefault(outcome.record.matrix["id"], []).append(outcome)
    shown = ""
    for runs in groups.values():
        if len(runs) < 2:
            continue
        runs.sort(key=lambda o: o.record.matrix["index"])
        cells = matrix_cells([(o.record.run_id, o.view) for o in runs])
        title = matrix_title(runs[0].record.model_name, runs[0].view.device, [o.view.accelerator for o in runs])
        shown += table_html(matrix_table(cells, title))
    return shown


def _reproduce(outcomes, folders, out: Path) -> list[str]:
    blocks = []
    for outcome, folder in zip(outcomes, folders, strict=True):
        s = outcome.record
        files = [(v["name"], f"{v['sha256']} ({v['bytes']:,} bytes)") for v in s.get("variants", [])]
        dataset = s.get("dataset") or {}
        blocks.append(
            f"<h3>{html.escape(s['run_id'])}</h3><pre>{html.escape(' '.join(s.get('command', [])))}</pre>"
            + _facts(
                [
                    ("edgebench", s.get("edgebench_version", "?")),
                    ("model sha256", s["model"].get("sha256", "?")),
                    ("dataset sha256", dataset.get("sha256", "—")),
                    *files,
                    ("device", str(s.get("device_probe", {}).get("description") or s["device"].get("description", ""))),
                ]
            )
            + "<p>raw JSON: "
            + _link(run_file(folder), out)
            + "</p>"
        )
    return blocks


def farm_report(farm_run: str | None, results_dir: Path, out: Path) -> Report:
    from edgebench.farm.summary import summarize_farm
    from edgebench.results.farm_run import FarmRunStore, resolve_farm_run

    store = FarmRunStore.open(results_dir, resolve_farm_run(farm_run, results_dir).name)
    summary = summarize_farm(store.document, results_dir)
    folders = [
        run_folder(results_dir, name, run["run_id"])
        for name, entry in store.document["devices"].items()
        for run in entry.get("runs", [])
        if is_run_folder(run_folder(results_dir, name, run["run_id"]))
    ]
    report = runs_report(folders, out) if folders else Report("edgebench farm report")
    report.title = f"edgebench farm report: {summary.farm_run}"
    report.summary.insert(
        0,
        _facts(
            [
                ("farm run", summary.farm_run),
                ("status", summary.status),
                ("baseline", f"{summary.policy}, threshold {summary.threshold:.0%}"),
                ("devices", ", ".join(f"{d.name}: {d.state}" for d in summary.devices)),
            ]
        ),
    )
    if summary.regressions:
        report.verdict = ("bad", "REGRESSION: " + "; ".join(f"{c.device} {c.variant}" for c in summary.regressions))
    elif summary.exit_code == 0:
        report.verdict = ("good", "no regression")
    else:
        report.verdict = ("warn", "cannot tell: " + "; ".join(summary.undecided or [summary.status]))
    cells = [c for d in summary.devices for c in d.cells]
    heatmaps = "".join(
        _figure(plots.heatmap_plot(h), h.title, f"heatmap-{i}") for i, h in enumerate(plot_data.farm_heatmaps(cells))
    )
    report.sections.insert(0, ("farm", "Devices × variants", heatmaps or "<p>no cells</p>"))
    return report


def history_report(items: Sequence[tuple[Path, RunData]], threshold: float, out: Path, title: str) -> Report:
    """Runs of one model over time (oldest first): p50 per variant with intervals, regressions, change points."""
    report = Report(title)
    runs = [run for _, run in items]
    variants = list(dict.fromkeys(v for run in runs for v in run.variants()))
    series = {v: plot_data.history_series(runs, v, threshold) for v in variants}
    series = {v: points for v, points in series.items() if points}
    baseline = {v: points[0].p50_us for v, points in series.items()}
    report.summary.append(
        _facts(
            [
                ("runs", f"{len(runs)}, {runs[0].record.started_at} → {runs[-1].record.started_at}"),
                ("devices", ", ".join(sorted({r.record.device_name for r in runs}))),
                ("models", ", ".join(sorted({r.record.model_name for r in runs}))),
                ("threshold", f"{threshold:.0%}"),
            ]
        )
    )
    flagged = [f"{v} in {p.run_id}" for v, points in series.items() for p in points if p.regression]
    report.verdict = (
        ("bad", "slower than the run before: " + ", ".join(flagged))
        if flagged
        else ("good", "no run slower than the one before it by more than the threshold")
    )
    if any(r.record.emulated for r in runs):
        report.warnings.append("some runs are on an EMULATED device: their latencies are an emulator's")
    report.sections.append(
        (
            "history",
            "p50 over time",
            _figure(plots.history_plot(series, baseline), "baseline: the first run shown", "history-plot"),
        )
    )
    folders = [folder for folder, _ in items]
    report.reproduce.append(
        "<ul>"
        + "".join(
            f"<li>{html.escape(r.run_id)}: {_link(run_file(f), out)}</li>" for r, f in zip(runs, folders, strict=True)
        )
        + "</ul>"
    )
    return report


def write(report: Report, out: Path) -> Path:
    """The report's one file; a folder that cannot take it is named in one line (EdgebenchError)."""
    from edgebench.core.errors import EdgebenchError
    from edgebench.core.fileio import atomic_write_bytes, unwritable, where_unwritable

    out = Path(out)
    try:
        atomic_write_bytes(out, report.render().encode())
    except OSError as error:
        if not unwritable(error):
            raise
        raise EdgebenchError(where_unwritable(error, f"the report {out}")) from None
    return out
