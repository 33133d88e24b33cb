"""The `edgebench` command: argument parsing and printing, one function per subcommand.

This is the only module that prints. Errors a user can cause arrive as
EdgebenchError and leave as one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

from edgebench import __version__
from edgebench.cli.interrupt import Terminated, interrupted_exit_code, terminate
from edgebench.cli.labs import add_lab_commands
from edgebench.cli.options import (
    cache_dir_option,
    devices_dir_option,
    format_option,
    given_settings,
    results_dir_option,
    results_folder,
    setting_flags,
    trust_option,
)
from edgebench.cli.render import emit, emit_farm, plain_console
from edgebench.core.errors import EdgebenchError
from edgebench.core.fileio import unwritable, where_unwritable
from edgebench.core.quiet import real_stderr
from edgebench.core.settings import CONFIRM_PAIRS

EXIT_OK = 0
EXIT_PARTIAL = 1  # the command ran, but some variant failed


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = argv
    stderr = plain_console(file=real_stderr())
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, terminate)
    try:
        return args.handler(args)
    except EdgebenchError as error:
        stderr.print(f"edgebench: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return error.exit_code
    except KeyboardInterrupt as interruption:
        stderr.print("edgebench: interrupted", markup=False, highlight=False)
        return interrupted_exit_code(interruption)
    except OSError as error:
        # A read-only or full place that no command's own handling named: still one line and exit 2. Every
        # measurement is written as it arrives, so nothing measured is lost by stopping here.
        if not unwritable(error):
            raise
        stderr.print(f"edgebench: error: {where_unwritable(error, 'a file')}", markup=False, highlight=False,
                     soft_wrap=True)  # fmt: skip
        return EdgebenchError.exit_code


def _parser() -> argparse.ArgumentParser:
    from edgebench.zoo import zoo_names

    parser = argparse.ArgumentParser(
        prog="edgebench", description="What quantization really buys you on edge hardware."
    )
    parser.add_argument("--version", action="version", version=f"edgebench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    quantize = commands.add_parser("quantize", help="make the quantized variants of a float .tflite")
    quantize.add_argument("model", help=f"a zoo name ({', '.join(zoo_names())}) or a float .tflite file")
    quantize.add_argument("--variants", help="comma-separated subset (default: every variant this model allows)")
    quantize.add_argument(
        "--calibration", type=Path, help=".npz with an 'x' array, for the static int8/int16x8 recipes"
    )
    quantize.add_argument("-o", "--output", type=Path, help="also copy the variant files into this folder")
    quantize.add_argument("--evaluate", action="store_true", help="add top-1 on the evaluation set (on this host)")
    quantize.add_argument("--dataset", type=Path, help=".npz with 'x' and 'y' for --evaluate (zoo models ship one)")
    quantize.add_argument("--samples", type=int, help="evaluate on the first N samples only")
    cache_dir_option(quantize)
    format_option(quantize)
    quantize.set_defaults(handler=cmd_quantize)

    run = commands.add_parser("run", help="measure every variant on a device and compare it with float32")
    run.add_argument("--device", required=True, help="a device name from devices/ or a path to a .toml file")
    run.add_argument("--model", required=True, help=f"a zoo name ({', '.join(zoo_names())}) or a float .tflite file")
    run.add_argument("--dataset", type=Path, help=".npz with 'x' and 'y' for accuracy (zoo models ship one)")
    run.add_argument("--calibration", type=Path, help=".npz for the static int8/int16x8 recipes")
    run.add_argument("--variants", help="comma-separated subset (default: every variant this model allows)")
    setting_flags(run)  # --samples, --rounds, --threads, ... from the settings table
    results_dir_option(run)
    devices_dir_option(run)
    cache_dir_option(run)
    trust_option(run)
    output = run.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the run as JSON instead of a table")
    run.add_argument("--wide", action="store_true", help="every column, whatever the terminal's width (markdown and "
                     "JSON always have them all)")  # fmt: skip
    run.add_argument("--columns", help="these columns only, e.g. variant,p50,speed-up,top-1 (95%% CI)")
    run.add_argument("--report", type=Path, metavar="HTML", help="also write the HTML report of this run")
    format_option(output, ("table", "markdown"))
    run.set_defaults(handler=cmd_run)

    history = commands.add_parser("history", help="runs over time, from the SQLite index ('rebuild' re-creates it)")
    history.add_argument("action", nargs="?", choices=("rebuild",), help="re-create the index from the run folders")
    history.add_argument("--device")
    history.add_argument("--model")
    history.add_argument("--variant")
    history.add_argument("--last", type=int, help="only the newest N runs")
    history.add_argument("--threshold", default="5%", help="trend marker threshold (5%%)")
    _results_options(history)
    format_option(history)
    history.set_defaults(handler=cmd_history)

    compare = commands.add_parser("compare", help="verdicts per variant: is B slower, fatter or less accurate than A?")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="RUN_A RUN_B, or RUN_B with --baseline (folder or id)")
    compare.add_argument(
        "--baseline",
        help="what to compare against: last (the previous comparable run), last:N (the N previous as "
        "one), best (the fastest), or a run id or folder; then give only RUN",
    )
    _comparison_options(compare)
    compare.set_defaults(handler=cmd_compare)

    check = commands.add_parser(
        "check", help="the compare verdict as an exit code: 0 fine, 1 regression, 2 cannot tell (or bad input)"
    )
    check.add_argument("run", nargs="?", help="the candidate run (default: the newest under the results folder)")
    check.add_argument(
        "--baseline", required=True, help="what to compare against: last (the previous comparable run), last:N (the "
        "N previous as one), best (the fastest), or a run id or folder"
    )  # fmt: skip
    check.add_argument(
        "--confirm",
        action="store_true",
        help="re-measure a slower variant on its device before exit 1: both files interleaved",
    )
    check.add_argument(
        "--confirm-pairs",
        type=int,
        default=CONFIRM_PAIRS,
        metavar="N",
        help=f"A B pairs of fresh processes a confirmation measures ({CONFIRM_PAIRS})",
    )
    devices_dir_option(check)
    cache_dir_option(check)
    trust_option(check)
    _comparison_options(check)
    check.set_defaults(handler=cmd_check)

    report = commands.add_parser("report", help="one self-contained HTML report: runs, a farm run or the history")
    report.add_argument("runs", nargs="*", help="run folders or ids (default with no --farm-run/--history: the newest)")
    report.add_argument("--farm-run", nargs="?", const="", metavar="ID", help="a farm run (no ID: the newest)")
    report.add_argument("--history", action="store_true", help="p50 over time from the history index")
    report.add_argument("--device", help="with --history: this device only")
    report.add_argument("--model", help="with --history: this model only")
    report.add_argument("--last", type=int, default=30, help="with --history: the newest N runs (30)")
    report.add_argument("--baseline", help="with runs: compare the (last) run against this run or policy (last, best)")
    report.add_argument("--threshold", default="5%", help="verdict and trend threshold (5%%)")
    report.add_argument("-o", "--output", type=Path, required=True, help="the .html file to write")
    _results_options(report)
    report.set_defaults(handler=cmd_report)

    zoo = commands.add_parser("zoo", help="the models that ship with edgebench, by the name --model takes")
    format_option(zoo)
    zoo.set_defaults(handler=cmd_zoo)

    farm = commands.add_parser("farm", help="many devices at once from a farm file, with one answer")
    farm_commands = farm.add_subparsers(dest="farm_command", required=True, metavar="SUBCOMMAND")
    farm_run = farm_commands.add_parser("run", help="measure every device of a farm file in parallel")
    farm_run.add_argument("farm", type=Path, help="a farm file (farms/nightly.toml)")
    farm_run.add_argument("--resume", metavar="FARM_RUN", help="measure only what this interrupted farm run is missing")
    results_dir_option(farm_run)
    devices_dir_option(farm_run)
    cache_dir_option(farm_run)
    trust_option(farm_run)
    farm_run.add_argument("--report", type=Path, metavar="HTML", help="also write the HTML report of this farm run")
    farm_run.add_argument(
        "--no-confirm",
        dest="confirm",
        action="store_false",
        default=None,
        help="answer from the night's runs alone: no A/B re-measurement of a slower verdict",
    )
    farm_output = farm_run.add_mutually_exclusive_group()
    farm_output.add_argument("--json", action="store_true", help="print the farm summary as JSON")
    format_option(farm_output, ("table", "markdown"))
    farm_run.set_defaults(handler=cmd_farm_run)
    farm_check = farm_commands.add_parser(
        "check", help="the farm's verdict as an exit code: 0 fine, 1 regression, 2 cannot tell"
    )
    farm_check.add_argument("farm_run", nargs="?", help="a farm run id or folder (default: the newest)")
    farm_check.add_argument(
        "--baseline", help="override the farm file's policy: last, last:N, best (the fastest) or a run id"
    )
    farm_check.add_argument("--threshold", help="override the farm file's threshold")
    results_dir_option(farm_check)
    format_option(farm_check)
    farm_check.set_defaults(handler=cmd_farm_check)
    add_lab_commands(commands, farm_commands)

    devices = commands.add_parser("devices", help="the device inventory")
    devices_commands = devices.add_subparsers(dest="devices_command", required=True, metavar="SUBCOMMAND")
    listing = devices_commands.add_parser("list", help="every device file, and which are quarantined")
    devices_dir_option(listing)
    results_dir_option(listing, help="where quarantines are recorded")
    listing.set_defaults(handler=cmd_devices_list)
    release = devices_commands.add_parser("release", help="take a device out of quarantine")
    release.add_argument("name", help="device name")
    results_dir_option(release)
    release.set_defaults(handler=cmd_devices_release)
    check = devices_commands.add_parser("check", help="can this device run the agent? (table; exit 1 if not)")
    check.add_argument("name", help="device name or .toml path")
    devices_dir_option(check)
    trust_option(check)
    check.set_defaults(handler=cmd_devices_check)
    trust = devices_commands.add_parser("trust", help="record an SSH device's host key (trust on first use)")
    trust.add_argument("name", help="device name or .toml path")
    devices_dir_option(trust)
    trust.set_defaults(handler=cmd_devices_trust)
    setup = devices_commands.add_parser("setup", help="make a virtual environment with numpy and a TFLite runtime")
    setup.add_argument("name", help="device name or .toml path")
    setup.add_argument("--offline", action="store_true", help="download wheels on this host and push them")
    setup.add_argument("--base-python", default="python3", help="the device's Python to build the venv from")
    devices_dir_option(setup)
    trust_option(setup)
    setup.add_argument(
        "--benchmark-binary",
        type=Path,
        help="a benchmark_model binary to push to a phone (adb or backend = benchmark_model)",
    )
    setup.set_defaults(handler=cmd_devices_setup)
    return parser


def cmd_zoo(args: argparse.Namespace) -> int:
    from edgebench.report.table import Column, DataTable
    from edgebench.zoo import zoo_entries

    entries = zoo_entries()
    columns = (Column("name", "left"), Column("model", "left"), Column("input", "left"), Column("test samples"),
               Column("float32 top-1"))  # fmt: skip
    rows = tuple((e.name, e.description, e.input.split(":")[0], f"{e.test_samples:,}", _fmt_top1(e.float32_top1))
                 for e in entries)  # fmt: skip
    notes = ("edgebench run --device local --model NAME measures every variant of one on this machine",)
    document = {"models": [dataclasses.asdict(e) for e in entries]}
    emit(args.format, DataTable("Zoo models", columns, rows, notes), document)
    return EXIT_OK


def _fmt_top1(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def cmd_quantize(args: argparse.Namespace) -> int:
    from edgebench.accuracy.evaluate import evaluate_file
    from edgebench.model.dataset import load_dataset
    from edgebench.quantize.variants import Variant, build_variants, export_variants, parse_variant_names
    from edgebench.report.variants_table import variants_table
    from edgebench.zoo import resolve_model

    names = parse_variant_names(args.variants)
    if args.samples is not None and args.samples < 1:
        raise EdgebenchError("--samples must be at least 1")
    source = resolve_model(args.model, dataset=args.dataset, calibration=args.calibration)
    dataset = None
    if args.evaluate:
        if source.dataset_path is None:
            raise EdgebenchError("--evaluate needs an evaluation set: pass --dataset data.npz")
        dataset = load_dataset(source.dataset_path)

    status = plain_console(file=real_stderr(), soft_wrap=True)
    from edgebench.accuracy.evaluate import host_runner
    from edgebench.model.tflite_model import inspect_model

    original = inspect_model(source.model_path)  # not a TFLite model at all: an error, not a warning
    try:
        runner = host_runner(source.model_path)
    except EdgebenchError as error:  # quantizing may still serve a runtime that has the operator
        status.print(f"edgebench: warning: {error}")
    else:
        from edgebench.run.pipeline import check_calibration

        check_calibration(source, runner)
    with status.status("quantizing") as spinner:
        results = build_variants(
            source, names, cache_dir=args.cache_dir, on_variant=lambda name: spinner.update(f"quantizing: {name}"),
            original=original,
        )  # fmt: skip
        built = [r for r in results if isinstance(r, Variant)]
        accuracies = None
        if dataset is not None:
            accuracies = {}
            for variant in built:
                spinner.update(f"evaluating: {variant.name}")
                accuracies[variant.name] = evaluate_file(variant.path, dataset, args.samples)
    if args.output:
        export_variants(built, args.output, source.name)

    table = variants_table(source.name, results, accuracies)
    emit(args.format, table, _quantize_document(source, results, accuracies))
    return EXIT_OK  # a variant this model does not allow is skipped, not failed


def cmd_run(args: argparse.Namespace) -> int:
    from edgebench.run.pipeline import RunRequest, prepare_matrix

    request = RunRequest(
        device=args.device,
        model=args.model,
        dataset=args.dataset,
        calibration=args.calibration,
        variants=args.variants,
        settings=given_settings(args),
        results_dir=args.results_dir,
        devices_dir=args.devices_dir,
        cache_dir=args.cache_dir,
        command=["edgebench", *(sys.argv[1:] if args.argv is None else args.argv)],
    )
    stderr = plain_console(file=real_stderr())
    with stderr.status("preparing variants"):
        matrix = prepare_matrix(request)
    outcomes = []
    for index in range(len(matrix.layers)):
        if matrix.is_matrix:
            stderr.print(f"{matrix.device.name}: {matrix.describe_run(index)}", markup=False, highlight=False)
        try:
            outcome = _measure(args, matrix.start(index), stderr)
        except EdgebenchError as error:
            if not outcomes:
                raise
            # A later run of the matrix could not start or reach the device: the earlier ones stand.
            stderr.print(f"edgebench: error: {error}; measured before it: "
                         f"{', '.join(str(o.folder) for o in outcomes)}", markup=False, highlight=False,
                         soft_wrap=True)  # fmt: skip
            return error.exit_code
        if isinstance(outcome, int):  # interrupted: said, and the runs measured so far are on disk
            return outcome
        outcomes.append(outcome)
        if outcome.write_error:
            break
    if matrix.is_matrix:
        _show_matrix(args, matrix, outcomes, stderr)
    else:
        _show_run(args, outcomes[0], stderr)
    if outcomes[-1].write_error:
        stderr.print(f"edgebench: error: {outcomes[-1].write_error}", markup=False, highlight=False, soft_wrap=True)
    elif args.report:
        _write_report(args.report, [o.folder for o in outcomes], stderr)
    return EXIT_OK if all(o.status == "ok" for o in outcomes) else EXIT_PARTIAL


def _measure(args: argparse.Namespace, prepared, stderr):
    """One run on its device with a progress bar: its outcome, or an exit code when interrupted."""
    from edgebench.run.pipeline import run_on_device

    display = _RunProgress(stderr, prepared.total_measurements, prepared=prepared)
    try:
        with display:
            outcome = run_on_device(prepared, display.on_event, trust_new_host=args.trust_new_host)
    except KeyboardInterrupt as interruption:
        how = f" by {interruption.args[0]}" if isinstance(interruption, Terminated) else ""
        stderr.print(
            f"edgebench: interrupted{how}; {len(prepared.store.measurements)} measurement(s) kept in "
            f"{prepared.store.folder}",
            markup=False,
            highlight=False,
        )
        return interrupted_exit_code(interruption)
    if outcome.history_error:
        stderr.print(f"edgebench: warning: {outcome.history_error}", markup=False, highlight=False, soft_wrap=True)
    return outcome


def _show_run(args: argparse.Namespace, outcome, stderr) -> None:
    from edgebench.report.run_table import run_table, run_title

    if args.json:
        print(json.dumps(outcome.document(), indent=2))
        return
    title = run_title(outcome.record, outcome.view)
    wide = args.wide and args.format == "table"  # whole, wider than the terminal if need be (it scrolls)
    table = _fit_run_table(args, outcome.view, title) if args.format == "table" else run_table(outcome.view, title)
    emit(args.format, table, {}, 400 if wide else None)
    if not outcome.write_error:
        pushed = outcome.record.get("pushed_bytes", 0)
        stderr.print(f"results: {outcome.folder} · pushed {pushed:,} bytes", markup=False, highlight=False,
                     soft_wrap=True)  # fmt: skip


def _show_matrix(args: argparse.Namespace, matrix, outcomes, stderr) -> None:
    """A matrix's runs side by side (variant x accelerator); each run's own table is in its folder
    ('edgebench report FOLDER')."""
    from edgebench.compare.accelerator_matrix import matrix_cells
    from edgebench.report.matrix_table import matrix_table, matrix_title

    cells = matrix_cells([(o.record.run_id, o.view) for o in outcomes])
    if args.json:
        document = {"matrix": matrix.describe(0), "cells": [dataclasses.asdict(c) for c in cells],
                    "runs": [o.document() for o in outcomes]}  # fmt: skip
        print(json.dumps(document, indent=2))
        return
    title = matrix_title(outcomes[0].record.model_name, matrix.device.name, [o.view.accelerator for o in outcomes])
    emit(args.format, matrix_table(cells, title), {}, 400 if args.wide else None)
    for outcome in outcomes:
        if not outcome.write_error:
            stderr.print(f"results: {outcome.folder}", markup=False, highlight=False, soft_wrap=True)


def _write_report(out: Path, folders: list[Path], stderr) -> None:
    from edgebench.report.html_report import runs_report, write

    try:
        write(runs_report(folders, out), out)
        stderr.print(f"report: {out}", markup=False, highlight=False, soft_wrap=True)
    except EdgebenchError as error:  # the measurement is saved: its exit status stands
        shown = ", ".join(map(str, folders))
        where = f"the run is in {shown}" if len(folders) == 1 else f"the runs are in {shown}"
        stderr.print(f"edgebench: warning: {error}; {where} ('edgebench report' makes the report again)",
                     markup=False, highlight=False, soft_wrap=True)  # fmt: skip


def _fit_run_table(args: argparse.Namespace, view, title: str):
    """The run table for the terminal: the columns asked for, every column when the terminal is wide enough (or
    --wide), else the set that fits (report.run_table.fit), so that no figure is squeezed to '…'. Not a terminal
    (a pipe, a file, a CI log): every column, as markdown and JSON have them. The width is the terminal's
    ($COLUMNS first, as shutil reads it); $COLUMNS alone does not count, since GNU readline exports COLUMNS=80
    into the environment of every process a Python program that loaded it starts."""
    import shutil

    from edgebench.report.run_table import FULL_TABLE_WIDTH, compact, fit, run_table

    if args.columns:
        return compact(
            run_table(view, title, dense=True), tuple(c.strip() for c in args.columns.split(",") if c.strip())
        )
    if args.wide or not sys.stdout.isatty():
        return run_table(view, title)
    return fit(view, title, shutil.get_terminal_size((FULL_TABLE_WIDTH, 24)).columns)


def _results_options(parser: argparse.ArgumentParser) -> None:
    results_dir_option(parser)
    parser.add_argument("--history-db", type=Path, help="default: <results>/history.sqlite or $EDGEBENCH_HISTORY")


def _comparison_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", default="5%", help="minimum effect for slower/faster and memory (5%%)")
    _results_options(parser)
    format_option(parser)


def _threshold(text: str) -> float:
    from edgebench.compare.verdicts import parse_threshold

    try:
        return parse_threshold(text)
    except ValueError as error:
        raise EdgebenchError(f"--threshold: {error}") from None


def cmd_report(args: argparse.Namespace) -> int:
    from edgebench.history.lookup import latest_run, resolve_run
    from edgebench.report.html_report import farm_report, runs_report, write

    results_dir = results_folder(args)
    threshold = _threshold(args.threshold)
    if args.output.suffix.lower() not in (".html", ".htm"):
        raise EdgebenchError(f"-o {args.output}: the report is an .html file")
    if args.farm_run is not None:
        report = farm_report(args.farm_run or None, results_dir, args.output)
    elif args.history:
        report = _history_report(args, results_dir, threshold)
    else:
        folders = [resolve_run(spec, results_dir) for spec in args.runs] or [latest_run(results_dir)]
        comparison = baseline = None
        if args.baseline:
            from edgebench.compare.confirmation import apply, kept
            from edgebench.compare.verdicts import compare_runs
            from edgebench.history.lookup import baseline_data, noise_floors
            from edgebench.results.confirmations import read_confirmations
            from edgebench.results.store import load

            candidate = load(folders[-1])
            baseline = baseline_data(args.baseline, candidate, results_dir)
            comparison = compare_runs(baseline, candidate, threshold, noise_floors(candidate, results_dir))
            comparison = apply(comparison, kept(read_confirmations(folders[-1])))
        report = runs_report(folders, args.output, comparison, baseline)
    path = write(report, args.output)
    size = path.stat().st_size
    plain_console(file=real_stderr()).print(f"report: {path} ({size / 1e6:.2f} MB)", markup=False, highlight=False)
    return EXIT_OK


def _history_report(args, results_dir: Path, threshold: float):
    from edgebench.history import index as history
    from edgebench.report.html_report import history_report
    from edgebench.results.store import load

    path = args.history_db or history.default_history_path(results_dir)
    rows = history.query(path, device=args.device, model=args.model, last=args.last)
    folders = list(dict.fromkeys(Path(row.folder) for row in sorted(rows, key=lambda r: r.started_at)))
    if not folders:
        raise EdgebenchError("no runs in the history index match; run 'edgebench history' to see what it holds")
    models = {row.model for row in rows}
    if len(models) > 1:
        raise EdgebenchError(f"--history covers several models ({', '.join(sorted(models))}): pass --model")
    items = [(folder, load(folder)) for folder in folders]
    title = f"edgebench history: {', '.join(sorted(models))} on {', '.join(sorted({r.device for r in rows}))}"
    return history_report(items, threshold, args.output, title)


def cmd_history(args: argparse.Namespace) -> int:
    from edgebench.history import index as history
    from edgebench.report.compare_table import history_table

    results_dir = results_folder(args)
    path = args.history_db or history.default_history_path(results_dir)
    if args.action == "rebuild":
        count, skipped, moved = history.rebuild(path, results_dir)
        stderr = plain_console(file=real_stderr())
        if moved:
            stderr.print(moved, markup=False, highlight=False, soft_wrap=True)
        for line in skipped:
            stderr.print(f"skipped {line}", markup=False, highlight=False, soft_wrap=True)
        stderr.print(
            f"indexed {count} run(s) from {results_dir} into {path}", markup=False, highlight=False, soft_wrap=True
        )
        return EXIT_OK
    if args.last is not None and args.last < 1:
        raise EdgebenchError("--last must be at least 1")
    rows = history.query(path, device=args.device, model=args.model, variant=args.variant, last=args.last)
    if not rows and not history.indexed_runs(path):
        from edgebench.results.layout import run_folders

        found = len(run_folders(results_dir))
        if found:  # the index is missing or empty, not the history
            raise EdgebenchError(f"the history index {path} lists no runs, but {results_dir} holds {found} run "
                                 "folder(s): run 'edgebench history rebuild' to index them")  # fmt: skip
    emit(args.format, history_table(rows, _threshold(args.threshold)), {"runs": [r.__dict__ for r in rows]})
    return EXIT_OK


def _comparison(args, run_specs: list[str]):
    """The comparison the command line asks for, with the confirmations already kept in the candidate's folder,
    and what a confirmation needs: (comparison, baseline, candidate, candidate's folder, noise floors)."""
    from edgebench.compare.confirmation import apply, kept
    from edgebench.compare.verdicts import compare_runs
    from edgebench.history.lookup import baseline_data, latest_run, load, noise_floors, passed_over, resolve_run
    from edgebench.results.confirmations import read_confirmations

    results_dir = results_folder(args)
    threshold = _threshold(args.threshold)
    if args.baseline:
        if len(run_specs) > 1:
            raise EdgebenchError("with --baseline give only the candidate run")
        folder = resolve_run(run_specs[0], results_dir) if run_specs else latest_run(results_dir)
        candidate = load(folder)
        baseline = baseline_data(args.baseline, candidate, results_dir)
    else:
        if len(run_specs) != 2:
            raise EdgebenchError("compare takes two runs (baseline, then candidate) or one run with --baseline")
        baseline_folder, folder = (resolve_run(spec, results_dir) for spec in run_specs)
        baseline, candidate = load(baseline_folder), load(folder)
    floors = noise_floors(candidate, results_dir)
    comparison = compare_runs(baseline, candidate, threshold, floors)
    if args.baseline:
        skipped = tuple(passed_over(candidate, results_dir, baseline.run_id))
        comparison = dataclasses.replace(comparison, passed_over=skipped)
    return apply(comparison, kept(read_confirmations(folder))), baseline, candidate, folder, floors


def _emit_comparison(args, comparison) -> None:

    from edgebench.report.compare_table import compare_table

    document = {
        "baseline": comparison.run_a,
        "candidate": comparison.run_b,
        "threshold": comparison.threshold,
        "not_comparable": list(comparison.not_comparable),
        "passed_over": list(comparison.passed_over),
        "regression": bool(comparison.regressions),
        "variants": [dataclasses.asdict(v) for v in comparison.variants],
    }
    emit(args.format, compare_table(comparison), document)


def cmd_compare(args: argparse.Namespace) -> int:
    comparison, *_ = _comparison(args, args.runs)
    _emit_comparison(args, comparison)
    return EXIT_OK


EXIT_REGRESSION, EXIT_NOT_COMPARABLE = 1, 2


def cmd_check(args: argparse.Namespace) -> int:
    comparison, baseline, candidate, folder, floors = _comparison(args, [args.run] if args.run else [])
    if args.confirm and comparison.comparable:
        comparison = _confirm(args, comparison, baseline, candidate, folder, floors)
    _emit_comparison(args, comparison)
    if not comparison.comparable or any(v.verdict == "not comparable" for v in comparison.variants):
        return EXIT_NOT_COMPARABLE
    return EXIT_REGRESSION if comparison.regressions else EXIT_OK


def _confirm(args, comparison, baseline, candidate, folder, floors):
    """check --confirm: the slower variants re-measured on their device; the comparison with what that showed."""
    from edgebench.compare.confirmation import apply
    from edgebench.run.confirm import ConfirmRequest, confirm_slowdowns, keep, suspects

    names = suspects(comparison)
    if not names:
        return comparison
    if args.confirm_pairs < 3:
        raise EdgebenchError(f"--confirm-pairs must be at least 3, got {args.confirm_pairs}")
    stderr = plain_console(file=real_stderr())
    request = ConfirmRequest(
        comparison, baseline, candidate, _threshold(args.threshold), floors, args.confirm_pairs,
        devices_dir=args.devices_dir, cache_dir=args.cache_dir, trust_new_host=args.trust_new_host,
        command=("edgebench", *sys.argv[1:]),
    )  # fmt: skip
    total = sum(2 if v.size == "changed" else 1 for v in comparison.variants if v.variant in names)
    with _RunProgress(stderr, total * args.confirm_pairs) as progress:
        confirmations = confirm_slowdowns(request, progress.on_event)
    problem = keep(folder, confirmations)
    if problem:
        stderr.print(f"edgebench: {problem}", markup=False, highlight=False, soft_wrap=True)
    return apply(comparison, confirmations)


class _RunProgress:
    """Runner events -> one rich progress bar on stderr (which variant, which phase, how far, about how long
    still), and, given the run, a line per variant as its first round ends: its figures against float32's,
    so the answer takes shape before the table."""

    def __init__(self, console: Console, total: int, prepared=None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        from edgebench.run.eta import Eta

        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[eta]}", markup=False), console=console, transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task("starting", total=total, eta="")
        self.said_waiting = False
        self.prepared = prepared
        names = [v.name for v in prepared.plan.variants] if prepared else []
        self.eta = Eta(names, prepared.plan.settings.planned_rounds if prepared else 1)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc_info):
        self.progress.__exit__(*exc_info)

    def on_event(self, event) -> None:
        from edgebench.run.eta import describe

        now = time.monotonic()
        label = f"{event.variant} (round {event.round})" if event.round > 1 else event.variant
        if event.kind == "stage":
            self.progress.update(self.task, description=f"sending {event.variant or ''} {event.message or ''}")
        elif event.kind == "start":
            self.eta.started(event.variant, event.round, now)
            self.progress.update(self.task, description=f"{label}: starting")
        elif event.kind == "progress":
            self.eta.phase(event.phase, now)
            done = f" {event.done}/{event.total}" if event.phase == "accuracy" and event.total else ""
            runs = f" {event.done} runs" if event.phase in ("warmup", "measure") and event.done else ""
            self.progress.update(self.task, description=f"{label}: {event.phase}{done}{runs}")
        elif event.kind == "rounds" and event.total:
            self.eta.rounds_decided(event.total)
            self.progress.update(self.task, total=len(self.eta.pending) + self.progress.tasks[0].completed)
        elif event.kind == "done":
            self.eta.finished(event.variant, event.round, now)
            self.progress.advance(self.task)
            if event.round == 1 and self.prepared is not None:
                self._say_first_round(event.variant)
        elif event.kind in ("lease", "health") and event.message:
            if event.message.startswith("waiting"):
                if event.message.startswith("waiting for device") and not self.said_waiting:
                    self.said_waiting = True  # one line that stays (a log has no live bar), then the bar counts
                    self.progress.console.print(event.message, markup=False, highlight=False, soft_wrap=True)
                self.progress.update(self.task, description=event.message)
            else:  # a dead controller's lease taken over, a leftover agent stopped: worth a line of its own
                self.progress.console.print(
                    f"{event.device}: {event.message}", markup=False, highlight=False, soft_wrap=True
                )
        self.progress.update(self.task, eta=describe(self.eta.remaining(now)))

    def _say_first_round(self, variant: str) -> None:
        from edgebench.compare.run_summary import summarize
        from edgebench.report.run_table import progress_line

        store = self.prepared.store
        view = summarize(store.record, store.measurements)
        shown = next((v for v in view.variants if v.name == variant), None)
        if shown is not None:
            self.progress.console.print(progress_line(shown, view.no_speed_claims), markup=False, highlight=False,
                                        soft_wrap=True)  # fmt: skip


