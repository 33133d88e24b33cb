"""What does the broker cost? The same night as a local `farm run` and through the queue, side by side.

    python bench/queue_overhead.py [--boards 8] [--repeats 2]     # root: openssh-server and redis-server

Starts N real sshd "boards" on loopback, a redis-server, and one lab worker owning every board,
then measures the same farm (mnist float32 and int8, 100 accuracy samples, 10 runs / 0.3 s per
measurement by default; --samples and --min-seconds make a longer night) two ways, interleaved
(local queue queue local ...) so drift is shared:
- local: `edgebench farm run FARM` on this host;
- queue: `edgebench farm submit FARM` + `edgebench farm collect ID --wait`, the worker already
  running (a lab worker is a long-lived service), so the time covers submitting, queueing,
  the worker's per-job preparation, leases, shipping the runs back and collecting them.
A first, untimed run of each pushes every file to every board and warms the variant cache.

Prints each mode's median wall time, the overhead per job ((queue - local) / jobs) and its
share of the queued night's wall time. The issue's goal: at most 1 s per job and 10% at 8 boards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgebench.emulated.sshd import make_host, sshd_unavailable_reason
from tests.lab_helpers import RedisServer, WorkerProcess

FARM = """devices = ["tag:board"]
[[models]]
model = "mnist"
variants = ["float32", "int8"]
[run]
samples = {samples}
fidelity_samples = 20
min_runs = 10
min_seconds = {min_seconds}
warmup_seconds = 0
"""


def edgebench(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebench", *args], capture_output=True, text=True, env=env,
                          timeout=1800)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--samples", type=int, default=100, help="accuracy samples per variant (100)")
    parser.add_argument("--min-seconds", type=float, default=0.3, help="measuring time per variant (0.3)")
    args = parser.parse_args()
    if sshd_unavailable_reason():
        print(f"cannot run: {sshd_unavailable_reason()}", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="edgebench-queue-bench-"))
    env = {**os.environ, "HOME": str(root / "home"), "EDGEBENCH_LOCK_DIR": str(root / "locks")}
    devices, cache = root / "devices", root / "cache"
    devices.mkdir()
    hosts = [make_host(root / "boards" / f"board{i}").start() for i in range(args.boards)]
    broker = RedisServer(root / "redis").start()
    worker = None
    try:
        for index, host in enumerate(hosts):
            host.device_file(devices / f"board{index}.toml", tags=["board"], workdir=str(host.folder / "workdir"))
        farm = root / "farm.toml"
        farm.write_text(FARM.format(samples=args.samples, min_seconds=args.min_seconds))
        worker = WorkerProcess(root, "lab", devices, broker.url, cache, lease_ttl=30)
        worker.env = {**env, "PYTHONUNBUFFERED": "1"}  # the same host locks as the local runs: one host
        worker.start()

        def local() -> float:
            started = time.monotonic()
            done = edgebench("farm", "run", str(farm), "--devices-dir", str(devices), "--results-dir",
                             str(root / "local-results"), "--cache-dir", str(cache), "--json", env=env)  # fmt: skip
            took = time.monotonic() - started
            if done.returncode not in (0, 1, 2):  # 1 and 2 are verdicts, not failures
                raise SystemExit(f"local farm run failed: {done.stderr[-2000:]}")
            return took

        def queued() -> float:
            started = time.monotonic()
            submitted = edgebench("farm", "submit", str(farm), "--broker", broker.url, "--cache-dir", str(cache),
                                  env=env)  # fmt: skip
            if submitted.returncode != 0:
                raise SystemExit(f"submit failed: {submitted.stderr[-2000:]}")
            collected = edgebench("farm", "collect", submitted.stdout.strip(), "--broker", broker.url,
                                  "--results-dir", str(root / "queue-results"), "--wait", "--format", "json",
                                  env=env)  # fmt: skip
            took = time.monotonic() - started
            if "(final)" not in collected.stderr:
                raise SystemExit(f"collect did not finish: {collected.stderr[-2000:]}")
            return took

        local(), queued()  # untimed: files onto every board, variants and references into the cache
        times: dict[str, list[float]] = {"local": [], "queue": []}
        for repeat in range(args.repeats):
            order = ("local", "queue") if repeat % 2 == 0 else ("queue", "local")
            for mode in order:
                times[mode].append(local() if mode == "local" else queued())
                print(f"  {mode:5s} {times[mode][-1]:7.2f} s", flush=True)
        jobs = args.boards  # one model: one job per board
        local_s, queue_s = statistics.median(times["local"]), statistics.median(times["queue"])
        per_job = (queue_s - local_s) / jobs
        print(
            f"boards={args.boards} jobs={jobs} repeats={args.repeats} samples={args.samples} "
            f"min_seconds={args.min_seconds}"
        )
        print(f"local farm run   median {local_s:7.2f} s")
        print(f"through the queue median {queue_s:7.2f} s  (ratio {queue_s / local_s:.2f}x)")
        print(f"overhead per job {per_job:+.2f} s; share of the queued night {(queue_s - local_s) / queue_s:+.1%}")
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
        for host in hosts:
            with contextlib.suppress(Exception):
                host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
