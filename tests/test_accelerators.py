"""LiteRT's CompiledModel on its GPU accelerator, for real: WebGPU over Vulkan, on SwiftShader (the software
Vulkan device Debian's chromium ships) where no GPU is. Placement and fidelity are the GPU path's own; latency is
a CPU's and is labelled so."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import pytest

from edgebench.agent import agent
from tests.helpers import run_edgebench

SWIFTSHADER = Path("/usr/lib/chromium/vk_swiftshader_icd.json")
DEVICES = Path(__file__).resolve().parent.parent / "devices"


def vulkan_unavailable_reason() -> str | None:
    if not SWIFTSHADER.is_file():
        return f"no software Vulkan device ({SWIFTSHADER}; apt-get install chromium, as .ci/run does)"
    try:
        ctypes.CDLL("libvulkan.so.1")
    except OSError:
        return "no Vulkan loader (libvulkan.so.1; apt-get install libvulkan1, as .ci/run does)"
    try:
        import ai_edge_litert.compiled_model  # noqa: F401
    except ImportError:
        return "this ai-edge-litert has no CompiledModel"
    return None


def test_the_adapter_and_the_runtimes_reason_are_read_from_its_log():
    log = ("I0000 environment.cc:532] Selected adapter: SwiftShader Device (Subzero), arch=swiftshader, "
           "vendor=google, backend=Vulkan, adapterType=CPU / Software\n")  # fmt: skip
    found = agent.ADAPTER_LINE.search(log)
    assert found.group("name") == "SwiftShader Device (Subzero)" and "Software" in found.group("kind")
    refused = ("WARNING: Failed to load plugin at: x/libLiteRtCompilerPlugin_IntelOpenvino.so\n"
               "E0000 delegate_webgpu.cc:359] Failed to initialize WebGPU environment: INTERNAL: "
               "No adapters found\n")  # fmt: skip
    assert agent._runtime_reason(refused, RuntimeError("ERROR: [compiled_model.cc:1036]")) == (
        "Failed to initialize WebGPU environment: INTERNAL: No adapters found"
    )  # the OpenVINO plugin every x86 wheel fails to load is not the reason
    assert agent._runtime_reason("", RuntimeError("ERROR:\n  [x]")) == "ERROR: [x]"


@pytest.mark.slow
def test_a_run_on_the_gpu_accelerator_says_where_it_ran_and_what_it_computes(tmp_path, variant_cache):
    reason = vulkan_unavailable_reason()
    if reason:
        pytest.skip(reason)
    done = run_edgebench(
        "run", "--device", "local-gpu", "--model", "mnist", "--variants", "float32,float16,int16x8",
        "--rounds", "1", "--samples", "200", "--min-runs", "10", "--min-seconds", "0.1", "--warmup-seconds", "0",
        "--fidelity-samples", "20", "--devices-dir", str(DEVICES), "--results-dir", str(tmp_path),
        "--cache-dir", str(variant_cache), "--format", "markdown",
    )  # fmt: skip
    said = " ".join(done.stdout.split())
    # int16x8 cannot be fed through LiteRT's Python CompiledModel: the variant is unsupported there, said in one
    # line, and the run exits 1 as for any variant a device cannot run (the others are measured).
    assert done.returncode == 1, done.stderr[-2000:]
    assert "int16x8 failed: unsupported on this device: LiteRT's CompiledModel cannot be fed this model's int16" in said
    assert "SOFTWARE GPU (SwiftShader Device (Subzero)): placement and fidelity are real, latency is not" in said
    assert "placement: GPU (SwiftShader Device (Subzero)) took every operator of float32, float16" in said
    assert "(software GPU: no speed claims)" in said
    folder = next(tmp_path.glob("local-gpu/*"))
    for name in ("float32", "float16"):
        document = json.loads((folder / f"{name}.json").read_text())
        assert document["placement"] == {"accelerator": "gpu", "fully_accelerated": True,
                                         "adapter": "SwiftShader Device (Subzero)", "software": True}  # fmt: skip
        assert document["timing"]["load_us"] > 0 and document["timing"]["stats"]["count"] >= 10
        # Fidelity against float32 on the CPU (the host's reference): the GPU computes what the CPU does.
        worst = min(o["sqnr_db"] or 200 for o in document["fidelity"]["outputs"])
        assert worst > 60, document["fidelity"]
        assert document["accuracy"]["top1"] >= 0.98
    record = json.loads((folder / "run.json").read_text())
    assert record["settings"]["accelerator"] == "gpu"