def cmd_devices_list(args: argparse.Namespace) -> int:
    from edgebench.devices.inventory import default_devices_dir, scan_devices
    from edgebench.farm.quarantine import load_states
    from edgebench.report.devices_table import devices_table

    folder = args.devices_dir or default_devices_dir()
    devices, broken = scan_devices(folder)
    emit("table", devices_table(devices, folder, load_states(results_folder(args))), {})
    stderr = plain_console(file=real_stderr(), soft_wrap=True)
    for bad in broken:
        stderr.print(f"edgebench: broken device file (not listed): {bad.problem}")
    return EXIT_PARTIAL if broken else EXIT_OK


def cmd_devices_release(args: argparse.Namespace) -> int:
    from edgebench.farm.quarantine import release

    lifted = release(results_folder(args), args.name)
    message = (
        f"released {args.name} (was quarantined since {lifted['since']}: {lifted['reason']})"
        if lifted
        else (f"{args.name} was not quarantined")
    )
    plain_console(file=real_stderr()).print(message, markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK


def cmd_farm_run(args: argparse.Namespace) -> int:
    from edgebench.farm.config import load_farm_file
    from edgebench.farm.scheduler import FarmOptions, run_farm

    farm = load_farm_file(args.farm)
    options = FarmOptions(
        results_dir=args.results_dir, devices_dir=args.devices_dir, cache_dir=args.cache_dir,
        trust_new_host=args.trust_new_host, resume=args.resume, confirm=args.confirm,
        command=["edgebench", *(sys.argv[1:] if args.argv is None else args.argv)],
    )  # fmt: skip
    stderr = plain_console(file=real_stderr())
    cancel = threading.Event()
    display = _FarmProgress(stderr)
    try:
        with display:
            outcome = run_farm(farm, options, display.on_event, cancel, on_prepare=display.preparing)
    except KeyboardInterrupt as interruption:
        how = f" by {interruption.args[0]}" if isinstance(interruption, Terminated) else ""
        stderr.print(f"edgebench: farm interrupted{how}; every device stopped and released; resume with "
                     "'edgebench farm run FARM --resume FARM_RUN' (see results/_farms)", markup=False,
                     highlight=False, soft_wrap=True)  # fmt: skip
        return interrupted_exit_code(interruption)
    emit_farm(args.format if not args.json else "json", outcome.summary)
    stderr.print(f"farm run: {outcome.folder}", markup=False, highlight=False, soft_wrap=True)
    if args.report:
        from edgebench.report.html_report import farm_report, write

        results_dir = args.results_dir or results_folder(args)
        try:
            write(farm_report(outcome.folder.name, results_dir, args.report), args.report)
            stderr.print(f"report: {args.report}", markup=False, highlight=False, soft_wrap=True)
        except EdgebenchError as error:  # the night is measured and judged: its exit status stands
            stderr.print(f"edgebench: warning: {error}", markup=False, highlight=False, soft_wrap=True)
    return outcome.summary.exit_code


def cmd_farm_check(args: argparse.Namespace) -> int:
    from edgebench.farm.summary import summarize_farm
    from edgebench.results.farm_run import load_farm_document, resolve_farm_run

    results_dir = results_folder(args)
    if args.threshold:
        _threshold(args.threshold)
    folder = resolve_farm_run(args.farm_run, results_dir)
    summary = summarize_farm(load_farm_document(folder), results_dir, args.baseline, args.threshold)
    emit_farm(args.format, summary)
    return summary.exit_code


class _FarmProgress:
    """Farm events (from every device's thread) -> one live table on stderr: each device's state and step."""

    def __init__(self, console: Console):
        self.console = console
        self.rows: dict[str, tuple[str, str, str]] = {}
        self.lock = threading.Lock()
        self.live = None
        self.status = "preparing"

    def __enter__(self):
        from rich.live import Live

        self.live = Live(self._render(), console=self.console, transient=True, refresh_per_second=4)
        self.live.__enter__()
        return self

    def __exit__(self, *exc_info):
        self.live.__exit__(*exc_info)

    def preparing(self, text: str) -> None:
        self.status = text
        self.live.update(self._render())

    def on_event(self, event) -> None:
        with self.lock:
            count = f"{event.done}/{event.total}" if event.total else ""
            self.rows[event.device] = (event.state, event.detail, count)
            self.status = "measuring"
            self.live.update(self._render())

    def _render(self):
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"farm: {self.status}", title_justify="left")
        for header in ("device", "state", "now", "done"):
            table.add_column(header)
        for device, (state, detail, count) in self.rows.items():
            table.add_row(*(Text(cell) for cell in (device, state, detail[:80], count)))  # user text, never markup
        return table


