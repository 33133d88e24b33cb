"""A night on a device farm: six real sshd boards, this machine and the emulated Pi 4, measured at once.

One board freezes mid-run, one loses its sshd, one runs out of disk, one fails its
health check; every other device's results must be complete and correct, the farm
summary must say what happened to each, and the exit code must say "cannot tell".
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from edgebench.accuracy.evaluate import evaluate_file
from edgebench.core.fileio import sha256_file
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
from tests.helpers import run_edgebench, sshd_processes

SAMPLES = 100
# Eight agents share this machine's two cores: a heartbeat can be late by seconds, so a stall is 20 s of silence.
STALL = 20
GOOD = ("good0", "good1", "local", "pi4-emulated")


@pytest.fixture(scope="module")
def night(tmp_path_factory, pi4, variant_cache, mnist_variants):
    """The farm run, with its four faults injected while it runs; the test functions read what it left."""
    tmp_path = tmp_path_factory.mktemp("farm-night")
    devices, results = tmp_path / "devices", tmp_path / "results"
    boards = start_boards(tmp_path / "boards", ["good0", "good1", "frozen", "killed", "fulldisk", "unhealthy"])
    stopped: list[int] = []
    tiny = tmp_path / "tiny-disk"
    try:
        for name, host in boards.items():
            fields = {"python": BARE_PYTHON} if name == "unhealthy" else {}
            if name == "fulldisk":
                fields["workdir"] = str(tiny)
            board_file(host, devices, name, **fields)
        # Room for the agent, the data files and float32 (so the health check passes), not for int8 too.
        needed = sum(os.path.getsize(p) for p in (mnist_variants["float32"].path, _dataset())) + 2_500_000
        tiny.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={needed // 1024}k", "tmpfs", str(tiny)],
                                 capture_output=True, text=True)  # fmt: skip
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
        (devices / "local.toml").write_text('transport = "local"\ntags = ["host"]\n')
        shutil.copy(pi4, devices / "pi4-emulated.toml")
        farm = write_farm(tmp_path / "nightly.toml", ["tag:board", "local", "pi4-emulated"], ["float32", "int8"],
                          samples=SAMPLES, min_seconds=2.0, stall_timeout=STALL,
                          sections="[retry]\nconnect_attempts = 2\n[health]\nquarantine_after = 3\n")  # fmt: skip
        env = farm_env(tmp_path)
        command = farm_command(farm, devices, results, variant_cache, "--json")
        started = time.monotonic()
        process = start_farm(command, env)
        try:
            # Freeze the board while its int8 agent is measuring: seen as a process, not guessed from a delay
            # after float32's file (on a slow machine int8 can be over within that delay).
            wait_for(
                lambda: _measuring(tmp_path / "boards" / "frozen", "int8"), 600, "int8 measuring on the frozen board"
            )
            for pid in sshd_processes(boards["frozen"].process.pid, with_listener=True):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            wait_for(lambda: list(results.glob("killed/*/float32.json")), 300, "float32 on the killed board")
            boards["killed"].stop()
            stdout, stderr = process.communicate(timeout=900)
        except BaseException:
            process.kill()
            print("farm run's stderr:", process.communicate()[1][-5000:])  # shown with the failure
            raise
        took = time.monotonic() - started
        listed = run_edgebench("devices", "list", "--devices-dir", str(devices), "--results-dir", str(results))
        check = run_edgebench("farm", "check", "--results-dir", str(results), "--format", "json")
        lingering = _agents_left(tmp_path, exclude="frozen")
        yield {"code": process.returncode, "stdout": stdout, "stderr": stderr, "results": results, "took": took,
               "listed": listed, "check": check, "lingering": lingering, "devices": devices}  # fmt: skip
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        for host in boards.values():
            host.stop()
        subprocess.run(["umount", "-l", str(tiny)], capture_output=True)


def _dataset():
    from edgebench.zoo import load_zoo_model

    return load_zoo_model("mnist").dataset_path


def _measuring(board, variant: str) -> list[str]:
    """The agent processes measuring `variant` on `board` (the variant's file name is in the agent's argv)."""
    return [cmdline for _, cmdline in agent_processes(board) if f"/{variant}-" in cmdline and "--lease" not in cmdline]


def _agents_left(root, exclude: str) -> list[str]:
    """Agent processes still running from this test's boards (the frozen one cannot end its own)."""
    return [cmdline for _, cmdline in agent_processes(root) if f"/{exclude}/" not in cmdline]


