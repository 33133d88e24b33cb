"""Farm runs on a few loopback boards: quarantine, retries, re-attempts, resume, two farms sharing boards."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from edgebench.farm.config import FarmFileError, load_farm_file, select_devices
from edgebench.run.health import Cooldown, HealthCheckFailed, HealthLimits, check_health, cool_down
from tests.farm_helpers import (
    BARE_PYTHON,
    agent_processes,
    board_file,
    cells,
    farm_command,
    farm_env,
    start_boards,
    start_farm,
    states,
    wait_for,
    write_farm,
)
from tests.helpers import assert_one_line_error, run_edgebench, run_main


def farm_json(results, farm_run: str | None = None) -> dict:
    paths = sorted((results / "_farms").glob("*/farm.json"))
    if farm_run:
        paths = [p for p in paths if p.parent.name == farm_run]
    return json.loads(paths[-1].read_text())


def test_quarantine_by_health_check_lifts_when_it_passes_and_by_failures_needs_a_release(tmp_path, variant_cache):
    boards = start_boards(tmp_path / "boards", ["sick", "flaky"])
    devices, results = tmp_path / "devices", tmp_path / "results"
    try:
        board_file(boards["sick"], devices, "sick", python=BARE_PYTHON)  # no numpy: fails its health check
        board_file(boards["flaky"], devices, "flaky")
        boards["flaky"].stop()  # refuses connections all night
        farm = write_farm(tmp_path / "farm.toml", ["tag:board"], ["float32", "int8"], min_runs=5, min_seconds=0.1,
                          sections="[health]\nquarantine_after = 2\n[retry]\nconnect_attempts = 1\n")  # fmt: skip
        env = farm_env(tmp_path)

        def night():
            completed = subprocess.run(farm_command(farm, devices, results, variant_cache, "--json"),
                                       capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
            assert completed.returncode == 2 and "Traceback" not in completed.stderr, completed.stderr
            return states(json.loads(completed.stdout))

        first = night()
        assert first["sick"][0] == "quarantined" and "failed its health check" in first["sick"][1]
        assert first["flaky"][0] == "failed" and "connection refused" in first["flaky"][1]
        second = night()
        assert second["flaky"][0] == "quarantined" and "failed 2 farm runs in a row" in second["flaky"][1]
        third = night()
        assert third["flaky"][0] == "quarantined" and "edgebench devices release flaky" in third["flaky"][1]
        assert third["sick"][0] == "quarantined"  # checked again, still sick
        listed = run_edgebench("devices", "list", "--devices-dir", str(devices), "--results-dir", str(results))
        assert listed.stdout.count("QUARANTINED") == 2

        # The sick board is cured: the next farm run's health check passes, so it is released and measured.
        board_file(boards["sick"], devices, "sick")
        released = run_edgebench("devices", "release", "flaky", "--results-dir", str(results))
        assert released.returncode == 0 and "released flaky" in released.stderr
        boards["flaky"].start()
        fourth = night()  # still exit 2: no baseline yet for either board
        assert fourth == {"sick": ("done", None), "flaky": ("done", None)}
        recorded = json.loads((results / "_farms" / "devices.json").read_text())["devices"]
        assert recorded["sick"]["quarantine"] is None and "passed health check" in recorded["sick"]["released"]["by"]
        assert recorded["flaky"]["consecutive_failures"] == 0
    finally:
        for host in boards.values():
            host.stop()


def test_a_board_that_comes_up_late_is_reached_by_retrying_with_backoff(tmp_path, variant_cache):
    boards = start_boards(tmp_path / "boards", ["late"])
    devices, results = tmp_path / "devices", tmp_path / "results"
    try:
        board_file(boards["late"], devices, "late", connect_timeout=1)
        boards["late"].stop()
        farm = write_farm(tmp_path / "farm.toml", ["late"], ["float32"], min_runs=5, min_seconds=0.1,
                          sections="[retry]\nconnect_attempts = 5\n")  # fmt: skip
        process = start_farm(farm_command(farm, devices, results, variant_cache, "--json"), farm_env(tmp_path))
        time.sleep(4)  # the first attempts are refused
        boards["late"].start()
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 2, stderr  # measured; no baseline yet
        assert states(json.loads(stdout))["late"] == ("done", None)
    finally:
        boards["late"].stop()


def test_a_measurement_that_failed_is_re_run_as_a_labelled_attempt_never_silently(
    tmp_path, variant_cache, mnist_variants
):  # fmt: skip
    """The board's OOM killer ends int8's agent once; the farm file allows one more attempt."""
    boards = start_boards(tmp_path / "boards", ["oom"])
    devices, results = tmp_path / "devices", tmp_path / "results"
    try:
        board_file(boards["oom"], devices, "oom")
        farm = write_farm(tmp_path / "farm.toml", ["oom"], ["float32", "int8"], min_runs=5, min_seconds=3.0,
                          sections="[retry]\nrerun_failed = 1\n")  # fmt: skip
        process = start_farm(farm_command(farm, devices, results, variant_cache, "--json"), farm_env(tmp_path))
        wait_for(lambda: list(results.glob("oom/*/float32.json")), 300, "float32 measured")
        int8 = mnist_variants["int8"].sha256
        killed = wait_for(lambda: _kill_agent(tmp_path / "boards" / "oom", int8), 60, "int8's agent")
        stdout, stderr = process.communicate(timeout=300)
        assert killed and process.returncode == 2, stderr
        summary = json.loads(stdout)
        cell = cells(summary)[("oom", "int8")]
        assert cell["status"] == "ok" and cell["attempt"] == 2, cell
        assert cells(summary)[("oom", "float32")]["attempt"] == 1
        runs = sorted((json.loads(p.read_text()) for p in results.glob("oom/*/run.json")), key=lambda r: r["run_id"])
        first, second = runs
        assert [(m["variant"], m["status"]) for m in first["measurements"]] == [("float32", "ok"), ("int8", "failed")]
        assert "SIGKILL" in first["measurements"][1]["error"]  # the failure stays on record
        assert second["attempt"] == 2 and second["retry_of"] == first["run_id"]
        assert [m["variant"] for m in second["measurements"]] == ["int8"]
    finally:
        boards["oom"].stop()


def _kill_agent(board_folder, sha256: str) -> bool:
    for pid, cmdline in agent_processes(board_folder):
        words = cmdline.split()
        # The agent itself (python agent.py ...), not the shells that started it.
        if f"--sha256 {sha256}" in cmdline and len(words) > 1 and words[1].endswith("agent.py"):
            os.kill(pid, signal.SIGKILL)
            return True
    return False


def test_sigterm_stops_every_device_cleanly_and_resume_measures_only_what_is_missing(tmp_path, variant_cache):
    boards = start_boards(tmp_path / "boards", ["a", "b"])
    devices, results = tmp_path / "devices", tmp_path / "results"
    try:
        for name, host in boards.items():
            board_file(host, devices, name)
        (devices / "local.toml").write_text('transport = "local"\ntags = ["board"]\n')
        farm = write_farm(tmp_path / "farm.toml", ["tag:board"], ["float32", "dynamic-int8", "int8"], min_runs=5,
                          min_seconds=2.0)  # fmt: skip
        env = farm_env(tmp_path)
        process = start_farm(farm_command(farm, devices, results, variant_cache), env)
        # Stopped as soon as one device has measured something: on a busy machine the others may be anywhere
        # from waiting to measuring (even done, if one raced ahead), and each must end in a recorded state.
        wait_for(lambda: list(results.glob("*/*/float32.json")), 300, "a first measurement")
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 143, stderr
        assert "farm interrupted by SIGTERM" in stderr and "Traceback" not in stderr
        stopped = farm_json(results)
        assert stopped["status"] == "interrupted"
        state = {name: d["state"] for name, d in stopped["devices"].items()}
        assert set(state.values()) <= {"interrupted", "done"} and "interrupted" in state.values(), (state, stderr)
        for run_file in results.glob("*/*/run.json"):
            run = json.loads(run_file.read_text())
            assert run["status"] == ("ok" if state[run["device"]["name"]] == "done" else "interrupted")
        time.sleep(1)  # the boards' watchdogs end their agents when the connection closes
        assert not agent_processes(tmp_path), "an agent kept running after the farm stopped"
        for name in ("a", "b"):
            assert not list((tmp_path / "boards" / name).rglob("edgebench.lease"))

        measured_before = {(p.parent.parent.name, p.stem) for p in results.glob("*/*/*.json") if p.name != "run.json"}
        resumed = subprocess.run(farm_command(farm, devices, results, variant_cache, "--json", "--resume",
                                              stopped["farm_run"]), capture_output=True, text=True, env=env,
                                 timeout=600)  # fmt: skip
        assert resumed.returncode == 2, resumed.stderr
        summary = json.loads(resumed.stdout)
        assert summary["farm_run"] == stopped["farm_run"] and summary["status"] == "done"
        assert {c["status"] for c in cells(summary).values()} == {"ok"}
        for device in ("a", "b", "local"):
            runs = [json.loads(p.read_text()) for p in results.glob(f"{device}/*/run.json")]
            second = [r for r in runs if r.get("resumed")]
            before = {v for d, v in measured_before if d == device}
            if state[device] == "done":
                assert second == []  # a device that had finished is left alone
                continue
            assert len(second) == 1
            again = {m["variant"] for m in second[0]["measurements"]}
            assert not again & before  # nothing measured twice
            assert again | before == {"float32", "dynamic-int8", "int8"}
    finally:
        for host in boards.values():
            host.stop()


def test_two_farm_runs_over_the_same_boards_never_measure_one_board_at_once(tmp_path, variant_cache):
    boards = start_boards(tmp_path / "boards", ["x", "shared", "y"])
    devices, results = tmp_path / "devices", tmp_path / "results"
    try:
        for name, host in boards.items():
            board_file(host, devices, name)
        env = farm_env(tmp_path)
        farms = [write_farm(tmp_path / f"{name}.toml", devices_, ["float32", "int8"], min_runs=5, min_seconds=1.0)
                 for name, devices_ in (("one", ["x", "shared"]), ("two", ["shared", "y"]))]  # fmt: skip
        processes = [start_farm(farm_command(f, devices, results, variant_cache, "--json"), env) for f in farms]
        outputs = [p.communicate(timeout=600) for p in processes]
        for process, (stdout, stderr) in zip(processes, outputs, strict=True):
            # Both finished. The later one may find the earlier one's run of the shared board as its
            # baseline, and on a busy machine call it slower (1, or 0 once its A/B confirmation finds the
            # night was noise); otherwise there is no baseline (2).
            assert process.returncode in (0, 1, 2), stderr
            assert {s for s, _ in states(json.loads(stdout)).values()} == {"done"}
        windows = []
        for document in results.glob("shared/*/*.json"):
            agent = json.loads(document.read_text())
            if agent.get("kind") == "edgebench.agent-result":
                windows.append((agent["started_unix"], agent["finished_unix"]))
        assert len(windows) == 4
        windows.sort()
        for (_, end), (start, _) in itertools.pairwise(windows):
            assert start >= end, f"two measurements overlapped on the shared board: {windows}"
    finally:
        for host in boards.values():
            host.stop()


# ---- farm files ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "key 'devices' is required"),
        ('devices = ["local"]\n', "at least one [[models]] table is required"),
        ('devices = ["local"]\nbogus = 1\n[[models]]\nmodel = "mnist"\n', "unknown key 'bogus'"),
        ('devices = ["local"]\n[[models]]\nmodel = "mnist"\nvariants = ["int3"]\n', "models[0].variants"),
        ('devices = ["local"]\n[[models]]\nmodel = "mnist"\n[run]\nrounds = 0\n', "'run.rounds' must be at least 1"),
        ('devices = ["local"]\n[[models]]\nmodel = "mnist"\n[run]\ntimeout = "1h"\n', "'run.timeout' must be"),
        (
            'devices = ["local"]\n[[models]]\nmodel = "mnist"\n[run]\nmin_seconds = 5\nmax_seconds = 2\n',
            "need 'run.min_seconds' <= 'run.max_seconds'",
        ),
        ('devices = ["local"]\n[[models]]\nmodel = "mnist"\n[baseline]\nthreshold = "x"\n', "baseline.threshold"),
        ('devices = ["local"]\n[[models]]\nmodel = "mnist"\n[health]\nquarantine_after = 0\n', "quarantine_after"),
        ('devices = ["local"]\n[[models]]\nmodel = "mnist"\n[baseline]\nconfirm = "yes"\n', "'baseline.confirm' must"),
        ('devices = ["local"]\n[[models]]\nmodel = "mnist"\n[baseline]\nconfirm_pairs = 2\n', "at least 3"),
        ("devices = [\n", "invalid TOML"),
    ],
)
def test_a_bad_farm_file_is_one_line_naming_the_file_and_key(tmp_path, text, message, capfd):
    farm = tmp_path / "bad.toml"
    farm.write_text(text)
    with pytest.raises(FarmFileError, match=r"bad\.toml") as raised:
        load_farm_file(farm)
    assert message in str(raised.value)
    completed = run_main(capfd, "farm", "run", str(farm), "--results-dir", str(tmp_path / "results"))
    assert_one_line_error(completed, message)


def test_devices_are_chosen_by_name_path_and_tag_each_once(tmp_path):
    devices = tmp_path / "devices"
    devices.mkdir()
    for name, tags in (("p1", '["pi"]'), ("p2", '["pi", "lab-b"]'), ("phone", '["android"]')):
        (devices / f"{name}.toml").write_text(f'transport = "local"\ntags = {tags}\n')
    (tmp_path / "extra.toml").write_text('transport = "local"\n')
    farm_path = tmp_path / "farm.toml"
    farm_path.write_text(
        'devices = ["tag:pi", "p1", "extra.toml"]\nexclude = ["tag:lab-b"]\n[[models]]\nmodel = "mnist"\n'
    )
    chosen = select_devices(load_farm_file(farm_path), devices)
    assert [d.name for d in chosen] == ["p1", "extra"]
    farm_path.write_text('devices = ["tag:nothing"]\n[[models]]\nmodel = "mnist"\n')
    with pytest.raises(FarmFileError, match=r"no device in the inventory has tag 'nothing'"):
        select_devices(load_farm_file(farm_path), devices)


def test_an_unknown_device_in_a_farm_file_fails_before_anything_is_measured(tmp_path, capfd):
    farm = write_farm(tmp_path / "farm.toml", ["nosuchboard"], ["float32"])
    completed = run_main(capfd, "farm", "run", str(farm), "--results-dir", str(tmp_path / "results"))
    assert_one_line_error(completed, "farm.toml: key 'devices': unknown device 'nosuchboard'")
    assert not (tmp_path / "results").exists()


def test_farm_check_without_farm_runs_says_so(tmp_path, capfd):
    assert_one_line_error(run_main(capfd, "farm", "check", "--results-dir", str(tmp_path)), "no farm runs under")


# ---- health and cool-down: pure checks of probe data ------------------------------------------------------------


def test_the_health_check_names_every_problem():
    probe = {
        "temperature_c": 83.5,
        "free_bytes": 1_000_000,
        "throttled": {"events": ["throttled", "under-voltage since boot"]},
    }
    with pytest.raises(HealthCheckFailed) as failed:
        check_health(probe, HealthLimits(max_temperature_c=80.0, require_free_disk=True), 5_000_000, "pi4")
    message = str(failed.value)
    assert "temperature 83.5 °C is above its ceiling 80 °C" in message
    assert "throttled now (throttled)" in message and "since boot" not in message
    assert "1,000,000 bytes free" in message
    record = check_health({"temperature_c": 50.0, "free_bytes": 10**9}, HealthLimits(80.0, True), 5_000_000, "pi4")
    assert record["problems"] == [] and record["temperature_c"] == 50.0
    # A single run measures what fits: free disk is only recorded there.
    assert check_health({"free_bytes": 10}, HealthLimits(), 5_000_000, "pi4")["free_bytes"] == 10


def test_cool_down_waits_until_the_device_is_cool_and_says_how_long():
    readings = iter([70.0, 66.0, 61.0, 58.0])
    record = cool_down(Cooldown(below_c=60.0, poll_s=0.01), lambda: next(readings), threading.Event())
    assert record["reached"] and record["temperature_c"] == 58.0
    never = cool_down(Cooldown(below_c=20.0, max_wait_s=0.05, poll_s=0.01), lambda: 70.0, threading.Event())
    assert not never["reached"] and never["waited_s"] >= 0.0
    started = time.monotonic()
    cool_down(Cooldown(seconds=0.2), lambda: None, threading.Event())
    assert time.monotonic() - started >= 0.2


def test_a_cool_down_pause_runs_before_every_measurement_but_the_first_and_is_recorded(tmp_path, variant_cache):
    device = tmp_path / "cool.toml"
    device.write_text('transport = "local"\n[thermal]\ncooldown_seconds = 1.5\n')
    completed = run_edgebench(
        "run", "--device", str(device), "--model", "mnist", "--variants", "float32,int8", "--samples", "0",
        "--min-runs", "5", "--min-seconds", "0.1", "--warmup-seconds", "0", "--rounds", "1",
        "--results-dir", str(tmp_path / "r"), "--cache-dir", str(variant_cache), "--json",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    run = json.loads((tmp_path / "r" / "cool").glob("*/run.json").__next__().read_text())
    first, second = run["measurements"]
    assert "context" not in first
    assert second["context"]["cooldown"]["waited_s"] >= 1.5 and second["context"]["cooldown"]["reached"]


def test_a_regression_wins_over_devices_that_could_not_run_and_a_clean_night_is_fine():
    from edgebench.farm.summary import Cell, DeviceResult, FarmSummary

    def night(*devices):
        return FarmSummary("f", "done", "last", 0.05, devices, ("mnist",), ("float32", "int8"))

    fine = DeviceResult("a", "done", None, False, {"mnist": "r1"},
                        (Cell("a", "mnist", "float32", "ok", verdict="same"),
                         Cell("a", "mnist", "int8", "ok", verdict="faster")))  # fmt: skip
    slower = DeviceResult("b", "done", None, False, {"mnist": "r2"},
                          (Cell("b", "mnist", "int8", "ok", verdict="slower", regression=True),))  # fmt: skip
    gone = DeviceResult("c", "failed", "connection refused", False, {"mnist": "none: not run"},
                        (Cell("c", "mnist", "int8", "not run"),))  # fmt: skip
    assert night(fine).exit_code == 0
    assert night(fine, gone).exit_code == 2 and night(fine, gone).undecided == ["c: failed (connection refused)"]
    assert night(fine, slower, gone).exit_code == 1  # the lost board does not hide b's regression
    first_night = DeviceResult("a", "done", None, False, {"mnist": "none: no earlier run"},
                               (Cell("a", "mnist", "int8", "ok"),))  # fmt: skip
    assert night(first_night).exit_code == 2
    assert dataclasses.replace(night(fine), status="interrupted").exit_code == 2  # a night cut short is no "fine"


def test_the_farm_matrix_labels_a_device_whose_latencies_are_no_claim_and_a_refused_variant_is_no_failure():
    """A software GPU (or a tool timing queued GPU work) is marked in the device x variant table like an emulated
    board; a variant the accelerator refuses is a finding: the night can still be fine."""
    from edgebench.farm.summary import Cell, DeviceResult, FarmSummary
    from edgebench.report.farm_table import farm_matrix

    label = "SOFTWARE GPU (SwiftShader Device (Subzero)): placement and fidelity are real, latency is not"
    gpu = DeviceResult("local-gpu", "done", None, False, {"mnist": "r1"},
                       (Cell("local-gpu", "mnist", "float32", "ok", verdict="same"),
                        Cell("local-gpu", "mnist", "int16x8", "refused", error="cannot be fed int16")),
                       no_speed_claims=(label,))  # fmt: skip
    night = FarmSummary("f", "done", "last", 0.05, (gpu,), ("mnist",), ("float32", "int16x8"))
    table = farm_matrix(night)
    assert table.rows[0][0] == "local-gpu (*)" and table.rows[0][-1] == "refused"
    assert f"local-gpu (*): {label}" in table.notes
    assert night.exit_code == 0 and night.undecided == []
