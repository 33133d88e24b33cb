"""Building blocks of the farm tests: loopback sshd boards, farm files, a farm run in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgebench.emulated.sshd import SshHost, make_host, sshd_unavailable_reason

# A board's Python without site-packages: no numpy, no runtime, so it fails its health check, whatever this
# machine's own /usr/bin/python3 has installed.
BARE_PYTHON = f"{sys.executable} -S"


def start_boards(root: Path, names: list[str]) -> dict[str, SshHost]:
    if sshd_unavailable_reason():
        pytest.skip(sshd_unavailable_reason())
    return {name: make_host(root / name).start() for name in names}


def board_file(host: SshHost, devices: Path, name: str, **fields) -> Path:
    devices.mkdir(parents=True, exist_ok=True)
    fields.setdefault("tags", ["board"])
    fields.setdefault("workdir", str(host.folder / "workdir"))
    fields.setdefault("connect_timeout", 3)
    return host.device_file(devices / f"{name}.toml", **fields)


def write_farm(path: Path, devices: list[str], variants: list[str], *, sections: str = "", **run) -> Path:
    settings = {"samples": 100, "fidelity_samples": 20, "min_runs": 10, "min_seconds": 0.3, "warmup_seconds": 0,
                "stall_timeout": 8, "rounds": 1, **run}  # fmt: skip
    lines = [f"devices = {json.dumps(devices)}", "", "[[models]]", 'model = "mnist"',
             f"variants = {json.dumps(variants)}", "", "[run]"]  # fmt: skip
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path.write_text("\n".join(lines) + "\n" + sections)
    return path


def farm_command(farm: Path, devices: Path, results: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgebench", "farm", "run", str(farm), "--devices-dir", str(devices),
            "--results-dir", str(results), "--cache-dir", str(cache), *extra]  # fmt: skip


def farm_env(tmp_path: Path) -> dict:
    """Each test its own HOME (no ~/.ssh/config of the machine) and host locks."""
    return {**os.environ, "HOME": str(tmp_path / "home"), "EDGEBENCH_LOCK_DIR": str(tmp_path / "locks")}


def start_farm(command: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def farm_document(results: Path) -> dict:
    (path,) = list((results / "_farms").glob("*/farm.json"))
    return json.loads(path.read_text())


def cells(summary: dict) -> dict[tuple[str, str], dict]:
    return {(c["device"], c["variant"]): c for d in summary["devices"] for c in d["cells"]}


def states(summary: dict) -> dict[str, tuple[str, str | None]]:
    return {d["name"]: (d["state"], d["reason"]) for d in summary["devices"]}


def agent_processes(root: Path) -> list[tuple[int, str]]:
    """Agent processes (pid, command line) started from under `root` (a test's boards)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "agent.py" in cmdline and str(root) in cmdline:
            found.append((int(entry), cmdline))
    return found
