"""Why, not only what: kernel placement read from the delegated graph, and per-layer error against float32."""

import json
import re

import numpy as np
import pytest

from edgebench.agent import agent
from tests.helpers import run_edgebench


@pytest.fixture(scope="module")
def interpreter_class():
    return agent.load_runtime("ai_edge_litert")[0]


def placement(interpreter_class, path, delegate="xnnpack"):
    interpreter = agent.create_interpreter(interpreter_class, str(path), 1, delegate)
    interpreter.allocate_tensors()
    return agent.kernel_placement(interpreter, delegate)


def test_placement_says_which_nodes_the_delegate_took(interpreter_class, mnist_variants):
    int8 = placement(interpreter_class, mnist_variants["int8"].path)
    assert (int8["delegated"], int8["nodes"], int8["partitions"]) == (7, 7, 1)
    # int16x8: XNNPACK has no kernels for int16 activations, so every node runs on the builtin ones.
    int16 = placement(interpreter_class, mnist_variants["int16x8"].path)
    assert (int16["delegated"], int16["partitions"]) == (0, 0) and {o["on"] for o in int16["operators"]} == {"builtin"}
    # int4 weights: the dequantized convolutions and dense layers stay outside, the pools and reshape go in,
    # in two partitions.
    int4 = placement(interpreter_class, mnist_variants["int4-weights"].path)
    outside = {o["op"] for o in int4["operators"] if o["on"] == "builtin"}
    assert int4["partitions"] == 2 and outside == {"DEQUANTIZE", "CONV_2D", "FULLY_CONNECTED"}
    assert {o["op"] for o in int4["operators"] if o["on"] == "XNNPACK"} == {"MAX_POOL_2D", "RESHAPE"}
    none = placement(interpreter_class, mnist_variants["int8"].path, "none")
    assert (none["delegated"], none["partitions"], none["delegate"]) == (0, 0, "none")


def test_the_last_layers_error_is_the_fidelity_of_the_outputs_computed_another_way(
    interpreter_class, mnist_variants, mnist
):  # fmt: skip
    """The per-layer walk (every tensor kept, matched by name, dequantized) against the fidelity code (the
    model's outputs through ModelRunner, SQNR over all of them) on the same inputs and kernels."""
    dataset = agent.load_npz(mnist.dataset_path)
    inputs = agent.input_sets(dataset, 0, 20)
    reference = {"in0": inputs[0]}
    float32_path, int8_path = str(mnist_variants["float32"].path), str(mnist_variants["int8"].path)
    layers = agent.layer_errors(interpreter_class, int8_path, float32_path, reference)["layers"]
    outputs = []
    for path in (int8_path, float32_path):
        interpreter = agent.create_interpreter(interpreter_class, path, 1, "none")
        interpreter.allocate_tensors()
        runner = agent.ModelRunner(interpreter)
        outputs.append(np.concatenate([runner.run([inputs[0][i : i + 1]])[0] for i in range(20)]))
    (expected,) = agent.fidelity_metrics([outputs[0]], [outputs[1]])
    assert layers[-1]["op"] == "FULLY_CONNECTED" and layers[-1]["sqnr_db"] == pytest.approx(
        expected["sqnr_db"], abs=0.05
    )
    # Precision is lost step by step, most in the logits: the first layer under 20 dB is the last one.
    below = [layer for layer in layers if layer["sqnr_db"] < 20]
    assert below == [layers[-1]] and layers[0]["sqnr_db"] > 35
    float16 = agent.layer_errors(interpreter_class, str(mnist_variants["float16"].path), float32_path, reference)
    assert all(layer["sqnr_db"] is None or layer["sqnr_db"] > 60 for layer in float16["layers"])


