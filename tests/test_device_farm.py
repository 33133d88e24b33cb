"""Several SSH devices with their own addresses (network namespaces): a small device farm."""

from __future__ import annotations

import json
import subprocess
import sys

from edgebench.results.store import load_run
from tests.helpers import assert_one_line_error


def run_command(device, results, cache):
    return [
        sys.executable, "-m", "edgebench", "run", "--device", str(device), "--model", "mnist",
        "--variants", "float32,int8", "--samples", "200", "--min-runs", "10", "--min-seconds", "0.1",
        "--rounds", "1", "--results-dir", str(results), "--cache-dir", str(cache), "--json",
    ]  # fmt: skip


def test_two_boards_measured_at_once_keep_apart(namespace_hosts, tmp_path, variant_cache):
    devices = [
        host.ssh.device_file(tmp_path / f"board{i}.toml", workdir=str(host.ssh.folder / "workdir"))
        for i, host in enumerate(namespace_hosts)
    ]
    processes = [
        subprocess.Popen(run_command(d, tmp_path / "results", variant_cache), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for d in devices
    ]  # fmt: skip
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    for index, (stdout, _) in enumerate(outputs):
        document = json.loads(stdout)
        assert document["run"]["device"] == {**document["run"]["device"], "name": f"board{index}"}
        assert document["run"]["device"]["host"] == namespace_hosts[index].address
        assert [v["status"] for v in document["variants"]] == ["ok", "ok"]
        summary, _ = load_run(document["folder"])
        assert summary["pushed_bytes"] > 16_000_000  # each board got its own copy


def test_a_board_whose_link_is_cut_times_out_and_the_other_still_runs(namespace_hosts, tmp_path, variant_cache):
    dead, alive = namespace_hosts
    dead_device = dead.ssh.device_file(tmp_path / "dead.toml", connect_timeout=2)
    alive_device = alive.ssh.device_file(tmp_path / "alive.toml", workdir=str(alive.ssh.folder / "workdir"))
    dead.cut_link()
    try:
        completed = subprocess.run(run_command(dead_device, tmp_path / "results", variant_cache),
                                   capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        dead.restore_link()
    assert_one_line_error(completed, f"timed out connecting to {dead.address}:22 after 2s")
    healthy = subprocess.run(run_command(alive_device, tmp_path / "results", variant_cache),
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert healthy.returncode == 0, healthy.stderr
