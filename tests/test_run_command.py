"""`edgebench run` on the local device, end to end, and every way it can go wrong."""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest

from edgebench.backends.python_agent import PythonAgent
from edgebench.quantize.variants import Variant
from edgebench.results.record import RunRecord
from edgebench.results.store import Measurement, RunStore, load_run
from edgebench.run.runner import RunPlan, Settings, execute
from edgebench.transport.base import Endpoint
from edgebench.transport.local import LocalTransport
from tests.helpers import assert_one_line_error, run_edgebench, run_main

TIMING = ["--min-runs", "10", "--min-seconds", "0.1", "--warmup-seconds", "0"]
QUICK = [*TIMING, "--rounds", "1"]  # a cheap model would get three rounds otherwise


def only_run_folder(results):
    (run_folder,) = [p for p in results.glob("*/*") if p.is_dir()]  # beside them: history.sqlite
    return run_folder


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, variant_cache):
    results = tmp_path_factory.mktemp("results")
    completed = run_edgebench(
        "run", "--device", "local", "--model", "mnist", "--variants", "float32,int8,dynamic-int8",
        "--samples", "500", *TIMING, "--results-dir", str(results), "--cache-dir", str(variant_cache),
    )  # fmt: skip
    return completed, only_run_folder(results)


def test_run_prints_the_comparison_table(quick_run):
    completed, _ = quick_run
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "device local (x86_64" in out or "device local (" in out
    assert "ai_edge_litert 2.3.0" in out and "1 thread" in out
    for header in ("p50", "speed-up", "peak MB", "top-1 (95% CI)", "agrees", "SQNR dB", "cosine"):
        assert header in out
    for variant in ("float32", "int8", "dynamic-int8"):
        assert f"│ {variant} " in out


def test_run_writes_the_raw_documents_and_a_summary(quick_run):
    _, folder = quick_run
    # No --rounds and a cheap model (every variant timed in under 3 s): three rounds, each a fresh agent
    # process, the first under the plain name.
    names = [f"{v}{r}.json" for v in ("dynamic-int8", "float32", "int8") for r in ("", ".r2", ".r3")]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*names, "run.json"])
    summary, measurements = load_run(folder)
    assert summary["rounds"] == 3 and len(measurements) == 9
    assert summary["status"] == "ok"
    assert summary["edgebench_version"]
    assert summary["command"][:3] == ["edgebench", "run", "--device"]
    assert summary["device"]["name"] == "local"
    assert summary["settings"]["threads"] == 1 and summary["settings"]["min_runs"] == 10
    assert [m.variant for m in measurements] == ["float32", "int8", "dynamic-int8"] * 3
    assert [m.round for m in measurements] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    # Accuracy in the first round only
    assert [bool(m.document.get("accuracy")) for m in measurements] == [True] * 3 + [False] * 6
    assert all(m.document["accuracy"]["total"] == 500 for m in measurements[:3])


