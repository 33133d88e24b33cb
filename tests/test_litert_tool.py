"""LiteRT's own benchmark tool as the device's binary: the ai-edge-litert wheel's Python edition of
benchmark_litert_model (ai_edge_litert/tools/benchmark_litert_model.py), the real tool, run through the backend
that drives benchmark_model. Its flags differ (--model, switches, --result_json); the backend tells it from its
--help. On the GPU it times queued work (its run call returns before the GPU has finished): edgebench labels the
run and makes no speed claim from it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import run_edgebench
from tests.test_accelerators import SWIFTSHADER, vulkan_unavailable_reason

QUICK = ["--model", "mnist", "--variants", "float32,int8", "--rounds", "1", "--samples", "200", "--min-runs", "20",
         "--warmup-runs", "2", "--fidelity-samples", "20"]  # fmt: skip


def tool_device(folder: Path) -> Path:
    """A device file for this machine measured by the wheel's tool (a wrapper: the tool is a Python module)."""
    wrapper = folder / "benchmark_litert_model"
    wrapper.write_text(
        "#!/bin/sh\n# the ai-edge-litert wheel's benchmark_litert_model.py, the real tool\n"
        f"export VK_ICD_FILENAMES={SWIFTSHADER} XDG_RUNTIME_DIR=${{XDG_RUNTIME_DIR:-{folder}}}\n"
        f'exec {sys.executable} -m ai_edge_litert.tools.benchmark_litert_model "$@"\n'
    )
    wrapper.chmod(0o755)
    device = folder / "litert-tool.toml"
    device.write_text(
        'transport = "local"\ndescription = "this machine through LiteRT\'s benchmark_litert_model.py"\n'
        'backend = "benchmark_model"\nthreads = 1\n'
        f'[benchmark_model]\npath = "{wrapper}"\nversion = "ai-edge-litert tools/benchmark_litert_model.py"\n'
    )
    return device


@pytest.mark.slow
def test_litert_benchmark_tool_measures_the_cpu_and_its_gpu_figures_are_labelled_queued_work(tmp_path, variant_cache):
    gpu = vulkan_unavailable_reason() is None
    done = run_edgebench(
        "run", "--device", str(tool_device(tmp_path)), *QUICK, "--accelerator", "gpu,cpu" if gpu else "cpu",
        "--results-dir", str(tmp_path / "results"), "--cache-dir", str(variant_cache), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(done.stdout)
    runs = document["runs"] if gpu else [document]
    cpu = runs[-1]
    measured = {v["name"]: v for v in cpu["variants"]}
    assert measured["float32"]["status"] == measured["int8"]["status"] == "ok"
    assert measured["int8"]["speedup"] > 0 and measured["int8"]["sqnr_db"] < 40  # fidelity from the host
    float32 = json.loads((Path(cpu["folder"]) / "float32.json").read_text())
    assert float32["environment"]["runtime"]["name"] == "benchmark_litert_model.py"
    assert float32["timing"]["source"] == "litert-json" and float32["timing"]["stats"]["count"] == 20
    assert float32["timing"]["p50_is"] == "median" and float32["placement"]["fully_accelerated"] is True
    assert not any(w["kind"] == "asynchronous-timing" for w in float32["warnings"])  # the CPU is synchronous
    if not gpu:
        pytest.skip(f"the GPU half: {vulkan_unavailable_reason()}")
    cells = {(c["variant"], c["accelerator"]): c for c in document["cells"]}
    on_gpu = cells["float32", "gpu"]
    assert on_gpu["placement"] == "all on GPU" and on_gpu["speedup"] is None and on_gpu["speedup_vs_cpu"] is None
    assert "run call without waiting for the accelerator's outputs" in on_gpu["no_speed_claim"]
    assert on_gpu["fidelity_from_host"] and cells["float32", "cpu"]["no_speed_claim"] is None
