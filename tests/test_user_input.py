"""What users type, taken at its word or refused in one line: names with markup in them, reserved and broken device
files, a misspelt baseline policy, settings typed in forms that would make later runs "not comparable"."""

from __future__ import annotations

import json
import re
import sys

import numpy as np

from tests.farm_helpers import write_farm
from tests.helpers import MNIST_QUICK, assert_one_line_error, run_main

SSH_DEVICE = 'transport = "ssh"\ntags = ["nightly"]\n[ssh]\nhost = "10.0.0.9"\nuser = "pi"\n'


def test_user_text_is_printed_as_typed_never_as_markup_or_emoji(tmp_path, mnist, variant_cache, capfd):
    model = tmp_path / ":fire:[bold]x.tflite"
    model.write_bytes(mnist.model_path.read_bytes())
    results = tmp_path / "results"
    done = run_main(capfd, "run", "--device", "local", "--model", model, "--variants", "float32", "--samples", "0",
                    "--min-runs", "5", "--min-seconds", "0.05", "--rounds", "1", "--results-dir", results,
                    "--cache-dir", variant_cache)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (folder,) = list(results.glob("local/*"))
    assert ":fire:[bold]x on local" in done.stdout and "🔥" not in done.stdout
    assert f"results: {folder} " in done.stderr  # a path that exists, as printed
    refused = run_main(capfd, "check", "--results-dir", results, "--baseline", "last:-1:")
    assert_one_line_error(refused, "--baseline last:-1:: last:N takes a number of runs")
    assert "👎" not in refused.stderr


def test_a_device_cannot_take_the_history_index_name(tmp_path, capfd):
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "history.sqlite.toml").write_text(SSH_DEVICE)
    refused = run_main(capfd, "devices", "check", devices / "history.sqlite.toml")
    assert_one_line_error(refused, "the device name 'history.sqlite' is reserved")


def test_one_broken_device_file_hides_no_other_and_stops_only_a_farm_that_selects_it(tmp_path, capfd):
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "pi4.toml").write_text(SSH_DEVICE)
    (devices / "typo.toml").write_text('transport = "ssh"\ntags = ["lab"]\n[ssh]\nhots = "x"\n')
    (devices / "garbled.toml").write_text("transport = = 'ssh'\n")
    listed = run_main(capfd, "devices", "list", "--devices-dir", devices)
    assert listed.returncode == 1
    assert "pi4" in listed.stdout
    assert "broken device file (not listed)" in listed.stderr and "typo.toml" in listed.stderr
    assert "garbled.toml" in listed.stderr

    from edgebench.farm.config import FarmFileError, load_farm_file, select_devices

    nightly = load_farm_file(write_farm(tmp_path / "nightly.toml", ["tag:nightly"], ["float32"]))
    assert [d.name for d in select_devices(nightly, devices)] == ["pi4"]  # typo.toml is not a nightly board
    lab = load_farm_file(write_farm(tmp_path / "lab.toml", ["tag:lab"], ["float32"]))
    try:
        select_devices(lab, devices)
        raise AssertionError("a farm that selects the broken file must stop on it")
    except FarmFileError as error:
        assert "typo.toml" in str(error) and "hots" in str(error)


def test_a_misspelt_baseline_policy_is_refused_before_the_night(tmp_path, capfd):
    devices = tmp_path / "devices"
    devices.mkdir()
    farm = write_farm(tmp_path / "farm.toml", ["local"], ["float32"], sections='\n[baseline]\npolicy = "yester:day"\n')
    refused = run_main(capfd, "farm", "run", farm, "--devices-dir", devices, "--results-dir", tmp_path / "results")
    assert_one_line_error(refused, "key 'baseline.policy'", "'last', 'best', 'last:N' or a run id")
    pinned_policy = '\n[baseline]\npolicy = "yesterday"\n'
    pinned = write_farm(tmp_path / "pinned.toml", ["local"], ["float32"], sections=pinned_policy)
    refused = run_main(capfd, "farm", "run", pinned, "--devices-dir", devices, "--results-dir", tmp_path / "results")
    assert_one_line_error(refused, "key 'baseline.policy'", "'yesterday' is neither a policy")
    assert not (tmp_path / "results" / "local").exists()  # nothing was measured


