"""LiteRT's CompiledModel on its GPU accelerator, for real: WebGPU over Vulkan, on SwiftShader (the software
Vulkan device Debian's chromium ships) where no GPU is. Placement and fidelity are the GPU path's own; latency is
a CPU's and is labelled so."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path
from types import SimpleNamespace

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


def openvino_unavailable_reason() -> str | None:
    """Why the NPU path cannot run here, or None: the wheel's OpenVINO dispatch and the runtime it links."""
    try:
        import ai_edge_litert
    except ImportError:
        return "no ai-edge-litert"
    dispatch = Path(ai_edge_litert.__file__).parent / "vendors" / "intel_openvino" / "dispatch"
    if not dispatch.is_dir():
        return f"this ai-edge-litert has no Intel OpenVINO dispatch ({dispatch})"
    try:
        agent.check_openvino(str(dispatch), _openvino_libraries())
    except agent.AgentFailure as error:
        return f"{error} (.ci/run installs '.[npu]')"
    return None


def _openvino_libraries() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("openvino")
    return str(Path(spec.origin).parent / "libs") if spec and spec.origin else None


def test_the_npu_partitioning_and_a_wrong_openvino_are_read_and_said(tmp_path):
    """The vendor compiler plugin's "selected N ops, from a total of M" is the NPU's node count; an OpenVINO
    other than the one the dispatch links is refused with the version to install, before the runtime starts."""
    log = ("INFO: [compiler_plugin.cc:742] Partitioned subgraph<0>, selected 5 ops, from a total of 7 ops. "
           "resulted in 2 partitions.\n")  # fmt: skip
    found = agent.PARTITION_LINE.search(log)
    assert (found["selected"], found["total"], found["partitions"]) == ("5", "7", "2")
    compiled = SimpleNamespace(
        model=SimpleNamespace(is_fully_accelerated=lambda: False),
        options={},
        log=log + "INFO: [compiled_model.cc:1397] 1 compiler plugins were applied successfully",
    )
    assert agent.accelerator_placement(compiled, "npu")["nodes"] == {"accelerated": 5, "total": 7, "partitions": 2}
    # Selected, then not compiled (int4 weights, measured here): every node on the CPU, and why.
    compiled.log = (
        log + "ERROR: [openvino_compiler_plugin.cc:714] Exception in compilation: Exception from "
        "src/core/reference/src/op/transpose.cpp:127:\nTranspose for i4/u4 dtype is supported only for "
        "ndims <= 3\n\nINFO: [compiled_model.cc:1397] 0 compiler plugins were applied successfully: \n"
    )
    placement = agent.accelerator_placement(compiled, "npu")
    assert placement["nodes"] == {"accelerated": 0, "total": 7, "partitions": 0}
    assert placement["fallback"].endswith("Transpose for i4/u4 dtype is supported only for ndims <= 3")
    dispatch, libraries = tmp_path / "dispatch", tmp_path / "libs"
    dispatch.mkdir(), libraries.mkdir()
    (dispatch / "libLiteRtDispatch_IntelOpenvino.so").write_bytes(b"\0ELF..libopenvino.so.2631\0libc.so.6\0")
    (libraries / "libopenvino.so.2641").write_bytes(b"")
    with pytest.raises(agent.AgentFailure, match=r"needs libopenvino.so.2631; .* has libopenvino.so.2641 "
                                                 r"\(pip install 'openvino==2026.3.1'\)"):  # fmt: skip
        agent.check_openvino(str(dispatch), str(libraries))
    with pytest.raises(agent.AgentFailure, match=r"needs the OpenVINO runtime \(libopenvino.so.2631\)"):
        agent.check_openvino(str(dispatch), None)
    (libraries / "libopenvino.so.2631").write_bytes(b"")
    agent.check_openvino(str(dispatch), str(libraries))  # the one it links: fine