@pytest.mark.slow
def test_a_profiled_run_says_where_each_variant_ran_and_where_precision_goes(tmp_path, variant_cache):
    done = run_edgebench(
        "run", "--device", "local", "--model", "mnist", "--variants", "float32,int8,int16x8", "--rounds", "1",
        "--samples", "200", "--min-runs", "5", "--min-seconds", "0.05", "--warmup-seconds", "0", "--profile",
        "--results-dir", str(tmp_path), "--cache-dir", str(variant_cache), "--format", "markdown",
        "--report", str(tmp_path / "report.html"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "placement: XNNPACK took every node of float32, int8" in said
    assert "placement: int16x8: XNNPACK took 0 of 7 nodes (0 partitions); on the runtime's builtin kernels: " in said
    assert "layers: int8 SQNR dB after each layer against float32 (20 inputs, builtin kernels): CONV_2D" in said
    assert "first below 20 dB: FULLY_CONNECTED" in said
    assert re.search(r"time: int16x8 per operator \(each alone\): CONV_2D #\d [\d.]+ ms \(\d+%, builtin\)", said)
    assert "--profile took" in said
    page = (tmp_path / "report.html").read_text()
    assert 'id="profile"' in page and "where the time goes (--profile)" in page and "error after each layer" in page
    assert "int16x8 on local" in page and "XNNPACK 0 of 7 nodes, 0 partitions" in page
    document = json.loads(next(tmp_path.glob("local/*/int8.json")).read_text())
    assert document["placement"]["delegated"] == 7 and document["layers"]["seconds"] < 30
    # One probe per operator, in the model's order, each timed on the kernel the whole model gave it.
    probes = document["operators"]["probes"]
    assert [p["op"] for p in probes] == [o["op"] for o in document["placement"]["operators"]]
    assert all(p["p50_us"] > 0 and p["runs"] >= 5 and p["on"] == "XNNPACK" for p in probes)
    # Probe models are made in the variant cache: float32's file is the packaged zoo model, whose folder
    # (perhaps read-only, perhaps a checkout) is never written.
    from edgebench.zoo import load_zoo_model

    assert not list(load_zoo_model("mnist").model_path.parent.glob("probes-*"))
    assert len(list(variant_cache.glob("probes-*"))) >= 3


def test_probe_models_keep_one_operator_with_its_weights_and_real_shapes(mnist_variants, tmp_path, interpreter_class):
    from edgebench.quantize.probes import probe_models

    probes = probe_models(mnist_variants["int8"].path, tmp_path)
    assert [p.op for p in probes] == ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE",
                                      "FULLY_CONNECTED", "FULLY_CONNECTED"]  # fmt: skip
    dense = probes[5]
    assert dense.path.stat().st_size > 3_000_000  # the 3136x1024 int8 weights travel with it, nothing else
    interpreter = interpreter_class(model_path=str(dense.path))
    interpreter.allocate_tensors()
    (given,) = interpreter.get_input_details()
    (made,) = interpreter.get_output_details()
    assert list(given["shape"]) == [1, 3136] and given["dtype"] == np.int8 and given["quantization"][0] > 0
    assert list(made["shape"]) == [1, 1024]
    assert probe_models(mnist_variants["int8"].path, tmp_path) == probes  # made once: the same files


def test_compare_names_the_operator_that_moved_and_why():
    from edgebench.compare.profile_diff import profile_changes

    def document(dense_us, dense_on, last_db):
        probes = [{"index": 0, "op": "CONV_2D", "p50_us": 233.0, "on": "XNNPACK"},
                  {"index": 5, "op": "FULLY_CONNECTED", "p50_us": dense_us, "on": dense_on},
                  {"index": 6, "op": "FULLY_CONNECTED", "p50_us": 1.0, "on": dense_on}]  # fmt: skip
        layers = [{"index": 0, "op": "CONV_2D", "tensor": "c", "sqnr_db": 41.9},
                  {"index": 6, "op": "FULLY_CONNECTED", "tensor": "logits", "sqnr_db": last_db}]  # fmt: skip
        return {"operators": {"probes": probes}, "layers": {"layers": layers}}

    changes = profile_changes(document(67.0, "XNNPACK", 18.3), document(12_000.0, "builtin", 18.3))
    assert changes == ["FULLY_CONNECTED #5 +11.93 ms: builtin kernels now (was XNNPACK)",
                       "FULLY_CONNECTED #6 +0 µs: builtin kernels now (was XNNPACK)"]  # fmt: skip
    assert profile_changes(document(67.0, "XNNPACK", 18.3), document(70.0, "XNNPACK", 18.3)) == []  # noise
    assert profile_changes(document(67.0, "XNNPACK", 18.3), document(67.0, "XNNPACK", 12.0)) == [
        "first layer whose error moved: FULLY_CONNECTED #6 18.3 → 12.0 dB"
    ]
    assert profile_changes({}, document(67.0, "XNNPACK", 18.3)) == []  # one side unprofiled: nothing claimed


@pytest.mark.slow
def test_full_int8_mobilenet_loses_its_precision_in_the_depthwise_layers(interpreter_class, variant_cache):
    """MobileNet's per-layer error: the depthwise convolutions are where full int8 loses most precision, and the
    last layer's figure equals the outputs' fidelity computed through the model's outputs instead of its kept
    tensors."""
    from filelock import FileLock

    from edgebench.quantize.variants import Variant, build_variants
    from edgebench.report.run_table import largest_drops
    from edgebench.zoo import load_zoo_model

    source = load_zoo_model("mobilenet-digits")
    with FileLock(str(variant_cache) + ".lock"):
        variants = {v.name: v for v in build_variants(source, ["float32", "int8"], cache_dir=variant_cache)
                    if isinstance(v, Variant)}  # fmt: skip
    dataset = agent.load_npz(source.dataset_path)
    inputs = agent.input_sets(dataset, 0, 20)[0]
    float32_path, int8_path = str(variants["float32"].path), str(variants["int8"].path)
    layers = agent.layer_errors(interpreter_class, int8_path, float32_path, {"in0": inputs})["layers"]
    assert all(layer["sqnr_db"] is not None for layer in layers)  # float tensors only: no shapes, no indices
    drops = largest_drops(layers)
    assert [layer["op"] for layer, _ in drops] == ["DEPTHWISE_CONV_2D", "DEPTHWISE_CONV_2D"] and drops[0][1] < -5
    outputs = []
    for path in (int8_path, float32_path):
        interpreter = agent.create_interpreter(interpreter_class, path, 1, "none")
        interpreter.allocate_tensors()
        runner = agent.ModelRunner(interpreter)
        outputs.append(np.concatenate([runner.run([inputs[i : i + 1]])[0] for i in range(20)]))
    (expected,) = agent.fidelity_metrics([outputs[0]], [outputs[1]])
    assert layers[-1]["sqnr_db"] == pytest.approx(expected["sqnr_db"], abs=0.05)


def with_output(path, tensor_name: str, folder) -> str:
    """The model with one more graph output: the tensor of that name (a copy, made with the flatbuffer tools)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(path)
    subgraph = model.subgraphs[0]
    index = next(i for i, t in enumerate(subgraph.tensors) if t.name.decode() == tensor_name)
    subgraph.outputs = [*subgraph.outputs, index]
    model.signatureDefs = []
    copy = folder / (path.stem + "-tapped.tflite")
    flatbuffer_utils.write_model(model, str(copy))
    return str(copy)


@pytest.mark.slow
def test_a_middle_layers_error_matches_the_same_tensor_made_a_graph_output(
    interpreter_class, mnist_variants, mnist, tmp_path
):  # fmt: skip
    """Independently of keeping every tensor: the second convolution's output made an output of both graphs
    (flatbuffer surgery), run normally, its SQNR by the fidelity code."""
    dataset = agent.load_npz(mnist.dataset_path)
    inputs = agent.input_sets(dataset, 0, 20)[0]
    float32_path, int8_path = mnist_variants["float32"].path, mnist_variants["int8"].path
    layers = agent.layer_errors(interpreter_class, str(int8_path), str(float32_path), {"in0": inputs})["layers"]
    second_conv = [layer for layer in layers if layer["op"] == "CONV_2D"][1]
    outputs = []
    for path in (int8_path, float32_path):
        tapped = with_output(path, second_conv["tensor"], tmp_path)
        interpreter = agent.create_interpreter(interpreter_class, tapped, 1, "none")
        interpreter.allocate_tensors()
        runner = agent.ModelRunner(interpreter)
        outputs.append(np.concatenate([runner.run([inputs[i : i + 1]])[-1].reshape(1, -1) for i in range(20)]))
    (expected,) = agent.fidelity_metrics([outputs[0]], [outputs[1]])
    assert second_conv["sqnr_db"] == pytest.approx(expected["sqnr_db"], abs=0.05)