def test_the_farm_ends_with_one_json_answer_and_exit_2(night):
    assert night["code"] == 2, night["stderr"]  # devices that could not run: cannot tell, never "fine"
    assert "Traceback" not in night["stderr"]
    summary = json.loads(night["stdout"])
    assert summary["exit_code"] == 2 and summary["status"] == "done"
    assert summary["regressions"] == []  # a first night has no baseline to regress from


def test_every_healthy_device_is_complete_and_correct(night, mnist_variants, mnist_test_set):
    summary = json.loads(night["stdout"])
    table = cells(summary)
    for device in GOOD:
        assert states(summary)[device] == ("done", None), states(summary)[device]
        for variant in ("float32", "int8"):
            cell = table[(device, variant)]
            assert cell["status"] == "ok", cell
            assert cell["p50_ms"] > 0 and cell["speedup"] > 0
    # On the host's own runtime the boards' top-1 is exactly the host's; the emulated Pi's within a point.
    for variant in ("float32", "int8"):
        here = evaluate_file(mnist_variants[variant].path, mnist_test_set, SAMPLES).top1
        folder = next(night["results"].glob("good0/*"))
        on_board = json.loads((folder / f"{variant}.json").read_text())["accuracy"]["top1"]
        assert on_board == here
        pi = json.loads((next(night["results"].glob("pi4-emulated/*")) / f"{variant}.json").read_text())
        assert abs(pi["accuracy"]["top1"] - here) <= 0.01
        assert pi["environment"]["machine"] == "aarch64"
    assert table[("good0", "int8")]["top1_delta_pp"] is not None


def test_the_summary_says_what_happened_to_each_faulty_board(night):
    summary = json.loads(night["stdout"])
    state, table = states(summary), cells(summary)
    assert state["frozen"][0] == "failed" and "stalled" in state["frozen"][1], state["frozen"]
    assert table[("frozen", "float32")]["status"] == "ok"  # measured before it froze: kept
    assert state["killed"][0] == "failed", state["killed"]
    assert any(word in state["killed"][1] for word in ("lost", "refused")), state["killed"]
    assert table[("killed", "float32")]["status"] == "ok"
    assert state["fulldisk"] == ("done", None)
    assert table[("fulldisk", "float32")]["status"] == "ok"
    assert table[("fulldisk", "int8")]["status"] == "failed"
    assert "out of disk space" in table[("fulldisk", "int8")]["error"]
    assert state["unhealthy"][0] == "quarantined" and "numpy is not installed" in state["unhealthy"][1]
    undecided = " ".join(summary["undecided"])
    for name in ("frozen", "killed", "unhealthy", "fulldisk mnist int8"):
        assert name in undecided


def test_farm_check_gives_the_same_answer(night):
    assert night["check"].returncode == 2, night["check"].stderr
    again = json.loads(night["check"].stdout)
    first = json.loads(night["stdout"])
    assert again["undecided"] == first["undecided"]
    assert cells(again) == cells(first)


def test_the_quarantine_is_recorded_and_listed(night):
    listed = " ".join(night["listed"].stdout.split())
    assert "unhealthy" in listed and "QUARANTINED since" in listed
    assert "a passing health check in a farm run releases it" in listed
    recorded = json.loads((night["results"] / "_farms" / "devices.json").read_text())["devices"]
    assert recorded["unhealthy"]["quarantine"]["kind"] == "health-check"
    assert recorded["frozen"]["consecutive_failures"] == 1 and recorded["frozen"].get("quarantine") is None


def test_nothing_is_left_running_and_no_lease_is_left_behind(night):
    assert night["lingering"] == []
    for name in ("good0", "good1", "fulldisk"):
        leases = list((night["devices"].parent / "boards" / name).rglob("edgebench.lease"))
        leases += list((night["devices"].parent / "tiny-disk").glob("edgebench.lease")) if name == "fulldisk" else []
        assert leases == [], leases


def test_every_run_folder_belongs_to_the_farm_run(night):
    summary = json.loads(night["stdout"])
    for run_file in night["results"].glob("*/*/run.json"):
        run = json.loads(run_file.read_text())
        assert run["farm_run"] == summary["farm_run"] and run["attempt"] == 1
        assert run["model"]["sha256"] == sha256_file(run["model"]["path"])
