"""A frozen board must not hang a nightly run: real sshd processes stopped with SIGSTOP mid-measurement."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from edgebench.results.store import load_run
from tests.helpers import sshd_processes

STALL = 8  # seconds of silence that make a stall (the agent beats every 5 s)


@pytest.fixture
def board(tmp_path):
    from edgebench.emulated.sshd import make_host, sshd_unavailable_reason

    if sshd_unavailable_reason():
        pytest.skip(sshd_unavailable_reason())
    host = make_host(tmp_path / "frozen-sshd").start()
    stopped: list[int] = []
    yield host, stopped
    for pid in stopped:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    host.stop()


def run_and_freeze(board, tmp_path, variant_cache, *, with_listener: bool, min_seconds: float = 5):
    host, stopped = board
    device = host.device_file(tmp_path / "board.toml")
    results = tmp_path / "results"
    env = {**os.environ, "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "edgebench", "run", "--device", str(device), "--model", "mnist",
         "--variants", "float32,dynamic-int8,int8", "--samples", "0", "--fidelity-samples", "0",
         "--min-runs", "10", "--min-seconds", str(min_seconds), "--warmup-seconds", "0", "--stall-timeout", str(STALL),
         "--results-dir", str(results), "--cache-dir", str(variant_cache)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(results.glob("*/*/float32.json")):
            time.sleep(0.2)
        time.sleep(1.5)  # dynamic-int8 is now measuring on the board
        for pid in sshd_processes(host.process.pid, with_listener=with_listener):
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        frozen_at = time.monotonic()
        _, stderr = process.communicate(timeout=STALL + 120)
        took = time.monotonic() - frozen_at
    finally:
        process.kill()
    (folder,) = sorted(p for p in results.glob("*/*") if p.is_dir())
    return process.returncode, stderr, took, load_run(folder)


def test_a_frozen_session_fails_that_variant_and_the_run_goes_on_over_a_fresh_connection(
    board, tmp_path, variant_cache
):  # fmt: skip
    # 15 s a variant: the stalled agent is still measuring when the stall is seen and the next variant is due.
    code, stderr, _, (summary, measurements) = run_and_freeze(
        board, tmp_path, variant_cache, with_listener=False, min_seconds=15
    )
    assert code == 1 and "Traceback" not in stderr, stderr
    statuses = {m.variant: (m.status, m.error) for m in measurements}
    assert statuses["float32"][0] == "ok" and statuses["int8"][0] == "ok", statuses
    assert statuses["dynamic-int8"][0] == "failed" and statuses["dynamic-int8"][1].startswith("stalled: no output")
    assert summary["status"] == "partial"
    # The stalled agent was still alive on the board (its sshd frozen, it blocks writing its document): int8 was
    # measured only after the board stopped it, through the new connection, and confirmed it gone.
    (int8,) = [m for m in measurements if m.variant == "int8"]
    (leftover,) = int8.context["stopped_leftover_agents"]
    assert leftover["stopped"] and leftover["model"].endswith(".tflite") and "dynamic-int8" in leftover["model"]
    assert "stopped 1 agent(s) an earlier measurement left running" in stderr


def test_a_frozen_board_ends_the_run_within_the_stall_timeout_plus_30s(board, tmp_path, variant_cache):
    code, stderr, took, (summary, measurements) = run_and_freeze(board, tmp_path, variant_cache, with_listener=True)
    assert took < STALL + 30, f"the run took {took:.0f}s to end after the board froze"
    assert code == 1 and "Traceback" not in stderr, stderr
    statuses = {m.variant: (m.status, m.error) for m in measurements}
    assert statuses["float32"][0] == "ok"  # what was measured is kept
    assert statuses["dynamic-int8"][1].startswith("stalled: no output")
    # The next variant's fresh connection finds a board that accepts TCP but never answers: the device is
    # gone, the run ends cleanly (a longer list would mark every later one "not measured").
    assert statuses["int8"][0] == "failed" and "did not speak SSH" in statuses["int8"][1]
    assert summary["status"] == "partial"
