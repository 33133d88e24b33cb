"""Farms across labs: a real redis-server as the broker, lab workers as separate processes, each owning its
own loopback sshd boards and a local device, one submitter and one collector.

Each test has its own redis-server (random port, own data folder, append-only file on), so a restart
or a queue named after a device never reaches another test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgebench.labs.broker import dramatiq_broker, enqueue
from edgebench.labs.jobs import JobRecords
from tests.farm_helpers import BARE_PYTHON, board_file, start_boards, write_farm
from tests.lab_helpers import RedisServer, WorkerProcess, edgebench, lab_env, local_device, wait_until

FAST = {"min_seconds": 0.3, "min_runs": 10, "stall_timeout": 20, "wait": 120}


@pytest.fixture
def broker(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def _submit(farm, url, *extra) -> str:
    submitted = edgebench("farm", "submit", str(farm), "--broker", url, *extra)
    assert submitted.returncode == 0, submitted.stderr
    return submitted.stdout.strip()


def _collect(farm_run, url, results, *extra, timeout=600) -> subprocess.CompletedProcess:
    return edgebench("farm", "collect", farm_run, "--broker", url, "--results-dir", str(results), *extra,
                     timeout=timeout)  # fmt: skip


def _check(results) -> tuple[int, dict]:
    checked = edgebench("farm", "check", "--results-dir", str(results), "--format", "json")
    return checked.returncode, json.loads(checked.stdout)


def _matrix(summary: dict) -> dict:
    """What a farm run decided, without its figures: each device's state and reason, each cell's status and
    verdict, the exit code."""
    return {
        "exit_code": summary["exit_code"],
        "devices": {d["name"]: (d["state"], d["reason"]) for d in summary["devices"]},
        "cells": {
            (c["device"], c["model"], c["variant"]): (c["status"], c["verdict"], c["error"])
            for d in summary["devices"]
            for c in d["cells"]
        },
    }


def _stop_all(workers) -> None:
    for worker in workers:
        worker.stop()


# ---- the normal night ------------------------------------------------------------------------------------------


def test_three_labs_run_one_submission_into_the_same_answer_as_a_local_farm_run(tmp_path, broker, variant_cache):
    labs = {"lab-a": ["a-board0", "a-board1"], "lab-b": ["b-board0", "b-board1"], "lab-c": ["c-board0", "c-sick"]}
    boards = start_boards(tmp_path / "boards", [name for names in labs.values() for name in names])
    everything = tmp_path / "all-devices"  # the same device files in one folder, for the local farm run
    workers = []
    try:
        for lab, names in labs.items():
            folder = tmp_path / lab / "devices"
            for name in names:
                fields = {"python": BARE_PYTHON} if name == "c-sick" else {}
                board_file(boards[name], folder, name, **fields)
                board_file(boards[name], everything, name, **fields)
            local_device(folder, f"{lab}-host")
            local_device(everything, f"{lab}-host")
            workers.append(WorkerProcess(tmp_path, lab, folder, broker.url, variant_cache).start())
        farm = write_farm(tmp_path / "nightly.toml", ["tag:board", "tag:host"], ["float32", "int8"], **FAST)
        farm_run = _submit(farm, broker.url)
        results = tmp_path / "results"
        # A collector that runs mid-night writes what is there and says so (exit 2: cannot tell yet) ...
        early = _collect(farm_run, broker.url, results)
        assert early.returncode == 2, early.stderr
        # ... and one that was down all night catches up from the broker alone.
        collected = _collect(farm_run, broker.url, results, "--wait")
        assert collected.returncode == 2, collected.stderr  # no baseline yet, and c-sick is quarantined
        assert "(final)" in collected.stderr
        again = _collect(farm_run, broker.url, results)
        assert again.returncode == 2 and "(final)" in again.stderr

        status = edgebench("farm", "status", farm_run, "--broker", broker.url, "--format", "json")
        rows = json.loads(status.stdout)["jobs"]
        assert {(r["device"], r["lab"]) for r in rows} == {(d, lab) for lab, names in labs.items()
                                                           for d in [*names, f"{lab}-host"]}  # fmt: skip
        assert {r["state"] for r in rows if r["device"] != "c-sick"} == {"done"}

        # A duplicate delivery of a finished job is dropped: nothing is measured twice.
        job = JobRecords(broker.client()).read(farm_run, "a-board0", "mnist")
        enqueue(dramatiq_broker(broker.client(), 60), job["payload"])
        wait_until(lambda: "a-board0 mnist: not measured (finished: done)" in workers[0].text(), 60, "the duplicate")
        code, remote = _check(results)
        assert code == 2
        assert sum(len(d["cells"]) for d in remote["devices"]) == 9 * 2

        local_results = tmp_path / "local-results"
        local = subprocess.run([sys.executable, "-m", "edgebench", "farm", "run", str(farm), "--devices-dir",
                                str(everything), "--results-dir", str(local_results), "--cache-dir",
                                str(variant_cache), "--json"], capture_output=True, text=True,
                               env=lab_env(tmp_path, "controller"), timeout=900)  # fmt: skip
        local_code, local_summary = _check(local_results)
        assert local.returncode == local_code == code
        assert _matrix(remote) == _matrix(local_summary)
        sick = {d["name"]: d for d in remote["devices"]}["c-sick"]
        assert sick["state"] == "quarantined" and "health check" in sick["reason"]
        # The collected runs are whole run folders, indexed like local ones: compare and history work on them.
        history = edgebench("history", "--results-dir", str(results), "--device", "a-board0", "--format", "json")
        assert history.returncode == 0 and json.loads(history.stdout)
    finally:
        _stop_all(workers)
        for host in boards.values():
            host.stop()


# ---- failures ----------------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_measurement_is_retried_once_on_its_device_and_nothing_is_measured_twice(
    tmp_path, broker, variant_cache
):
    boards = start_boards(tmp_path / "boards", ["board"])
    devices = tmp_path / "lab-a" / "devices"
    board_file(boards["board"], devices, "board")
    variants = ["float32", "float16", "dynamic-int8", "int8"]
    farm = write_farm(tmp_path / "farm.toml", ["board"], variants, **{**FAST, "min_seconds": 1.5})
    worker = WorkerProcess(tmp_path, "lab-a", devices, broker.url, variant_cache).start()
    try:
        farm_run = _submit(farm, broker.url)
        lab_runs = worker.results / "board"
        # Killed once run.json lists float32 as measured: the agent's document is written just before run.json
        # is, and a kill between the two (a busy machine widens the gap) leaves a measurement no record names.
        wait_until(lambda: _recorded_ok(lab_runs, "float32"), 300, "the first measurement recorded on the lab host")
        worker.kill()

        # Its lease expires; until it is back, status says so.
        def status() -> str:
            return edgebench("farm", "status", farm_run, "--broker", broker.url, "--format", "json").stdout

        wait_until(lambda: "stopped answering" in status(), 60, "status to see the loss")
        worker.start()
        collected = _collect(farm_run, broker.url, tmp_path / "results", "--wait")
        assert "(final)" in collected.stderr, collected.stderr
        record = JobRecords(broker.client()).read(farm_run, "board", "mnist")
        assert record["state"] == "done" and record["lost"] == "1", record
        assert "stopped mid-job" in record["result"]["inherited"]
        document = json.loads((tmp_path / "results" / "_farms" / farm_run / "farm.json").read_text())
        runs = document["devices"]["board"]["runs"]
        assert [r["attempt"] for r in runs] == [1, 2] and runs[0]["status"] == "interrupted"
        first, second = (json.loads((tmp_path / "results" / r["folder"] / "run.json").read_text()) for r in runs)
        assert "stopped mid-job" in first["error"]
        assert second["retry_of"] == first["run_id"] and second["resumed"] is True
        measured_first = {m["variant"] for m in first["measurements"] if m["status"] == "ok"}
        measured_second = {m["variant"] for m in second["measurements"] if m["status"] == "ok"}
        assert "float32" in measured_first
        assert not measured_first & measured_second, "a variant was measured twice"
        assert measured_first | measured_second == set(variants)
        # The retry took over the dead run's device lease at once instead of waiting out its expiry.
        assert "in use by" not in worker.text()
    finally:
        worker.stop()
        boards["board"].stop()


def _recorded_ok(runs: Path, variant: str) -> bool:
    for run_file in runs.glob("*/run.json"):
        try:
            entries = json.loads(run_file.read_text())["measurements"]
        except (OSError, ValueError, KeyError):
            continue  # being replaced at this moment
        if any(e["variant"] == variant and e["status"] == "ok" for e in entries):
            return True
    return False


def test_a_job_lost_twice_is_failed_with_the_reason_never_run_a_third_time(broker):
    client = broker.client()
    records = JobRecords(client)
    payload = {"farm_run": "night-1", "device": "board", "model": "mnist", "deadline": time.time() + 600}
    records.create(payload, time.time())
    assert records.claim(payload, "worker-1", "lab-a", time.time(), 1.0).outcome == "claimed"
    # A second delivery while worker-1 is alive is a duplicate: not measured.
    assert records.claim(payload, "worker-2", "lab-a", time.time(), 1.0).outcome == "busy"
    time.sleep(1.2)  # worker-1 died: its lease expired
    second = records.claim(payload, "worker-2", "lab-a", time.time(), 1.0)
    assert second.outcome == "claimed" and "worker-1" in second.detail
    time.sleep(1.2)  # and worker-2 too
    third = records.claim(payload, "worker-3", "lab-a", time.time(), 1.0)
    assert third.outcome == "gave-up"
    record = records.read("night-1", "board", "mnist")
    assert record["state"] == "failed" and "lost 2 times" in record["reason"] and "worker-2" in record["reason"]
    assert records.claim(payload, "worker-3", "lab-a", time.time(), 1.0).outcome == "finished"


def test_redis_restarted_mid_run_loses_no_job_and_the_workers_carry_on(tmp_path, broker, variant_cache):
    devices = tmp_path / "lab-a" / "devices"
    local_device(devices, "a-host")
    local_device(devices, "a-host2")
    farm = write_farm(tmp_path / "farm.toml", ["a-host", "a-host2"], ["float32", "float16", "int8"],
                      **{**FAST, "min_seconds": 1.0})  # fmt: skip
    worker = WorkerProcess(tmp_path, "lab-a", devices, broker.url, variant_cache).start()
    try:
        farm_run = _submit(farm, broker.url)
        wait_until(lambda: list(worker.results.glob("a-host*/*/float32.json")), 300, "a first measurement")
        broker.kill()
        time.sleep(6)  # longer than the lease TTL (4 s): the leases expire while Redis is away
        broker.start()
        collected = _collect(farm_run, broker.url, tmp_path / "results", "--wait")
        assert "(final)" in collected.stderr, collected.stderr + worker.text()
        _, summary = _check(tmp_path / "results")
        assert {d["name"]: d["state"] for d in summary["devices"]} == {"a-host": "done", "a-host2": "done"}
        assert all(c["status"] == "ok" for d in summary["devices"] for c in d["cells"])
        assert "broker unreachable" in worker.text()
        assert worker.process.poll() is None, "the worker died with the broker"
    finally:
        worker.stop()


def test_a_job_for_a_device_no_worker_owns_stays_queued_and_check_exits_2_after_its_deadline(
    tmp_path, broker, variant_cache
):
    devices = tmp_path / "lab-a" / "devices"
    local_device(devices, "a-host")
    farm = write_farm(tmp_path / "farm.toml", ["a-host", "ghost"], ["float32"], **FAST)
    worker = WorkerProcess(tmp_path, "lab-a", devices, broker.url, variant_cache).start()
    results = tmp_path / "results"
    try:
        submitted = edgebench("farm", "submit", str(farm), "--broker", broker.url, "--deadline", "25s")
        assert "no running worker owns ghost" in submitted.stderr
        farm_run = submitted.stdout.strip()
        wait_until(lambda: JobRecords(broker.client()).read(farm_run, "a-host", "mnist")["state"] == "done", 120,
                   "the owned device's job")  # fmt: skip
        status = json.loads(edgebench("farm", "status", farm_run, "--broker", broker.url, "--format", "json").stdout)
        ghost = next(r for r in status["jobs"] if r["device"] == "ghost")
        assert ghost["state"] == "queued" and "no worker has announced device ghost" in ghost["detail"]
        early = _collect(farm_run, broker.url, results)
        assert early.returncode == 2 and "still running" in early.stderr
        time.sleep(max(0.0, json.loads(edgebench("farm", "status", farm_run, "--broker", broker.url, "--format",
                                                 "json").stdout)["deadline_epoch"] - time.time()) + 1)  # fmt: skip
        final = _collect(farm_run, broker.url, results)
        assert final.returncode == 2 and "(final)" in final.stderr
        code, summary = _check(results)
        assert code == 2
        states = {d["name"]: (d["state"], d["reason"]) for d in summary["devices"]}
        assert states["a-host"][0] == "done"
        assert states["ghost"][0] == "pending" and "deadline" in states["ghost"][1]
        # A worker that owns it later drops the expired job: nothing is measured for a night that is over.
        late_devices = tmp_path / "lab-g" / "devices"
        local_device(late_devices, "ghost")
        late = WorkerProcess(tmp_path, "lab-g", late_devices, broker.url, variant_cache).start()
        wait_until(lambda: "ghost mnist: not measured (finished: expired)" in late.text(), 60, "the late worker")
        late.stop()
        assert not list((late.results / "ghost").glob("*/run.json"))
    finally:
        worker.stop()


def test_two_submissions_at_once_are_both_measured_one_job_per_device_at_a_time(tmp_path, broker, variant_cache):
    boards = start_boards(tmp_path / "boards", ["board"])
    devices = tmp_path / "lab-a" / "devices"
    board_file(boards["board"], devices, "board")
    local_device(devices, "a-host")
    farms = [write_farm(tmp_path / f"farm{i}.toml", ["board", "a-host"], ["float32", "int8"], **FAST)
             for i in range(2)]  # fmt: skip
    worker = WorkerProcess(tmp_path, "lab-a", devices, broker.url, variant_cache).start()
    try:
        ids: list[str] = []
        threads = [threading.Thread(target=lambda f=f: ids.append(_submit(f, broker.url))) for f in farms]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(ids)) == 2
        windows: dict[str, list[tuple[str, str]]] = {"board": [], "a-host": []}
        for farm_run in ids:
            results = tmp_path / "results"
            collected = _collect(farm_run, broker.url, results, "--wait")
            assert "(final)" in collected.stderr
            document = json.loads((results / "_farms" / farm_run / "farm.json").read_text())
            for name, entry in document["devices"].items():
                assert entry["state"] == "done", (name, entry)
                for run in entry["runs"]:
                    summary = json.loads((results / run["folder"] / "run.json").read_text())
                    windows[name].append((summary["started_at"], summary["finished_at"]))
        for name, spans in windows.items():
            spans.sort()
            assert len(spans) == 2
            assert spans[0][1] <= spans[1][0], f"{name} measured two farm runs at once: {spans}"
    finally:
        worker.stop()
        boards["board"].stop()


# ---- what the broker and the workers refuse ---------------------------------------------------------------------


def test_a_wrong_or_missing_broker_password_and_an_unreachable_broker_are_one_line_each(tmp_path):
    server = RedisServer(tmp_path / "redis", password="s3cret-pw").start()
    try:
        farm = write_farm(tmp_path / "farm.toml", ["board"], ["float32"])
        wrong = edgebench("farm", "submit", str(farm), "--broker", f"redis://:nope@127.0.0.1:{server.port}/0")
        missing = edgebench("farm", "status", "x", "--broker", f"redis://127.0.0.1:{server.port}/0")
        right = edgebench("farm", "status", "x", "--broker", server.url)
    finally:
        server.stop()
    (tmp_path / "no-devices").mkdir()
    gone = edgebench("worker", "--lab", "a", "--devices", str(tmp_path / "no-devices"), "--broker", server.url)
    for result, words in ((wrong, "refused the password"), (missing, "needs a password"),
                          (right, "no farm run 'x'"), (gone, "cannot reach the broker")):  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "s3cret-pw" not in result.stderr and "nope" not in result.stderr


def test_a_tls_broker_is_reached_with_its_ca_and_refused_without_it(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    server = RedisServer(tmp_path / "redis", tls=True).start()
    try:
        trusted = edgebench("farm", "status", "x", "--broker", server.url,
                            env={**os.environ, "EDGEBENCH_BROKER_CA": str(server.folder / "ca.pem")})  # fmt: skip
        untrusted = edgebench("farm", "status", "x", "--broker", server.url)
    finally:
        server.stop()
    assert trusted.returncode == 2 and "no farm run 'x'" in trusted.stderr  # connected, verified, answered
    assert untrusted.returncode == 2 and "certificate verify failed" in untrusted.stderr
    assert len(untrusted.stderr.strip().splitlines()) == 1 and "Traceback" not in untrusted.stderr


def test_a_message_that_is_not_an_edgebench_job_is_refused_never_run(tmp_path, broker, variant_cache):
    from dramatiq import Message

    devices = tmp_path / "lab-a" / "devices"
    local_device(devices, "a-host")
    worker = WorkerProcess(tmp_path, "lab-a", devices, broker.url, variant_cache).start()
    marker = tmp_path / "pwned"
    try:
        queues = dramatiq_broker(broker.client(), 60)
        queues.declare_queue("device.a-host")
        # Another actor's name (a callable path) is not run: workers know one actor.
        queues.enqueue(Message(queue_name="device.a-host", actor_name="os.system", args=(f"touch {marker}",),
                               kwargs={}, options={}))  # fmt: skip
        # Our actor with a payload that is not a job (extra keys, wrong types) is refused before anything runs.
        records = JobRecords(broker.client())
        bad = {"farm_run": "night", "device": "a-host", "model": "mnist", "deadline": time.time() + 60,
               "command": f"touch {marker}"}  # fmt: skip
        records.create(bad, time.time())
        enqueue(queues, bad)
        wait_until(lambda: "refused a message" in worker.text(), 60, "the refusal")
        record = records.read("night", "a-host", "mnist")
        assert record["state"] == "failed" and "not an edgebench lab job" in record["reason"]
        assert not marker.exists()
        assert worker.process.poll() is None
    finally:
        worker.stop()


def test_a_worker_stopped_with_sigterm_puts_its_job_back_and_resumes_it_without_measuring_twice(
    tmp_path, broker, variant_cache
):
    devices = tmp_path / "lab-a" / "devices"
    local_device(devices, "a-host")
    variants = ["float32", "float16", "int8"]
    farm = write_farm(tmp_path / "farm.toml", ["a-host"], variants, **{**FAST, "min_seconds": 1.5})
    worker = WorkerProcess(tmp_path, "lab-a", devices, broker.url, variant_cache).start()
    try:
        farm_run = _submit(farm, broker.url)
        wait_until(lambda: list(worker.results.glob("a-host/*/float32.json")), 300, "the first measurement")
        assert worker.stop() == 143, worker.text()
        assert "put back in the queue (worker stopping)" in worker.text()
        record = JobRecords(broker.client()).read(farm_run, "a-host", "mnist")
        assert record["state"] == "queued" and record["lost"] == "0"
        worker.start()
        collected = _collect(farm_run, broker.url, tmp_path / "results", "--wait")
        assert "(final)" in collected.stderr, collected.stderr
        document = json.loads((tmp_path / "results" / "_farms" / farm_run / "farm.json").read_text())
        runs = document["devices"]["a-host"]["runs"]
        assert [r["attempt"] for r in runs] == [1, 2] and runs[0]["status"] == "interrupted"
        measured = [m["variant"] for r in runs
                    for m in json.loads((tmp_path / "results" / r["folder"] / "run.json").read_text())["measurements"]
                    if m["status"] == "ok"]  # fmt: skip
        assert sorted(measured) == sorted(variants), "each variant measured exactly once"
    finally:
        worker.stop()


def test_a_lab_whose_variant_bytes_differ_from_the_controllers_refuses_the_job(tmp_path, broker, variant_cache):
    devices = tmp_path / "lab-a" / "devices"
    local_device(devices, "a-host")
    farm = write_farm(tmp_path / "farm.toml", ["a-host"], ["float32", "int8"], **FAST)
    farm_run = _submit(farm, broker.url)  # no worker yet: the job waits in its queue
    client = broker.client()
    messages = "edgebench-queues:device.a-host.msgs"
    ((message_id, raw),) = client.hgetall(messages).items()
    message = json.loads(raw)
    message["args"][0]["models"][0]["planned_sha256"]["int8"] = "0" * 64  # as if the lab quantized other bytes
    client.hset(messages, message_id, json.dumps(message))
    worker = WorkerProcess(tmp_path, "lab-a", devices, broker.url, variant_cache).start()
    try:
        wait_until(lambda: JobRecords(client).read(farm_run, "a-host", "mnist")["state"] == "failed", 120, "the job")
        reason = JobRecords(client).read(farm_run, "a-host", "mnist")["reason"]
        assert "variants int8 are not the bytes the controller planned" in reason
        assert not list(worker.results.glob("a-host/*/float32.json")), "nothing is measured under a wrong name"
    finally:
        worker.stop()
