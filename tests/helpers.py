"""Helpers the test files share: the CLI (in its own process or in this one), the agent as a program,
recorded agent documents, and the processes behind a board. Test files import these, never each other."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from edgebench.agent import agent
from edgebench.agent.agent import summarize, wilson_interval
from edgebench.cli.main import main


def run_edgebench(*args, cwd=None, env=None):
    """The real command in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "edgebench", *args], capture_output=True, text=True, cwd=cwd, timeout=600, env=env
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgebench: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def run_main(capfd, *args) -> subprocess.CompletedProcess:
    """The command in this process (main(argv)), its output read from the captured descriptors: for error
    paths and anything that does not test the process boundary itself. Every edgebench message goes to the
    real descriptors (the CLI writes to a copy of fd 2), so pytest's capfd sees them."""
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)}
    capfd.readouterr()
    try:
        code = main([str(a) for a in args])
    finally:
        for signum, handler in handlers.items():  # main() installs its own for SIGTERM and SIGHUP
            signal.signal(signum, handler)
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(["edgebench", *map(str, args)], code, out, err)


AGENT = agent.__file__
QUICK = ["--min-runs", "5", "--min-seconds", "0.05", "--warmup-min-seconds", "0"]  # the agent's flags
# `edgebench run` flags for a short MNIST run of one round (a cheap model would otherwise get three).
MNIST_QUICK = ["--model", "mnist", "--samples", "200", "--min-runs", "20", "--min-seconds", "0.2",
               "--warmup-seconds", "0.1", "--rounds", "1"]  # fmt: skip


def run_agent(model, *args, python=sys.executable, env=None):
    """The agent in its own process, exactly as a device runs it. Returns (document, exit code, stderr)."""
    result = subprocess.run([python, AGENT, str(model), *args], capture_output=True, text=True, timeout=600, env=env)
    document = json.loads(result.stdout) if result.stdout.strip() else None
    return document, result.returncode, result.stderr


BASE_US = 480.0


def latency_samples(seed, count=2000, scale=1.0):
    """Inference times as a busy-ish board produces them: a lognormal body around 480 µs."""
    rng = np.random.default_rng(seed)
    return (BASE_US * scale * rng.lognormal(0.0, 0.04, count)).tolist()


def agent_document(samples, *, correct=9900, total=10_000, peak=70_000_000, runtime=("tflite_runtime", "2.14.0")):
    low, high = wilson_interval(correct, total)
    return {
        "schema_version": 1,
        "kind": "edgebench.agent-result",
        "status": "ok",
        "timing": {"samples_us": samples, "stats": summarize(samples), "load_us": 900.0, "allocate_us": 3000.0},
        "memory": {"peak_rss_after_runs": peak, "peak_rss_after_load": peak - 1_000_000, "baseline_rss": 50_000_000},
        "accuracy": {"correct": correct, "total": total, "top1": correct / total, "wilson95": [low, high]},
        "environment": {"runtime": {"name": runtime[0], "version": runtime[1]}, "cpu_model": "Cortex-A72"},
        "warnings": [],
    }


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def sshd_processes(listener: int, *, with_listener: bool) -> list[int]:
    """The per-connection sshd processes (and the listener): what a hung board's SSH side looks like."""
    pids = [pid for pid in descendants(listener) if _comm(pid) == "sshd"]
    return [listener, *pids] if with_listener else pids


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
