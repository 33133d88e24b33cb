"""One measurement per device at a time: two real `edgebench run` processes on one local and one SSH device."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time

from edgebench.agent import agent
from tests.helpers import assert_one_line_error, run_edgebench

QUICK = ["--samples", "0", "--fidelity-samples", "0", "--min-runs", "10", "--warmup-seconds", "0", "--rounds", "1"]


# Long enough that the second `edgebench run` has started and met the lock even on a busy shared machine,
# where starting a Python that imports the runtime can take many seconds.
HOLD_SECONDS = "20"


def start_run(device, results, cache, *extra, env=None, min_seconds=HOLD_SECONDS):
    """A run in the background that holds the device for a while."""
    return subprocess.Popen(
        [sys.executable, "-m", "edgebench", "run", "--device", str(device), "--model", "mnist", "--variants", "float32",
         *QUICK, "--min-seconds", min_seconds, "--results-dir", str(results), "--cache-dir", str(cache), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def wait_for(path_pattern: str, root, timeout=180):
    """Poll until a file the first run writes exists: no fixed sleep, which a busy machine outlasts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(root.glob(path_pattern)):
            return
        time.sleep(0.1)
    raise AssertionError(f"{path_pattern} never appeared under {root}")


def test_a_second_local_run_is_refused_or_waits_its_turn(tmp_path, variant_cache):
    results = tmp_path / "results"
    locks = tmp_path / "locks"
    env = {**os.environ, "EDGEBENCH_LOCK_DIR": str(locks)}
    first = start_run("local", results, variant_cache, env=env)
    wait_for("local.owner.json", locks)  # the host lock is held
    refused = run_edgebench("run", "--device", "local", "--model", "mnist", "--variants", "float32", *QUICK,
                            "--results-dir", str(results), "--cache-dir", str(variant_cache), env=env)  # fmt: skip
    assert_one_line_error(refused, "device local is in use by run ", f"(pid {first.pid} on ", "--wait SECONDS")
    queued = run_edgebench("run", "--device", "local", "--model", "mnist", "--variants", "float32", *QUICK,
                           "--min-seconds", "0.1", "--wait", "120", "--results-dir", str(results),
                           "--cache-dir", str(variant_cache), env=env)  # fmt: skip
    first.communicate(timeout=120)
    assert first.returncode == 0 and queued.returncode == 0, queued.stderr
    # Waiting is said, with who holds the device: a line that stays, even in a log.
    assert "waiting for device local (held by run " in queued.stderr and f"(pid {first.pid} on " in queued.stderr
    # The refused run left nothing behind (no folder to index or pick as a baseline); the queued one
    # measured only after the first had finished.
    folders = sorted(p for p in (results / "local").iterdir())
    assert len(folders) == 2
    (first_doc,) = [json.loads(p.read_text()) for p in folders[0].glob("float32.json")]
    (second_doc,) = [json.loads(p.read_text()) for p in folders[1].glob("float32.json")]
    assert first_doc["finished_at"] <= second_doc["started_at"]


def test_two_controllers_on_one_ssh_board_are_kept_apart_by_the_lease_on_the_board(
    ssh_host, tmp_path, variant_cache
):  # fmt: skip
    """Two controllers (their own host locks, as on two machines) share one board: only the lease in the
    board's workdir can see the other, and it does."""
    device = ssh_host.device_file(tmp_path / "shared-board.toml", workdir=str(tmp_path / "board-workdir"))
    controller_a = {**os.environ, "HOME": str(tmp_path), "EDGEBENCH_LOCK_DIR": str(tmp_path / "locks-a")}
    controller_b = {**os.environ, "HOME": str(tmp_path), "EDGEBENCH_LOCK_DIR": str(tmp_path / "locks-b")}
    results_a, results_b = tmp_path / "results-a", tmp_path / "results-b"
    first = start_run(device, results_a, variant_cache, env=controller_a)
    wait_for(f"{agent.LEASE_FOLDER}/owner.json", tmp_path / "board-workdir")  # the board's lease is taken
    lease = json.loads((tmp_path / "board-workdir" / agent.LEASE_FOLDER / "owner.json").read_text())
    assert lease["pid"] == first.pid and lease["expires"] > time.time() + 1800
    refused = run_edgebench("run", "--device", str(device), "--model", "mnist", "--variants", "float32", *QUICK,
                            "--results-dir", str(results_b), "--cache-dir", str(variant_cache),
                            env=controller_b)  # fmt: skip
    assert_one_line_error(refused, "device shared-board is in use by run ", f"(pid {first.pid} on ")
    assert not results_b.exists() or not list(results_b.glob("*/*"))
    first.communicate(timeout=180)
    assert first.returncode == 0
    assert not (tmp_path / "board-workdir" / agent.LEASE_FOLDER).exists()  # given back at the end