def test_settings_are_stored_as_they_act(tmp_path, mnist, variant_cache, capfd):
    """--cpus 0,0 is CPU 0; --samples past the data set is the data set; both compare with runs typed plainly."""
    import os

    cpu = min(os.sched_getaffinity(0))
    results = tmp_path / "results"
    threads = len(os.sched_getaffinity(0)) + 1
    done = run_main(capfd, "run", "--device", "local", *MNIST_QUICK[:1], MNIST_QUICK[1], "--variants", "float32",
                    "--samples", "999999999", "--min-runs", "5", "--min-seconds", "0.05", "--rounds", "1",
                    "--cpus", f"{cpu},{cpu}", "--threads", str(threads), "--results-dir", results,
                    "--cache-dir", variant_cache)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (folder,) = list(results.glob("local/*"))
    record = json.loads((folder / "run.json").read_text())
    assert record["settings"]["cpus"] == [cpu]
    assert record["settings"]["samples"] == 10_000  # the MNIST test set
    assert f"--threads {threads} on 1 core(s) of local: threads beyond the cores only take turns" in done.stderr


def test_a_data_set_that_is_not_an_npz_or_has_no_labels_says_so(tmp_path, mnist, variant_cache, capfd):
    not_npz = tmp_path / "data.npz"
    np.save(tmp_path / "data.npy", np.zeros((4, 28, 28), np.float32))
    (tmp_path / "data.npy").rename(not_npz)
    refused = run_main(capfd, "run", "--device", "local", "--model", "mnist", "--dataset", not_npz)
    assert_one_line_error(refused, "is not an .npz archive")
    assert "allow_pickle" not in refused.stderr
    unlabelled = tmp_path / "inputs.npz"
    with np.load(mnist.dataset_path) as arrays:
        np.savez(unlabelled, x=arrays["x"][:50], **{k: arrays[k] for k in arrays.files if k.startswith("x_")})
    done = run_main(capfd, "run", "--device", "local", "--model", "mnist", "--dataset", unlabelled, "--variants",
                    "float32", "--min-runs", "5", "--min-seconds", "0.05", "--rounds", "1", "--results-dir",
                    tmp_path / "results", "--cache-dir", variant_cache)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"no accuracy: {unlabelled} has no 'y' labels" in " ".join(done.stdout.split())


def test_a_bad_calibration_file_stops_the_run_at_the_door(tmp_path, capfd):
    """A typo, or a set that cannot feed the model: exit 2 before anything is measured, not int8 'skipped'."""
    typo = run_main(capfd, "run", "--device", "local", "--model", "mnist", "--calibration", tmp_path / "calib.npz",
                    "--results-dir", tmp_path / "results")  # fmt: skip
    assert_one_line_error(typo, "data set not found", "calib.npz")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((20, 10, 10), np.float32))
    refused = run_main(capfd, "run", "--device", "local", "--model", "mnist", "--calibration", wrong,
                       "--results-dir", tmp_path / "results")  # fmt: skip
    assert_one_line_error(refused, f"{wrong}: 'x' samples are (10, 10)")
    quantize = run_main(capfd, "quantize", "mnist", "--variants", "int8", "--calibration", wrong)
    assert_one_line_error(quantize, f"{wrong}: 'x' samples are (10, 10)")
    assert not (tmp_path / "results").exists()


def test_help_names_the_zoo_and_history_shows_the_model(capfd):
    shown = run_main_help(capfd, "run")
    assert "a zoo name (mnist, mobilenet-digits)" in " ".join(shown.split())
    from edgebench.history.index import HistoryRow
    from edgebench.report.compare_table import history_table

    row = HistoryRow("20260101T000000Z-x", "2026-01-01T00:00:00Z", "pi4", "mobilenet-digits", "int8", "ok",
                     "ai_edge_litert 2.3.0", 1, 500.0, 70_000_000, 0.99, "folder")  # fmt: skip
    table = history_table([row], 0.05)
    assert [c.header for c in table.columns][3] == "model" and table.rows[0][3] == "mobilenet-digits"


def run_main_help(capfd, command: str) -> str:
    import pytest

    from edgebench.cli.main import main

    capfd.readouterr()
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return capfd.readouterr().out