@pytest.mark.slow
def test_the_npu_path_runs_through_openvino_beside_the_cpu_in_one_matrix(tmp_path, variant_cache):
    """devices/local-npu.toml: accelerator = ["npu", "cpu"]; the NPU path is the wheel's OpenVINO dispatch and
    compiler plugin, compiled for OpenVINO's CPU device. One run per accelerator; --json has the matrix's cells."""
    reason = openvino_unavailable_reason()
    if reason:
        pytest.skip(reason)
    report = tmp_path / "report.html"
    done = run_edgebench(
        "run", "--device", "local-npu", "--model", "mnist", "--variants", "float32,int8,int16x8",
        "--rounds", "1", "--samples", "200", "--min-runs", "10", "--min-seconds", "0.1", "--warmup-seconds", "0",
        "--fidelity-samples", "20", "--devices-dir", str(DEVICES), "--results-dir", str(tmp_path),
        "--cache-dir", str(variant_cache), "--json", "--report", str(report),
    )  # fmt: skip
    # int16x8 cannot be fed through LiteRT's Python CompiledModel: refused, a finding, so the exit is 0.
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(done.stdout)
    assert document["matrix"]["setting"] == "accelerator" and document["matrix"]["values"] == ["npu", "cpu"]
    cells = {(c["variant"], c["accelerator"]): c for c in document["cells"]}
    assert list(cells) == [(v, a) for v in ("float32", "int8", "int16x8") for a in ("npu", "cpu")]
    npu = cells["float32", "npu"]
    assert npu["placement"] == "all on NPU (software)" and npu["adapter"] == "OpenVINO CPU device"
    assert npu["speedup"] is None and npu["speedup_vs_cpu"] is None  # a CPU's latency: no claim
    assert npu["sqnr_db"] > 60  # OpenVINO's kernels compute float32 as the CPU's reference does, nearly
    assert cells["float32", "cpu"]["fidelity_exact"] and cells["float32", "cpu"]["speedup_vs_cpu"] == 1.0
    assert cells["int8", "npu"]["status"] == "ok" and cells["int16x8", "npu"]["status"] == "refused"
    assert "cannot be fed this model's int16 input" in cells["int16x8", "npu"]["error"]
    runs = document["runs"]
    assert [r["run"]["settings"]["accelerator"] for r in runs] == ["npu", "cpu"]
    assert all(r["status"] == "ok" and r["run"]["matrix"]["id"] == document["matrix"]["id"] for r in runs)
    assert runs[0]["no_speed_claims"] == "software NPU" and runs[1]["no_speed_claims"] is None
    assert runs[0]["labels"] == ["SOFTWARE NPU (OpenVINO CPU device)"]
    assert npu["compile_ms"] > 0
    placement = json.loads((Path(runs[0]["folder"]) / "float32.json").read_text())["placement"]
    assert placement["nodes"]["accelerated"] == placement["nodes"]["total"] > 0
    assert placement["npu_vendor"] == "intel_openvino" and placement["openvino_device"] == "CPU"
    # The same matrix as the terminal and markdown draw it (from the two run folders), and in the HTML report.
    from edgebench.compare.accelerator_matrix import matrix_cells
    from edgebench.compare.run_summary import summarize
    from edgebench.report.markdown import markdown_lines
    from edgebench.report.matrix_table import matrix_table
    from edgebench.results.store import load

    loaded = [load(Path(r["folder"])) for r in runs]
    views = [(data.run_id, summarize(data.record, list(data.measurements))) for data in loaded]
    drawn = " ".join(" ".join(markdown_lines(matrix_table(matrix_cells(views), "mnist on local-npu"))).split())
    assert "* SOFTWARE NPU (OpenVINO CPU device): placement and fidelity are real, latency is not" in drawn
    assert "| float32 | npu | all on NPU (software) |" in drawn and "| | cpu | CPU |" in drawn
    assert "| int16x8 | npu | refused | — |" in drawn
    assert "int16x8 on npu refused: LiteRT's CompiledModel cannot be fed this model's int16 input" in drawn
    page = " ".join(report.read_text().split())
    assert "Variant × accelerator" in page and "mnist on local-npu: variant x npu, cpu" in page
    assert "ran on a SOFTWARE NPU (OpenVINO CPU device)" in page


@pytest.mark.slow
def test_a_run_on_the_gpu_accelerator_says_where_it_ran_and_what_it_computes(tmp_path, variant_cache):
    """The GPU alone (--accelerator gpu over local-gpu's gpu,cpu list: the matrix itself is tested on the cheaper
    NPU path above)."""
    reason = vulkan_unavailable_reason()
    if reason:
        pytest.skip(reason)
    done = run_edgebench(
        "run", "--device", "local-gpu", "--accelerator", "gpu", "--model", "mnist", "--variants",
        "float32,float16,int16x8", "--rounds", "1", "--samples", "200", "--min-runs", "10", "--min-seconds", "0.1",
        "--warmup-seconds", "0", "--fidelity-samples", "20", "--devices-dir", str(DEVICES), "--results-dir",
        str(tmp_path), "--cache-dir", str(variant_cache), "--format", "markdown",
    )  # fmt: skip
    said = " ".join(done.stdout.split())
    # int16x8 cannot be fed through LiteRT's Python CompiledModel: refused in one line, a finding about the path,
    # so the exit is 0.
    assert done.returncode == 0, done.stderr[-2000:]
    assert "SOFTWARE GPU (SwiftShader Device (Subzero)): placement and fidelity are real, latency is not" in said
    assert "placement: GPU (SwiftShader Device (Subzero)) took every operator of float32, float16" in said
    assert "int16x8 refused: LiteRT's CompiledModel cannot be fed this model's int16 input" in said
    assert "(software GPU: no speed claims)" in said
    assert "(software GPU: no speed claim)" in done.stderr  # the progress lines too
    folder = next(tmp_path.glob("local-gpu/*"))
    for name in ("float32", "float16"):
        document = json.loads((folder / f"{name}.json").read_text())
        assert document["placement"] == {"accelerator": "gpu", "fully_accelerated": True, "threads": 1,
                                         "gpu_precision": "default", "adapter": "SwiftShader Device (Subzero)",
                                         "software": True}  # fmt: skip
        timing = document["timing"]
        assert timing["load_us"] > timing["compile_us"] > 0 and timing["stats"]["count"] >= 10
        # Fidelity against float32 on the CPU (the host's reference): the GPU computes what the CPU does.
        worst = min(o["sqnr_db"] or 200 for o in document["fidelity"]["outputs"])
        assert worst > 60, document["fidelity"]
        assert document["accuracy"]["top1"] >= 0.98
    assert json.loads((folder / "run.json").read_text())["settings"]["accelerator"] == "gpu"


def test_a_variant_the_accelerator_refuses_is_a_finding_and_leaves_the_run_ok():
    """An accelerator refusing a variant (int16x8 on the GPU) is what the user came to learn: the run is ok and
    exits 0; a variant that failed otherwise still makes it partial; nothing measured at all is failed."""
    from edgebench.results.store import FailureKind, Measurement
    from edgebench.run.runner import run_status

    ok = Measurement("float32", 1, "ok", {})
    refused = Measurement.failed("int16x8", 1, FailureKind.REFUSED, "the gpu accelerator could not take this model")
    crashed = Measurement.failed("int8", 1, FailureKind.CRASHED, "agent crashed")
    assert run_status([ok, refused]) == "ok"
    assert run_status([ok, refused, crashed]) == "partial"
    assert run_status([refused]) == "failed"
