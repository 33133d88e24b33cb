"""`edgebench report`: the data behind each plot (pure), and real reports opened in headless Chromium."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from edgebench.farm.summary import Cell
from edgebench.report import plot_data
from edgebench.results.record import RunRecord
from edgebench.results.store import Measurement, RunData
from tests.browser import chromium_unavailable_reason, visit
from tests.helpers import MNIST_QUICK, assert_one_line_error, run_edgebench, run_main

QUICK = MNIST_QUICK
MAX_BYTES = 2_000_000
ARTIFACTS = Path(os.environ.get("EDGEBENCH_ARTIFACTS", "")) if os.environ.get("EDGEBENCH_ARTIFACTS") else None


# -- the data each plot is built from ---------------------------------------------------------------------


def document(samples=(), stats=None, before=None, after=None, started=0.0, mhz=None) -> dict:
    stats = stats or {
        "p50": sorted(samples)[len(samples) // 2],
        "p90": max(samples),
        "mean": sum(samples) / len(samples),
    }
    cpufreq = {"0": {"cur_mhz": mhz}} if mhz else {}
    return {"timing": {"samples_us": list(samples), "stats": stats}, "thermal": {"before_c": before, "after_c": after},
            "started_unix": started, "environment": {"cpufreq": cpufreq}}  # fmt: skip


def run_of(measurements, run_id="r1", emulated=False, started="2026-11-01T00:00:00Z") -> RunData:
    summary = {"run_id": run_id, "device": {"name": "d", "emulated": emulated}, "started_at": started}
    return RunData(RunRecord(summary), measurements)


def test_distributions_keep_every_sample_or_only_the_statistics_and_grey_an_emulator():
    run = run_of([
        Measurement("float32", 1, "ok", document([100, 110, 120])),
        Measurement("float32", 2, "ok", document([105, 115])),
        Measurement("int8", 1, "ok", document(stats={"p5": 40, "p50": 50, "p95": 70, "p90": None, "mean": 52})),
        Measurement("int4", 1, "failed", None, "unsupported"),
    ], emulated=True)  # fmt: skip
    float32, int8 = plot_data.latency_distributions(run)
    assert float32.samples_us == (100, 110, 120, 105, 115)  # both rounds
    assert int8.samples_us == () and int8.stats["p50"] == 50
    assert float32.greyed and "emulat" in float32.greyed
    x, y = float32.ecdf
    assert list(x) == [100, 105, 110, 115, 120] and y[-1] == 1.0
    assert not plot_data.log_scale([float32, int8])  # 110 / 50: within 10x
    slow = plot_data.Distribution("int16x8", (8000.0, 8100.0))
    assert plot_data.log_scale([int8, slow])


def test_the_median_interval_is_order_statistics_and_needs_enough_samples():
    assert plot_data.median_interval([1, 2, 3]) is None
    low, high = plot_data.median_interval(list(range(1, 101)))
    assert (low, high) == (41, 61)  # 50 -/+ 1.96 * 10 / 2, outward


def test_history_marks_the_run_that_got_slower_and_where_the_level_changed():
    runs = [run_of([Measurement("int8", 1, "ok", document([p] * 10))], f"r{i}") for i, p in
            enumerate([100, 101, 99, 100, 130, 131, 129])]  # fmt: skip
    points = plot_data.history_series(runs, "int8", 0.05)
    assert [p.regression for p in points] == [False, False, False, False, True, False, False]
    assert [i for i, p in enumerate(points) if p.change_point] == [4]
    assert points[0].low_us == 100 and points[0].high_us == 100
    assert plot_data.history_series(runs, "float16", 0.05) == []


def test_the_tradeoff_and_farm_heatmaps_come_from_the_same_figures_as_the_tables():
    cells = [
        Cell("pi4", "mnist", "float32", "ok", speedup=1.0, fidelity_exact=True),
        Cell("pi4", "mnist", "int8", "ok", speedup=2.5, sqnr_db=16.8),
        Cell("pixel7", "mnist", "int8", "failed", error="gone"),
    ]
    speed, fidelity = plot_data.farm_heatmaps(cells)
    assert speed.rows == ("pi4", "pixel7") and speed.columns == ("float32", "int8")
    assert speed.values == ((1.0, 2.5), (None, None))
    assert fidelity.values[0][0] == math.inf and fidelity.values[0][1] == 16.8


def test_temperature_and_frequency_in_the_order_the_measurements_ran():
    run = run_of([
        Measurement("int8", 1, "ok", document([1, 2], before=40, after=44, started=20, mhz=1500)),
        Measurement("float32", 1, "ok", document([1, 2], before=38, after=41, started=10, mhz=1800)),
    ])  # fmt: skip
    series = plot_data.thermal_series(run)
    assert [(p.variant, p.before_c, p.cur_mhz) for p in series] == [("float32", 38, 1800), ("int8", 40, 1500)]
    assert plot_data.has_readings(series)
    assert not plot_data.has_readings(plot_data.thermal_series(run_of([Measurement("a", 1, "ok", document([1]))])))


# -- real reports in a real browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    reason = chromium_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return visit


@pytest.fixture(scope="module")
def local_history(tmp_path_factory, variant_cache):
    """Five real local runs of three variants (int16x8 is 10x slower: a log scale) in one results folder."""
    results = tmp_path_factory.mktemp("report-results")
    for _ in range(5):
        done = run_edgebench("run", "--device", "local", *QUICK, "--variants", "float32,int8,int16x8",
                             "--results-dir", str(results), "--cache-dir", str(variant_cache))  # fmt: skip
        assert done.returncode == 0, done.stderr
    return results


def thermal_plots(folders) -> int:
    """A temperature plot per run that recorded any temperature or frequency (this VM may record none)."""
    from edgebench.results.store import load

    return sum(plot_data.has_readings(plot_data.thermal_series(load(folder))) for folder in folders)


def check_page(browser, page: Path, sections: list[str], plots: int, tmp_path: Path):
    assert page.stat().st_size < MAX_BYTES
    shot = tmp_path / f"{page.stem}.png"
    seen = browser(page, shot)
    assert seen.requests == [], f"the report made network requests: {seen.requests}"
    assert not __import__("re").search(r'(src|href)="(https?:)?//', page.read_text()), "an external URL"
    assert seen.console == [], f"console messages: {seen.console}"
    for section in sections:
        assert f'<section id="{section}">' in seen.dom, f"section {section} missing"
    assert seen.dom.count('<figure class="plot"') == plots
    laid_out = {s["id"]: s for s in seen.layout["sections"]}
    for section in sections:  # drawn, with a size, at a desktop and at a phone width
        assert laid_out[section]["width"] > 300 and laid_out[section]["height"] > 20, laid_out[section]
    assert len(seen.layout["plots"]) == plots
    assert all(p["width"] > 200 and p["height"] > 100 for p in seen.layout["plots"]), seen.layout["plots"]
    phone = seen.phone_layout
    assert phone["scrollWidth"] <= phone["clientWidth"] + 1, "the page scrolls sideways on a phone"
    assert all(0 < p["width"] <= phone["clientWidth"] for p in phone["plots"]), phone["plots"]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] > 900 and pixels.reshape(-1, pixels.shape[-1]).std(axis=0).max() > 0.05  # not blank
    if ARTIFACTS:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, ARTIFACTS / shot.name)
    return seen


def test_a_report_of_a_real_local_run(browser, local_history, tmp_path):
    folder = sorted(p for p in (local_history / "local").iterdir() if p.is_dir())[-1]
    page = tmp_path / "run-report.html"
    done = run_edgebench("report", str(folder), "--baseline", "last", "--results-dir", str(local_history),
                         "-o", str(page))  # fmt: skip
    assert done.returncode == 0, done.stderr
    sections = ["summary", "tables", "baseline", "latency", "tradeoff", "thermal", "reproduce"]
    seen = check_page(browser, page, sections, 2 + thermal_plots([folder]), tmp_path)  # fmt: skip
    assert 'id="verdict"' in seen.dom and "ai_edge_litert" in seen.dom
    # The comparison itself and the baseline's own figures, not only a line saying how it went.
    baseline = sorted(p for p in (local_history / "local").iterdir() if p.is_dir())[-2].name
    assert f"Against the baseline {baseline}" in seen.dom and "B/A p50" in seen.dom
    assert f"the baseline: mnist on local — run {baseline}" in seen.dom
    assert "run.json" in seen.dom and json.loads((folder / "run.json").read_text())["run_id"] in seen.dom


def test_a_report_of_the_history_of_five_runs(browser, local_history, tmp_path):
    page = tmp_path / "history-report.html"
    done = run_edgebench("report", "--history", "--model", "mnist", "--results-dir", str(local_history),
                         "-o", str(page))  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = check_page(browser, page, ["summary", "history", "reproduce"], 1, tmp_path)
    assert seen.dom.count("run.json</a>") == 5


def test_a_report_of_a_single_variant_run(browser, tmp_path, variant_cache):
    results = tmp_path / "results"
    done = run_edgebench("run", "--device", "local", *QUICK, "--variants", "int8", "--results-dir", str(results),
                         "--cache-dir", str(variant_cache), "--report", str(tmp_path / "single.html"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    (folder,) = (results / "local").iterdir()
    sections = ["summary", "tables", "latency", "thermal", "reproduce"]
    check_page(browser, tmp_path / "single.html", sections, 1 + thermal_plots([folder]), tmp_path)


def test_a_report_of_a_farm_run(browser, ssh_host, tmp_path, variant_cache):
    board = ssh_host.device_file(tmp_path / "board.toml", workdir=str(tmp_path / "board-workdir"))
    farm = tmp_path / "farm.toml"
    farm.write_text(
        f'devices = ["local", "{board}"]\n[[models]]\nmodel = "mnist"\nvariants = ["float32", "int8"]\n'
        "[run]\nsamples = 100\nmin_runs = 20\nmin_seconds = 0.2\nwarmup_seconds = 0.1\nrounds = 1\n"
    )
    page = tmp_path / "farm-report.html"
    done = run_edgebench("farm", "run", str(farm), "--results-dir", str(tmp_path / "results"), "--cache-dir",
                         str(variant_cache), "--report", str(page))  # fmt: skip
    assert done.returncode in (0, 2), done.stderr
    folders = [p for p in (tmp_path / "results").glob("*/*") if (p / "run.json").is_file()]
    sections = ["summary", "farm", "tables", "latency", "tradeoff", "reproduce"]
    seen = check_page(browser, page, sections, 2 + len(folders) + 1 + thermal_plots(folders), tmp_path)
    assert "speed-up against float32" in seen.dom and "board: done" in seen.dom


def test_report_refuses_what_it_cannot_write(tmp_path, capfd):
    done = run_main(capfd, "report", "--results-dir", str(tmp_path), "-o", str(tmp_path / "r.txt"))
    assert_one_line_error(done, "the report is an .html file")
    empty = run_main(capfd, "report", "--history", "--results-dir", str(tmp_path), "-o", str(tmp_path / "r.html"))
    assert empty.returncode == 2 and "Traceback" not in empty.stderr


def test_plot_labels_stay_readable():
    """Heatmap figures in dark text on the colour map's light end; trade-off labels of points at one spot
    stacked, not drawn over each other; a history of one day's runs labelled by time, not one date repeated."""
    import re

    from edgebench.report import plots
    from edgebench.report.plot_data import Heatmap, HistoryPoint, TradeoffPoint

    svg = plots.heatmap_plot(Heatmap("speed-up", ("pi4", "pi5"), ("int8", "float16"), ((1.0, 2.0), (3.0, None)), "x"))
    fills = {m[2]: re.search(r"fill: (#\w+)", m[1]) for m in re.finditer(r'<text[^>]*style="([^"]*)"[^>]*>(\d\.00x)<',
                                                                          svg)}  # fmt: skip
    assert fills["1.00x"] and fills["1.00x"][1] == "#ffffff"  # the dark end: white
    assert fills["3.00x"] is None or fills["3.00x"][1] == "#000000"  # the yellow end: black (the default fill)
    near = [TradeoffPoint("local", name, 3.96 + i * 0.01, 1.02, 0.0, 20.0) for i, name in enumerate(("a", "b", "c"))]
    assert plots._label_lifts(near) == [0, 9, 18]
    assert plots._label_lifts([*near[:1], TradeoffPoint("local", "far", 7.9, 0.5, 0.0, 30.0)]) == [0, 0]
    runs = [HistoryPoint(f"r{i}", f"2026-12-03T05:{10 + i}:00Z", 500.0 + i, None, None) for i in range(5)]
    svg = plots.history_plot({"int8": runs})
    assert all(f"12-03 05:{10 + i}" in svg for i in range(5))