def test_json_output_for_scripts(tmp_path, variant_cache):
    completed = run_edgebench(
        "run", "--device", "local", "--model", "mnist", "--variants", "float32,int8", "--samples", "200",
        *QUICK, "--results-dir", str(tmp_path), "--cache-dir", str(variant_cache), "--json",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    variants = {v["name"]: v for v in document["variants"]}
    assert variants["float32"]["speedup"] == 1.0
    assert variants["int8"]["speedup"] > 0 and variants["int8"]["size_ratio"] > 3.9
    assert variants["int8"]["evaluated"] == 200
    assert abs(variants["int8"]["top1_delta_pp"]) < 2


def test_markdown_output_for_ci_summaries(tmp_path, variant_cache):
    completed = run_edgebench(
        "run", "--device", "local", "--model", "mnist", "--variants", "float32", "--samples", "100",
        *QUICK, "--results-dir", str(tmp_path), "--cache-dir", str(variant_cache), "--format", "markdown",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    header = "| variant | bytes | smaller by | gzip -9 | zstd | gz smaller by | load ms | p50 | p90 | speed-up (95% CI)"
    assert header in completed.stdout


def test_rounds_interleave_and_the_speedup_is_the_median_of_per_round_ratios(tmp_path, variant_cache):
    completed = run_edgebench(
        "run", "--device", "local", "--model", "mnist", "--variants", "float32,int8", "--samples", "100",
        *QUICK, "--rounds", "3", "--results-dir", str(tmp_path), "--cache-dir", str(variant_cache), "--json",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    folder = only_run_folder(tmp_path)
    _summary, measurements = load_run(folder)
    assert [(m.variant, m.round) for m in measurements] == [
        ("float32", 1), ("int8", 1), ("float32", 2), ("int8", 2), ("float32", 3), ("int8", 3),
    ]  # fmt: skip
    assert (folder / "int8.r3.json").is_file()
    # Accuracy once, in round 1; later rounds only time.
    assert measurements[1].document["accuracy"]["total"] == 100 and "accuracy" not in measurements[3].document
    p50 = {(m.variant, m.round): m.document["timing"]["stats"]["p50"] for m in measurements}
    expected = statistics.median(p50[("float32", r)] / p50[("int8", r)] for r in (1, 2, 3))
    variants = {v["name"]: v for v in json.loads(completed.stdout)["variants"]}
    assert variants["int8"]["speedup"] == pytest.approx(expected)
    assert variants["int8"]["rounds"] == 3


def test_a_corrupt_variant_fails_alone(tmp_path, mnist_variants):
    corrupt_path = tmp_path / "corrupt.tflite"
    corrupt_path.write_bytes(mnist_variants["int8"].path.read_bytes()[:100_000])
    corrupt = Variant("int8", corrupt_path, 100_000, "truncated on purpose", "0" * 64, False)
    variants = [mnist_variants["float32"], corrupt, mnist_variants["dynamic-int8"]]
    store = RunStore.create(tmp_path / "results", "local", "corrupt-test", {"rounds": 1, "variants": []})
    plan = RunPlan(variants, None, Settings(min_runs=5, min_seconds=0.05, warmup_min_seconds=0, rounds=1))
    with LocalTransport(Endpoint("local")) as transport:
        status = execute(plan, transport, PythonAgent(transport), store, lambda event: None)
    assert status == "partial"
    assert [m.status for m in store.measurements] == ["ok", "failed", "ok"]
    assert store.measurements[1].error.startswith("model-corrupt: ")
    assert "does not match the sha256 the host sent" in store.measurements[1].error
    assert json.loads((store.folder / "run.json").read_text())["status"] == "partial"


def test_an_agent_crash_is_reported_with_its_signal(tmp_path, variant_cache):
    """The device's Python answers the probe, then is killed outright while measuring, as by the OOM killer."""
    crashing = tmp_path / "python-that-gets-killed"
    crashing.write_text(
        f'#!/bin/sh\ncase "$*" in *--probe*) exec {sys.executable} "$@";; esac\n'
        "echo 'about to be killed' >&2\nkill -KILL $$\n"
    )
    crashing.chmod(0o755)
    device = tmp_path / "doomed.toml"
    device.write_text(f'transport = "local"\npython = "{crashing}"\n')
    completed = run_edgebench(
        "run", "--device", str(device), "--model", "mnist", "--variants", "float32,int8",
        "--results-dir", str(tmp_path / "results"), "--cache-dir", str(variant_cache),
    )  # fmt: skip
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    out = " ".join(completed.stdout.split())
    assert "float32 failed: agent crashed (signal SIGKILL) without a result; last stderr: about to be killed" in out
    summary, measurements = load_run(only_run_folder(tmp_path / "results"))
    assert summary["status"] == "failed" and all(m.status == "failed" for m in measurements)


@pytest.mark.parametrize(
    ("signum", "exit_code", "said"),
    [(signal.SIGINT, 130, "interrupted;"),  # Ctrl-C in the fast lane; the other two signals in the slow one
     pytest.param(signal.SIGTERM, 143, "interrupted by SIGTERM;", marks=pytest.mark.slow),
     pytest.param(signal.SIGHUP, 129, "interrupted by SIGHUP;", marks=pytest.mark.slow)],
)  # fmt: skip
def test_ctrl_c_sigterm_and_sighup_keep_the_variants_already_measured(tmp_path, variant_cache, signum, exit_code,
                                                                      said):  # fmt: skip
    """A cancelled CI job (SIGTERM) or a closed terminal (SIGHUP) ends a run like Ctrl-C: nothing left 'running'."""
    results = tmp_path / "results"
    process = subprocess.Popen(
        [sys.executable, "-m", "edgebench", "run", "--device", "local", "--model", "mnist",
         "--variants", "float32,dynamic-int8,int8", "--samples", "100", "--min-runs", "10", "--min-seconds", "6",
         "--results-dir", str(results), "--cache-dir", str(variant_cache)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # float32 takes ~6 s; interrupt once it is stored, while dynamic-int8 is measuring.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(results.glob("local/*/float32.json")):
        time.sleep(0.2)
    assert list(results.glob("local/*/float32.json")), "float32 was never stored"
    time.sleep(1.0)
    process.send_signal(signum)
    _stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code, stderr
    assert "Traceback" not in stderr
    assert f"edgebench: {said} 1 measurement(s) kept in" in stderr
    summary, measurements = load_run(only_run_folder(results))
    assert summary["status"] == "interrupted"
    assert [(m.variant, m.status) for m in measurements] == [("float32", "ok")]
    assert measurements[0].document["timing"]["stats"]["count"] >= 10


@pytest.fixture
def tiny_results_disk(tmp_path):
    """A real 32 KiB tmpfs as the results folder: room for run.json, not for a measurement document."""
    folder = tmp_path / "tiny-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_results_disk_keeps_what_was_measured_and_says_so_in_one_line(tiny_results_disk, variant_cache):
    completed = run_edgebench(
        "run", "--device", "local", "--model", "mnist", "--variants", "float32,int8", "--samples", "20",
        "--fidelity-samples", "5", "--min-runs", "3000", "--min-seconds", "0.05", "--warmup-seconds", "0",
        "--results-dir", str(tiny_results_disk), "--cache-dir", str(variant_cache),
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("edgebench: error:")]
    assert len(errors) == 1 and "results not saved: disk full in" in errors[0], completed.stderr
    assert "1 measurement(s) kept in memory and shown above" in errors[0]
    # The finished measurement is not lost: it is in the table printed from memory.
    row = next(line for line in completed.stdout.splitlines() if line.startswith("│ float32"))
    assert ("µs" in row or " ms" in row) and "failed" not in row  # measured; the unit depends on the machine
    # run.json still fits, and no longer says "running" forever.
    (run_file,) = tiny_results_disk.glob("local/*/run.json")
    summary = json.loads(run_file.read_text())
    assert summary["status"] == "failed" and summary["error"].startswith("disk full")


class TestBadDataStopsAtTheDoor:
    """Each bad value is named in one line, exit 2, before a device is touched or a run folder made."""

    def run(self, tmp_path, *args):
        results = tmp_path / "results"
        completed = run_edgebench("run", "--device", "local", "--model", "mnist", "--variants", "float32",
                                  "--results-dir", str(results), *args)  # fmt: skip
        assert not results.exists(), "nothing may be written for bad input"
        return completed

    def dataset(self, tmp_path, **arrays):
        path = tmp_path / "data.npz"
        defaults = {"x": np.zeros((20, 28, 28), np.uint8), "y": np.zeros(20, np.int64), "x_scale": np.float32(1 / 255)}
        np.savez(path, **{**defaults, **arrays})
        return str(path)

    @pytest.mark.parametrize(
        ("arrays", "fragment"),
        [
            ({"x": np.full((20, 28, 28), np.nan, np.float32)}, "'x' holds 15,680 NaN or infinite value(s)"),
            ({"x_scale": np.float32(np.inf)}, "'x_scale' must be one finite number"),
            ({"y": np.arange(20) % 13}, "labels run from 0 to 12, but mnist's first output has 10 class(es)"),
            ({"x": np.zeros((20, 20, 20), np.uint8)}, "'x' samples are (20, 20), mnist's input"),
            ({"x0": np.zeros((20, 28, 28)), "x1": np.zeros((20, 28, 28)), "x": None}, "2 input array(s)"),
        ],
    )
    def test_bad_datasets(self, tmp_path, arrays, fragment):
        arrays = {key: value for key, value in arrays.items() if value is not None}
        if "x0" in arrays:
            path = tmp_path / "two.npz"
            np.savez(path, **arrays)
            data = str(path)
        else:
            data = self.dataset(tmp_path, **arrays)
        assert_one_line_error(self.run(tmp_path, "--dataset", data), fragment)

    def test_cpus_the_machine_does_not_have(self, tmp_path):
        assert_one_line_error(self.run(tmp_path, "--cpus", "99"), "--cpus 99: device 'local' has no CPU 99")

    @pytest.mark.parametrize("timeout", ["0", "-5", "nan"])
    def test_a_timeout_that_is_not_positive(self, tmp_path, timeout):
        assert_one_line_error(self.run(tmp_path, "--timeout", timeout), "--timeout must be more than 0 seconds")

    def test_a_device_file_whose_name_would_leave_the_results_folder(self, tmp_path):
        device = tmp_path / "...toml"
        device.write_text('transport = "local"\n')
        assert_one_line_error(self.run(tmp_path, "--device", str(device)), "the device name '..'")


class TestBadInput:
    def test_unknown_device(self, capfd):
        assert_one_line_error(run_main(capfd, "run", "--device", "pi9", "--model", "mnist"), "unknown device 'pi9'")

    def test_invalid_device_file_names_file_and_key(self, tmp_path, capfd):
        device = tmp_path / "broken.toml"
        device.write_text('transport = "local"\nthreads = "four"\n')
        assert_one_line_error(
            run_main(capfd, "run", "--device", str(device), "--model", "mnist"), str(device), "'threads' must be int"
        )

    def test_device_file_that_is_not_toml(self, tmp_path, capfd):
        device = tmp_path / "broken.toml"
        device.write_text("transport = = local\n")
        assert_one_line_error(run_main(capfd, "run", "--device", str(device), "--model", "mnist"), "invalid TOML")

    def test_unknown_model(self, capfd):
        assert_one_line_error(run_main(capfd, "run", "--device", "local", "--model", "resnet-9000"), "unknown model")

    def test_corrupt_model(self, tmp_path, capfd):
        bad = tmp_path / "bad.tflite"
        bad.write_bytes(b"\x00" * 64)
        assert_one_line_error(run_main(capfd, "run", "--device", "local", "--model", str(bad)), "not a TFLite model")

    def test_bad_cpus(self, capfd):
        assert_one_line_error(
            run_main(capfd, "run", "--device", "local", "--model", "mnist", "--cpus", "a,b"), "--cpus"
        )

    def test_bad_rounds(self, capfd):
        assert_one_line_error(
            run_main(capfd, "run", "--device", "local", "--model", "mnist", "--rounds", "0"), "--rounds"
        )

    def test_results_folder_that_cannot_be_created(self, tmp_path, variant_cache, capfd):
        blocker = tmp_path / "file-not-folder"
        blocker.write_text("")
        assert_one_line_error(
            run_main(
                capfd,
                "run",
                "--device",
                "local",
                "--model",
                "mnist",
                "--variants",
                "float32",
                "--results-dir",
                str(blocker),
                "--cache-dir",
                str(variant_cache),
            ),
            "cannot create results folder",
        )


def test_devices_list_shows_the_inventory():
    completed = run_edgebench("devices", "list")
    assert completed.returncode == 0
    assert "local" in completed.stdout and "the host running edgebench" in completed.stdout


def test_a_user_model_without_a_dataset_is_timed_without_accuracy(tmp_path, mnist, variant_cache):
    user_model = tmp_path / "user.tflite"
    shutil.copy(mnist.model_path, user_model)
    completed = run_edgebench(
        "run", "--device", "local", "--model", str(user_model), "--variants", "float32,dynamic-int8", *QUICK,
        "--results-dir", str(tmp_path / "results"), "--cache-dir", str(variant_cache), "--json",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    variants = {v["name"]: v for v in json.loads(completed.stdout)["variants"]}
    assert variants["dynamic-int8"]["top1"] is None and variants["dynamic-int8"]["p50_ms"] > 0


def test_a_variant_that_disagrees_with_float32_is_flagged():
    """What tflite-runtime 2.14 did to per-channel hybrid models: it ran them and returned wrong classes."""
    from edgebench.compare.run_summary import summarize
    from tests.helpers import agent_document, latency_samples

    def document(predictions):
        doc = agent_document(latency_samples(1, 100))
        doc["accuracy"]["predictions"] = predictions
        return doc

    truth = [i % 10 for i in range(1000)]
    wrong = [(i * 7) % 10 for i in range(1000)]
    measurements = [
        Measurement("float32", 1, "ok", document(truth)),
        Measurement("dynamic-int8", 1, "ok", document(wrong)),
    ]
    view = summarize(RunRecord({"device": {"name": "pi4"}, "variants": [], "settings": {}}), measurements)
    (warning,) = view.variants[1].warnings
    assert (
        "agrees with float32 on only 20.0% of samples" in warning
        and "does not execute this variant correctly" in warning
    )
    assert view.variants[0].warnings == ()


def test_rounds_are_chosen_from_what_the_first_round_cost():
    """Three rounds where every variant timed in under 3 s (two more fresh processes cost seconds), one where a
    variant took longer (a large model on a slow board: a round can take minutes)."""
    from edgebench.run.runner import automatic_rounds

    def measured(seconds: float, status: str = "ok") -> Measurement:
        samples = [seconds * 1e6 / 100] * 100
        return Measurement("v", 1, status, {"timing": {"samples_us": samples}} if status == "ok" else None)

    assert automatic_rounds([measured(1.2), measured(2.9)]) == 3
    assert automatic_rounds([measured(1.2), measured(3.5)]) == 1
    assert automatic_rounds([measured(1.0), Measurement("w", 1, "failed", None)]) == 3  # a failed one costs nothing
    assert automatic_rounds([Measurement("w", 1, "failed", None)]) == 1
    stats_only = Measurement("v", 1, "ok", {"timing": {"samples_us": [], "stats": {"mean": 40_000.0, "count": 100}}})
    assert automatic_rounds([stats_only]) == 1  # benchmark_model: 100 runs of 40 ms