def cmd_devices_check(args: argparse.Namespace) -> int:
    from edgebench.devices.check import check_device
    from edgebench.report.devices_table import check_table

    report = check_device(args.name, args.devices_dir, trust_new_host=args.trust_new_host)
    emit("table", check_table(report), {})
    return EXIT_OK if report.runnable else EXIT_PARTIAL


def cmd_devices_trust(args: argparse.Namespace) -> int:
    from edgebench.devices.check import trust_device

    message = trust_device(args.name, args.devices_dir)
    plain_console(file=real_stderr()).print(message, markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK


def cmd_devices_setup(args: argparse.Namespace) -> int:
    from edgebench.devices.inventory import resolve_device
    from edgebench.devices.setup import setup_device

    stderr = plain_console(file=real_stderr())
    device = resolve_device(args.name, args.devices_dir)
    if args.benchmark_binary or device.backend == "benchmark_model":
        from edgebench.devices.binary_setup import setup_binary

        if not args.benchmark_binary:
            raise EdgebenchError(
                f"device {device.name!r} is measured with benchmark_model: pass --benchmark-binary FILE (the official "
                "android_aarch64_benchmark_model, or your build); edgebench does not download unpinned nightlies"
            )
        with stderr.status("setting up") as status:
            message = setup_binary(device, args.benchmark_binary, lambda text: status.update(text))
        stderr.print(message, markup=False, highlight=False, soft_wrap=True)
        return EXIT_OK
    with stderr.status("setting up") as status:
        message = setup_device(
            args.name, args.devices_dir, offline=args.offline, base_python=args.base_python,
            trust_new_host=args.trust_new_host, say=lambda text: status.update(text),
        )  # fmt: skip
    stderr.print(message, markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK


def _quantize_document(source, results, accuracies) -> dict:
    from edgebench.quantize.variants import Variant

    variants = []
    for result in results:
        entry = {"name": result.name}
        if isinstance(result, Variant):
            entry |= {"path": str(result.path), "bytes": result.size_bytes, "sha256": result.sha256}
            entry |= {"recipe": result.recipe, "from_cache": result.from_cache, "weights": result.weights}
            entry |= {"notes": list(result.notes), "compressed": result.compressed, "sparsity": result.sparsity}
            if accuracies and result.name in accuracies:
                accuracy = accuracies[result.name]
                entry |= {"top1": accuracy.top1, "correct": accuracy.correct, "evaluated": accuracy.total}
        else:
            entry["skipped"] = result.reason
        variants.append(entry)
    return {"model": source.name, "model_path": str(source.model_path), "variants": variants}


if __name__ == "__main__":
    sys.exit(main())