def test_an_expired_lease_is_taken_over_and_a_live_one_is_not(tmp_path):
    """A controller that died leaves its lease behind; it stops anyone only until it expires."""
    workdir = str(tmp_path)
    dead = {"id": "dead-run", "controller": "lab-a", "pid": 1, "command": "edgebench run"}
    assert agent.lease("acquire", workdir, dead, ttl=0.5)["acquired"]
    alive = {"id": "new-run", "controller": "lab-b", "pid": 2, "command": "edgebench run"}
    answer = agent.lease("acquire", workdir, alive, ttl=60)
    assert not answer["acquired"] and answer["holder"]["id"] == "dead-run"
    time.sleep(0.6)
    assert agent.lease("acquire", workdir, alive, ttl=60)["acquired"]
    assert not agent.lease("renew", workdir, dead, ttl=60)["acquired"]  # the dead one cannot come back
    assert agent.lease("renew", workdir, alive, ttl=60)["acquired"]
    assert agent.lease("release", workdir, alive, ttl=60)["released"]
    assert agent.lease("acquire", workdir, dead, ttl=60)["acquired"]


def test_a_killed_controller_leaves_nothing_that_blocks_the_next_run(ssh_host, tmp_path, variant_cache):
    """SIGKILL, as an OOM killer or a lost CI job does it: no code of the dead run gives its lease back. The
    next run on this host sees the holder's pid is gone (with its start time, so a reused pid is not taken for
    it), takes the lease at once instead of after its expiry (32 minutes with the defaults), and closes the
    dead run as interrupted."""
    workdir = tmp_path / "board-workdir"
    device = ssh_host.device_file(tmp_path / "board.toml", workdir=str(workdir))
    env = {**os.environ, "HOME": str(tmp_path), "EDGEBENCH_LOCK_DIR": str(tmp_path / "locks")}
    results = tmp_path / "results"
    killed = start_run(device, results, variant_cache, env=env, min_seconds="60")
    wait_for(f"{agent.AGENTS_FOLDER}/*.json", workdir)  # its agent is measuring on the board
    (killed_folder,) = list(results.glob("board/*"))
    killed.kill()
    killed.communicate()
    lease = json.loads((workdir / agent.LEASE_FOLDER / "owner.json").read_text())
    assert lease["pid"] == killed.pid and lease["expires"] > time.time() + 1800  # left behind, far from expiring
    started = time.monotonic()
    second = run_edgebench("run", "--device", str(device), "--model", "mnist", "--variants", "float32", *QUICK,
                           "--min-seconds", "0.1", "--results-dir", str(results), "--cache-dir", str(variant_cache),
                           env=env)  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert time.monotonic() - started < 120
    assert f"took over the lease of run {lease['id']}: its controller (pid {killed.pid} on this host) is dead" in (
        second.stderr
    )
    dead_run = json.loads((killed_folder / "run.json").read_text())
    assert dead_run["status"] == "interrupted" and f"pid {killed.pid}" in dead_run["error"]
    (new_folder,) = [f for f in results.glob("board/*") if f != killed_folder]
    assert json.loads((new_folder / "run.json").read_text())["lease_taken_over"]["id"] == lease["id"]
    with contextlib.closing(sqlite3.connect(results / "history.sqlite")) as index:  # and indexed so
        assert index.execute("SELECT status FROM runs WHERE run_id = ?", (dead_run["run_id"],)).fetchall() == [
            ("interrupted",)
        ]


def test_a_live_controllers_lease_is_never_taken_for_a_dead_one(tmp_path):
    """Only certain death counts: this process (alive), a pid reused by a later process, another host."""
    from edgebench.core.controller import Controller
    from edgebench.run.lease import dead_holder

    me = Controller.current()
    assert not dead_holder({"id": "x", "process": me.as_dict()})
    reused = {**me.as_dict(), "started": me.started - 3600}  # same pid, started an hour earlier: another process
    assert dead_holder({"id": "x", "process": reused})
    assert not dead_holder({"id": "x", "process": {**reused, "host": "another-host"}})
    assert not dead_holder({"id": "x", "process": {**reused, "pid_namespace": 1}})  # another container
    assert not dead_holder({"id": "x", "controller": "old-edgebench", "pid": 1})  # an older lease: expiry only