def test_the_run_table_fits_80_and_120_columns_and_ends_with_the_answer(tmp_path, variant_cache, capfd, monkeypatch):
    """One real run of two rounds (so that the speed-up has an interval), shown as `run` shows it at 80 columns,
    then drawn again from its folder at 120, --wide and --columns by the same code."""
    import argparse

    from edgebench.cli.main import _fit_run_table
    from edgebench.cli.render import emit
    from edgebench.report.run_table import run_title, shown_run
    from edgebench.results.layout import run_folders
    from edgebench.results.store import load_run

    results = tmp_path / "results"
    quick = [a if a != "1" else "2" for a in MNIST_QUICK]  # --rounds 2
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal, of the width COLUMNS says
    monkeypatch.setenv("COLUMNS", "80")
    done = run_main(capfd, "run", "--device", "local", *quick, "--variants", "float32,dynamic-int8,int4-weights",
                    "--results-dir", results, "--cache-dir", variant_cache)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"dynamic-int8: 3\.\d\dx smaller · .* top-1 [+-]\d\.\d\d ±\d\.\d\d pp \(200 samples\)", done.stderr
    )
    record, measurements = load_run(run_folders(results)[-1])
    view, _ = shown_run(record, measurements)

    def shown(width, **options):
        args = argparse.Namespace(**{"columns": None, "wide": False, **options})
        monkeypatch.setenv("COLUMNS", str(width))
        capfd.readouterr()
        emit("table", _fit_run_table(args, view, run_title(record, view)), {}, 400 if args.wide else None)
        return re.sub(r"\x1b\[[0-9;]*m", "", capfd.readouterr().out).splitlines()  # a terminal gets colours

    for width, lines in ((80, re.sub(r"\x1b\[[0-9;]*m", "", done.stdout).splitlines()), (120, shown(120))):
        assert all(len(line) <= width for line in lines), "\n".join(lines)
        assert "…" not in "".join(lines)  # no figure squeezed away
        header = next(line for line in lines if line.lstrip().startswith("variant"))
        assert "speed-up" in header and "SQNR dB" in header and "load ms" not in header
        rows = {}
        for line in lines[lines.index(header) + 2 :]:
            rows.setdefault(line.split()[0] if line.strip() else "", line)  # the table's row, not a later note
        assert re.search(r"\d\.\d\dx ±(\d+%|<1%)", rows["dynamic-int8"])  # the speed-up with its interval
        assert re.search(r"[+-]\d\.\d\d ±\d\.\d\d", rows["dynamic-int8"])  # the accuracy change with its interval
        after = " ".join(lines[lines.index(header) :])
        answer = after.index("answer on local, with top-1 within 0.5 pp of float32: smallest: ")
        assert answer > after.index("p90:")  # the last note (wrapped to the terminal's width)
    header = next(line for line in shown(80, wide=True) if line.startswith("┃"))
    assert header.count("┃") - 1 == 19  # every column, whatever the terminal (with gzip -9, zstd, gz smaller by)
    assert "speed-up (95% CI)" in header and "Δ pp (95% CI)" in header and "samples" in header
    header = next(line for line in shown(80, columns="variant,p50,speed-up") if "variant" in line)
    assert header.split() == ["variant", "p50", "speed-up"]


def test_the_answer_names_what_to_avoid_and_makes_no_speed_claim_on_an_emulator():
    from edgebench.compare.recommendation import recommend
    from edgebench.compare.run_summary import RunSummaryView, VariantSummary

    def variant(name, ratio, speedup, delta, wrong=None):
        return VariantSummary(name, "ok", None, 1000, ratio, speedup=speedup, top1_delta_pp=delta,
                              wrong_here=wrong)  # fmt: skip

    variants = (
        variant("float32", 1.0, 1.0, 0.0),
        variant("int8", 3.96, 2.1, -0.1),
        variant("int4-weights", 7.9, 0.4, -1.2),
        variant("dynamic-int8", 3.98, 1.0, -89.5, "agrees with float32 on only 9.4% of samples"),
    )
    board = RunSummaryView("pi4", False, None, None, None, 1, None, None, (None, None), variants)
    answer = recommend(board)
    assert "smallest: int8 (3.96x smaller, 2.10x speed)" in answer and "fastest: int8 (2.10x" in answer
    assert "int4-weights (top-1 -1.20 pp)" in answer
    assert "dynamic-int8 (its figures are wrong on this runtime)" in answer
    emulated = RunSummaryView("pi4-emulated", True, None, None, None, 1, None, None, (None, None), variants)
    assert "fastest" not in recommend(emulated) and "emulated: no speed claims" in recommend(emulated)


def test_the_shipped_nightly_farm_excludes_every_emulator():
    from pathlib import Path

    from edgebench.farm.config import load_farm_file, select_devices

    root = Path(__file__).resolve().parent.parent
    chosen = select_devices(load_farm_file(root / "farms" / "nightly.toml"), root / "devices")
    assert chosen and not [d.name for d in chosen if d.emulated]
    assert {"pi4", "pi5", "local"} <= {d.name for d in chosen}


def test_the_zoo_command_lists_every_zoo_model(capfd):
    listed = run_main(capfd, "zoo", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    models = {m["name"]: m for m in json.loads(listed.stdout)["models"]}
    assert set(models) == {"mnist", "mobilenet-digits"}
    assert models["mnist"]["test_samples"] == 10_000 and models["mnist"]["float32_top1"] == 0.9943
