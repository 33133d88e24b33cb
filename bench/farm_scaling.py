"""Does a farm of 8 boards take longer than one board? The controller's overhead, measured.

    python bench/farm_scaling.py [--boards 1,4,8] [--repeats 2] [--cpu-share 0.15]   # root, openssh-server

Starts 8 real sshd "boards" on loopback and runs the same farm (mnist float32 and int8,
no accuracy or fidelity samples, 5 runs / 1 s per measurement) on 1, 4 and 8 of them,
interleaved (1 4 8 8 4 1 ...) so drift of the machine is shared, with a warm variant cache
and every file already on every board (a first, untimed run pushes them).

How it is made fair: on a real farm each board is its own computer, and only the
controller shares this machine. Here every board's sshd, and so every agent it starts,
is put in its own CPU cgroup capped at --cpu-share of one core (15%: 8 boards use at most
1.2 of this machine's 2 cores), so a board measures as fast whether it is alone or one of
eight, like separate hardware, and the cores are never saturated. What grows with the
number of boards is then the controller's own work: threads, SSH sessions, leases,
probes, the farm summary. Prints wall time per farm size and its ratio to one board.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgebench.emulated.sshd import make_host, sshd_unavailable_reason

FARM = """devices = {devices}
[[models]]
model = "mnist"
variants = ["float32", "int8"]
[run]
samples = 0
fidelity_samples = 0
min_runs = 5
min_seconds = 1.0
warmup_seconds = 0
"""


class CpuCap:
    """A cgroup capping a process tree at a share of one CPU (cgroup v2, or v1's cpu controller)."""

    def __init__(self, name: str, share: float):
        period = 100_000
        v2, v1 = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/cpu")
        if (v2 / "cgroup.controllers").is_file() and "cpu" in (v2 / "cgroup.controllers").read_text():
            self.folder = v2 / name
            self.folder.mkdir(exist_ok=True)
            (self.folder / "cpu.max").write_text(f"{int(period * share)} {period}")
        elif (v1 / "cpu.cfs_quota_us").is_file():
            self.folder = v1 / name
            self.folder.mkdir(exist_ok=True)
            (self.folder / "cpu.cfs_period_us").write_text(str(period))
            (self.folder / "cpu.cfs_quota_us").write_text(str(int(period * share)))
        else:
            sys.exit("no cgroup cpu controller here: the boards would share the cores and the figures mean nothing")

    def add(self, pid: int) -> None:
        (self.folder / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        with contextlib.suppress(OSError):  # a straggling process keeps it; it is harmless
            self.folder.rmdir()


def farm_run(farm: Path, devices: Path, results: Path) -> tuple[float, float]:
    """Wall seconds of one `edgebench farm run`, and the CPU seconds the controller process used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "edgebench", "farm", "run", str(farm), "--devices-dir", str(devices),
         "--results-dir", str(results), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(completed.stdout)
    states = {d["name"]: d["state"] for d in summary["devices"]}
    if set(states.values()) != {"done"}:
        sys.exit(f"a board did not finish: {states}\n{completed.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--boards", default="1,4,8")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cpu-share", type=float, default=0.15)
    args = parser.parse_args()
    if sshd_unavailable_reason():
        sys.exit(sshd_unavailable_reason())
    sizes = [int(n) for n in args.boards.split(",")]
    with tempfile.TemporaryDirectory(prefix="farm-scaling-") as folder:
        root = Path(folder)
        os.environ["EDGEBENCH_LOCK_DIR"] = str(root / "locks")
        devices, results = root / "devices", root / "results"
        devices.mkdir()
        boards, caps = [], []
        try:
            for index in range(max(sizes)):
                host = make_host(root / f"board{index}").start()
                cap = CpuCap(f"edgebench-bench-board{index}", args.cpu_share)
                cap.add(host.process.pid)  # the sessions and agents it forks from now on inherit the cap
                boards.append(host)
                caps.append(cap)
                host.device_file(devices / f"board{index}.toml", workdir=str(host.folder / "workdir"))
            farms = {}
            for size in sizes:
                names = [f"board{i}" for i in range(size)]
                farms[size] = root / f"farm{size}.toml"
                farms[size].write_text(FARM.format(devices=json.dumps(names)))
            print(f"warm-up: one untimed farm run on {max(sizes)} boards pushes every file", file=sys.stderr)
            farm_run(farms[max(sizes)], devices, results)
            walls: dict[int, list[float]] = {size: [] for size in sizes}
            cpus: dict[int, list[float]] = {size: [] for size in sizes}
            order = []
            for repeat in range(args.repeats):
                order += sizes if repeat % 2 == 0 else list(reversed(sizes))
            for size in order:
                wall, cpu = farm_run(farms[size], devices, results)
                walls[size].append(wall)
                cpus[size].append(cpu)
                print(f"  {size} board(s): {wall:.1f} s wall, controller CPU {cpu:.1f} s", file=sys.stderr)
        finally:
            for host in boards:
                host.stop()
            for cap in caps:
                cap.remove()
    base = statistics.median(walls[sizes[0]])
    print(f"farm scaling: each board capped at {args.cpu_share:.0%} of one core, {args.repeats} run(s) per size, "
          f"interleaved; medians")  # fmt: skip
    print(f"{'boards':>6}  {'wall s':>7}  {'vs 1 board':>10}  {'controller CPU s':>16}")
    for size in sizes:
        wall = statistics.median(walls[size])
        print(f"{size:>6}  {wall:7.1f}  {wall / base:9.2f}x  {statistics.median(cpus[size]):16.1f}")


if __name__ == "__main__":
    main()
