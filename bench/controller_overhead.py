"""What does reaching a device over SSH cost, beyond the measuring itself?

    python bench/controller_overhead.py [--rounds 3]     # needs root and openssh-server

Starts a real sshd on loopback (the same helper the tests use), then runs the
same `edgebench run` (float32 and int8 of mnist, 1,000 accuracy samples)
against the local device and against the SSH device, interleaved round by
round, with a warm variant cache. For each run it prints the wall time, the
time the agent processes themselves took (`elapsed_s` in their documents), and
the difference: the controller's overhead. The first SSH run also pushes the
agent, the test set and both models; later ones push nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgebench.emulated.sshd import make_host, sshd_unavailable_reason
from edgebench.results.store import load_run

ARGS = ["--model", "mnist", "--variants", "float32,int8", "--samples", "1000", "--min-runs", "50"]


def one_run(device: str, results: Path) -> tuple[float, float, int]:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "edgebench", "run", "--device", device, *ARGS, "--results-dir", str(results), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    folder = json.loads(completed.stdout)["folder"]
    summary, measurements = load_run(folder)
    agent_seconds = sum(m.document["elapsed_s"] for m in measurements if m.document)
    return wall, agent_seconds, summary.get("pushed_bytes", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reason = sshd_unavailable_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        host = make_host(scratch / "sshd").start()
        try:
            ssh_device = host.device_file(scratch / "loopback-board.toml")
            one_run("local", scratch / "warm")  # warm the variant cache; not counted
            overhead = {"local": [], "ssh": []}
            print(f"{'device':<8}{'wall s':>9}{'agents s':>10}{'overhead s':>12}{'pushed bytes':>15}")
            for _ in range(args.rounds):
                for name, device in (("local", "local"), ("ssh", str(ssh_device))):
                    wall, agents, pushed = one_run(device, scratch / "results")
                    overhead[name].append(wall - agents)
                    print(f"{name:<8}{wall:>9.2f}{agents:>10.2f}{wall - agents:>12.2f}{pushed:>15,}")
        finally:
            host.stop()
    local, ssh = statistics.median(overhead["local"]), statistics.median(overhead["ssh"])
    print(f"median controller overhead: local {local:.2f} s, ssh {ssh:.2f} s, ssh - local {ssh - local:+.2f} s")


if __name__ == "__main__":
    main()
