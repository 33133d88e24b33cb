"""Emulated boards with today's runtime: ai-edge-litert 2.3 on the emulated Pi 4 and Pi 5, under qemu, over SSH.

Each profile's launcher gives the board's Python its own /proc/cpuinfo in a private mount namespace; without
it LiteRT's CPU detection crashes under qemu. Accuracy is checked against this host's evaluation of the same
variant file; latencies are an emulator's and are not asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest

from edgebench.accuracy.evaluate import evaluate_file
from edgebench.emulated import launcher, rootfs
from edgebench.results.store import load_run
from tests.helpers import run_edgebench

# Fewer samples than the README's 500, and the Pi 4 profile only on three variants: float kernels are slow
# under qemu (float32 and float16 take a minute each on a busy 2-core machine), and CI time is shared.
SAMPLES = 50  # and 10 for fidelity: qemu makes a float inference 0.1-0.25 s (test_emulated_pi4.py)
VARIANTS = ["float32", "float16", "dynamic-int8", "int8", "int16x8", "qat-int8", "int4-weights"]
PROFILES = {"pi5-emulated": ("pi5", "cortex-a76"), "pi4-emulated-litert": ("pi4", "cortex-a72")}
CHOSEN = {"pi5-emulated": VARIANTS, "pi4-emulated-litert": ["float32", "int8", "qat-int8"]}
DEVICES = Path(__file__).resolve().parent.parent / "devices"


@pytest.fixture(scope="module", params=list(PROFILES))
def litert_run(request, emulated_pis, tmp_path_factory, variant_cache, mnist_variants):
    device = emulated_pis(request.param)
    results = tmp_path_factory.mktemp(f"{request.param}-results")
    # The user's command, with a shorter latency phase: what is checked here is op support and accuracy.
    completed = run_edgebench(
        "run", "--device", str(device), "--model", "mnist", "--samples", str(SAMPLES), "--min-runs", "10",
        "--min-seconds", "0.2", "--warmup-seconds", "0", "--fidelity-samples", "10", "--rounds", "1",
        "--variants", ",".join(CHOSEN[request.param]),
        "--results-dir", str(results), "--cache-dir", str(variant_cache),
    )  # fmt: skip
    folders = [p for p in results.glob("*/*") if p.is_dir()]
    assert len(folders) == 1, completed.stderr
    return request.param, completed, folders[0]


def test_the_shipped_device_files_name_their_launchers_and_are_marked_emulated():
    for name, (profile, _) in PROFILES.items():
        device = tomllib.loads((DEVICES / f"{name}.toml").read_text())
        assert device["emulated"] is True
        assert device["python"].endswith(f"launch-{profile}-rootfs-litert.sh")


def test_every_variant_runs_on_ai_edge_litert_on_aarch64_and_the_run_exits_0(litert_run):
    name, completed, folder = litert_run
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary, measurements = load_run(folder)
    assert summary["device"]["emulated"] is True and summary["status"] == "ok"
    assert sorted(m.variant for m in measurements) == sorted(CHOSEN[name])
    profile, core = PROFILES[name]
    for measurement in measurements:
        environment = measurement.document["environment"]
        assert environment["runtime"] == {"name": "ai_edge_litert", "version": "2.3.0"}
        assert environment["machine"] == "aarch64" and environment["numpy"].startswith("2.")
        # The board's cpuinfo, not the host's: what LiteRT and XNNPACK chose their kernels from.
        assert environment["cpu_model"].startswith(f"Raspberry Pi {profile[-1]} Model B")
        assert ("asimddp" in environment["cpu_features"]) is (core == "cortex-a76")
    out = " ".join(completed.stdout.split())
    assert "EMULATED device: latencies come from an emulator, not hardware" in out
    assert "ai_edge_litert 2.3.0 · Python 3.11" in out


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "int4-weights"])
def test_accuracy_matches_the_same_variant_on_this_host(litert_run, mnist_variants, mnist_test_set, variant):
    name, _, folder = litert_run
    if variant not in CHOSEN[name]:
        pytest.skip(f"{variant} is not run on {name} in CI (see CHOSEN); the README's run covers it")
    document = json.loads((folder / f"{variant}.json").read_text())
    here = evaluate_file(mnist_variants[variant].path, mnist_test_set, SAMPLES).top1
    assert document["accuracy"]["total"] == SAMPLES
    assert abs(document["accuracy"]["top1"] - here) * SAMPLES <= 1  # at most one prediction apart


def test_the_launcher_leaves_the_hosts_cpuinfo_alone_and_says_when_it_cannot_make_a_namespace(emulated_pis):
    emulated_pis("pi5-emulated")  # the session's host has written the launchers
    cache = Path(os.environ.get("EDGEBENCH_PI4_CACHE", rootfs.DEFAULT_CACHE)).expanduser()
    script = launcher.launcher_path(cache, "pi5", "ai-edge-litert")
    before = Path("/proc/cpuinfo").read_text()
    inside = subprocess.run([str(script), "-c", "print(open('/proc/cpuinfo').read())"], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.strip() == launcher.cpuinfo(launcher.PROFILES["pi5"]).strip()
    assert Path("/proc/cpuinfo").read_text() == before  # a private mount namespace: the host never saw it
    # Not root: no mount namespace. One line that says what is missing, not a qemu crash. (A copy where
    # nobody can read it: root's cache is not.)
    readable = Path(tempfile.mkdtemp(prefix="edgebench-launcher-"))
    try:
        readable.chmod(0o755)
        copy = readable / script.name
        shutil.copy(script, copy)
        refused = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(copy), "-c",
                                  "1"], capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        shutil.rmtree(readable, ignore_errors=True)
    assert refused.returncode == launcher.EXIT_NO_NAMESPACE
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "needs a private mount namespace" in refused.stderr and "unshare" in refused.stderr
