"""The emulated Raspberry Pi 4: bookworm's arm64 python3.11 + tflite-runtime 2.14 + numpy 1.26 under qemu, over SSH."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from edgebench.accuracy.evaluate import evaluate_file
from edgebench.emulated import rootfs
from edgebench.results.store import load_run
from tests.helpers import run_edgebench

# The README's run is 500 samples with the default latency phase; here 50 samples, 10 for fidelity and a short
# latency phase: what is checked is the board's own stack, op support and accuracy, and qemu makes every
# inference slow (a float one 0.1-0.25 s: the float variants were most of this file's three minutes).
SAMPLES = 50
SHIPPED_DEVICE = Path(__file__).resolve().parent.parent / "devices" / "pi4-emulated.toml"


# The default set, and the per-tensor dynamic-int8 the run recommends on this runtime.
PI_VARIANTS = ["float32", "float16", "dynamic-int8", "dynamic-int8-tensorwise", "int8", "int16x8", "qat-int8",
               "int4-weights"]  # fmt: skip


@pytest.fixture(scope="module")
def emulated_run(pi4, tmp_path_factory, variant_cache, mnist_variants):
    results = tmp_path_factory.mktemp("emulated-results")
    completed = run_edgebench(
        "run", "--device", str(pi4), "--model", "mnist", "--samples", str(SAMPLES), "--min-runs", "10",
        "--min-seconds", "0.2", "--warmup-seconds", "0", "--fidelity-samples", "10", "--rounds", "1",
        "--variants", ",".join(PI_VARIANTS),
        "--results-dir", str(results), "--cache-dir", str(variant_cache),
    )  # fmt: skip
    folders = [p for p in results.glob("*/*") if p.is_dir()]
    assert len(folders) == 1, completed.stderr
    return completed, folders[0]


def test_the_shipped_device_file_is_marked_emulated():
    device = tomllib.loads(SHIPPED_DEVICE.read_text())
    assert device["emulated"] is True and "qemu-aarch64-static -cpu cortex-a72" in device["python"]


def test_the_run_uses_the_pis_own_stack(emulated_run):
    completed, folder = emulated_run
    assert completed.returncode == 1, completed.stderr  # int4-weights is unsupported there; the rest ran
    summary, measurements = load_run(folder)
    assert summary["device"]["emulated"] is True and summary["status"] == "partial"
    for measurement in (m for m in measurements if m.status == "ok"):
        environment = measurement.document["environment"]
        assert environment["runtime"] == {"name": "tflite_runtime", "version": "2.14.0"}
        assert environment["machine"] == "aarch64"
        assert environment["python"].startswith("3.11.")
        assert environment["numpy"].startswith("1.26.")
        assert environment["psutil"] is None  # the /proc fallback measured memory
        assert measurement.document["memory"]["source"] == "/proc VmRSS + VmHWM"
    out = " ".join(completed.stdout.split())
    assert "EMULATED device: latencies come from an emulator, not hardware" in out
    assert "tflite_runtime 2.14.0 · Python 3.11" in out


def test_per_channel_dynamic_int8_is_labelled_wrong_on_the_pis_runtime(emulated_run):
    completed, _ = emulated_run
    out = " ".join(completed.stdout.split())
    assert "dynamic-int8: tflite_runtime 2.14.0 ignores per-channel weight scales" in out
    assert "measure dynamic-int8-tensorwise on this runtime" in out
    assert "dynamic-int8: tflite_runtime 2.14.0 ignores per-channel" in " ".join(completed.stderr.split())  # before


@pytest.mark.parametrize("variant", ["float32", "float16", "dynamic-int8-tensorwise", "int8", "int16x8", "qat-int8"])
def test_accuracy_matches_the_same_variant_on_this_host(emulated_run, mnist_variants, mnist_test_set, variant):
    _, folder = emulated_run
    document = json.loads((folder / f"{variant}.json").read_text())
    on_the_pi = document["accuracy"]["top1"]
    here = evaluate_file(mnist_variants[variant].path, mnist_test_set, SAMPLES).top1
    assert document["accuracy"]["total"] == SAMPLES
    assert abs(on_the_pi - here) * SAMPLES <= 1  # at most one prediction apart


def test_a_variant_the_old_runtime_cannot_load_is_unsupported_not_a_crash(emulated_run):
    completed, folder = emulated_run
    _, measurements = load_run(folder)
    (int4,) = [m for m in measurements if m.variant == "int4-weights"]
    assert int4.status == "failed"
    assert int4.error.startswith("unsupported on this device: tflite_runtime:")
    assert "DEQUANTIZE" in int4.error
    assert "int4-weights failed: unsupported on this device" in " ".join(completed.stdout.split())


def test_the_rootfs_build_is_idempotent(pi4):
    cache = Path(os.environ.get("EDGEBENCH_PI4_CACHE", rootfs.DEFAULT_CACHE)).expanduser()
    before = (cache / "rootfs.complete").stat().st_mtime_ns
    messages = []
    rootfs.build(cache, say=messages.append)
    assert messages == [] and (cache / "rootfs.complete").stat().st_mtime_ns == before


def test_the_report_of_an_emulated_run_with_a_failed_variant_renders(emulated_run, tmp_path):
    from tests.browser import chromium_unavailable_reason, visit
    from tests.helpers import run_edgebench as edgebench

    _, folder = emulated_run
    page = tmp_path / "emulated.html"
    done = edgebench("report", str(folder), "-o", str(page))
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    assert "is EMULATED" in text and "emulated device: an emulator" in text  # latencies greyed, with the reason
    assert "int4-weights failed: unsupported on this device" in text
    if chromium_unavailable_reason():
        pytest.skip(chromium_unavailable_reason())
    seen = visit(page, tmp_path / "emulated.png")
    assert seen.requests == [] and seen.console == []
    assert '<section id="latency">' in seen.dom and seen.dom.count('<figure class="plot"') >= 2
