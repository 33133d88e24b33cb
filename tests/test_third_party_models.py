"""Models that others wrote: every shape that broke naive quantization, end to end with the real quantizer
and runtime. The models are real flatbuffers built by tests/third_party_models.py (seeded, untrained)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from edgebench.agent import agent
from edgebench.core.errors import QuantizationError
from edgebench.model.source import ModelSource
from edgebench.model.tflite_model import inspect_model
from edgebench.quantize.normalize import normalize_model
from edgebench.quantize.variants import VARIANT_SPECS, Variant, VariantSkipped, build_variants, verify_variant
from tests.helpers import assert_one_line_error, run_edgebench, run_main
from tests.third_party_models import write_model

INT8_FAMILY = ("dynamic-int8", "int8", "int16x8")
QUICK = ["--min-runs", "10", "--min-seconds", "0.05", "--warmup-seconds", "0", "--fidelity-samples", "20",
         "--rounds", "1"]  # fmt: skip
# (shape, build options): no SignatureDef; float16-stored weights; pre-TF-2.3 operator codes; PRELU throughout;
# two outputs; two inputs.
SHAPES = [
    ("landmark", {"float16_weights": True}),
    ("landmark", {"legacy_opcodes": True}),
    ("detector", {}),
    ("two-input", {"signature": True}),
    ("detector", {"sparse_weights": True}),  # float16 weights stored SPARSE behind DENSIFY -> DEQUANTIZE
]


def outputs_of(path, inputs):
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return agent.ModelRunner(interpreter).run(inputs)


def dataset_for(path, folder, count=60, labelled=False):
    """Real-looking data for a model's inputs: uint8 images with a scale, one array per input."""
    interpreter = Interpreter(model_path=str(path))
    details = interpreter.get_input_details()
    rng = np.random.default_rng(7)
    keys = ["x"] if len(details) == 1 else [f"x{i}" for i in range(len(details))]
    arrays = {
        key: rng.integers(0, 256, (count, *d["shape"][1:]), dtype=np.uint8)
        for key, d in zip(keys, details, strict=True)
    }
    arrays["x_scale"] = np.float32(1 / 255)
    if labelled:
        arrays["y"] = rng.integers(0, 10, count)
    target = folder / f"{path.stem}-data.npz"
    np.savez(target, **arrays)
    return target


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("third-party")
    return {(shape, tuple(sorted(options))): write_model(folder, shape, **options) for shape, options in SHAPES}


@pytest.fixture(scope="module")
def built(models, tmp_path_factory):
    """Every shape's default variant set, calibrated on a held-out slice of a data set."""
    cache = tmp_path_factory.mktemp("third-party-cache")
    found = {}
    for key, path in models.items():
        source = ModelSource(path.stem, path, dataset_path=dataset_for(path, path.parent))
        found[key] = build_variants(source, cache_dir=cache)
    return found


def test_the_quantizer_alone_leaves_legacy_opcode_models_unchanged(models, tmp_path):
    """The cause, kept as a test: ai-edge-quantizer reads builtin_code, which pre-2.3 models leave 0 (ADD)."""
    from ai_edge_quantizer import quantizer

    from edgebench.quantize.variants import _recipe

    path = models[("landmark", ("legacy_opcodes",))]
    assert inspect_model(path).legacy_opcodes > 0
    qt = quantizer.Quantizer(str(path))
    qt.load_quantization_recipe(_recipe("dynamic-int8"))
    output = tmp_path / "out.tflite"
    output.write_bytes(bytes(qt.quantize().quantized_model))
    assert "int8" not in inspect_model(output).weight_elements  # nothing was quantized, and no error said so
    assert inspect_model(output).weight_elements == inspect_model(path).weight_elements


@pytest.mark.parametrize(("shape", "options"), SHAPES)
def test_normalization_gives_a_plain_float32_reference_that_computes_the_same(models, tmp_path, shape, options):
    path = models[(shape, tuple(sorted(options)))]
    normalized = normalize_model(path, tmp_path)
    info = inspect_model(normalized.reference)
    assert info.is_plain_float32 and not info.dequantized_constants and info.legacy_opcodes == 0
    assert inspect_model(normalized.quantizer_input).has_signature
    inputs = agent.representative_inputs(Interpreter(model_path=str(path)).get_input_details(), 8)
    for original, reference in zip(outputs_of(path, inputs), outputs_of(normalized.reference, inputs), strict=True):
        np.testing.assert_allclose(reference, original, rtol=1e-5, atol=1e-6)
    if options.get("float16_weights"):
        assert normalized.changes == ("unfolded from float16-stored weights (10 constant(s) behind DEQUANTIZE)",)
        assert inspect_model(path).dequantized_constants == {"float16": 10}
    elif options.get("sparse_weights"):
        assert normalized.changes == (
            "densified 11 sparse float16 constant(s) (DENSIFY folded)",
            "unfolded from float16-stored weights (11 constant(s) behind DEQUANTIZE)",
        )
        assert inspect_model(path).operators["DENSIFY"] == 11 and "DENSIFY" not in info.operators
    elif options.get("legacy_opcodes"):
        assert "operator code(s) upgraded from the pre-TF-2.3 schema" in normalized.changes[0]
    else:
        assert normalized.changes == () and normalized.reference == path  # the user's own file, untouched


@pytest.mark.parametrize(("shape", "options"), SHAPES)
def test_every_int8_family_variant_is_really_quantized(built, models, shape, options):
    results = {r.name: r for r in built[(shape, tuple(sorted(options)))]}
    assert not [r for r in results.values() if isinstance(r, VariantSkipped)], results
    assert "qat-int8" not in results  # no quantization-aware model ships for a user's file
    reference = results["float32"]
    source_bytes = {reference.path.read_bytes(), models[(shape, tuple(sorted(options)))].read_bytes()}
    for name in INT8_FAMILY:
        variant = results[name]
        assert reference.size_bytes / variant.size_bytes >= 3.0, (name, variant.size_bytes)
        assert variant.weights.startswith("int8 ") and float(variant.weights.split()[1].rstrip("%")) > 90
        assert variant.path.read_bytes() not in source_bytes
    assert results["float16"].weights.startswith("float16") and results["int4-weights"].weights.startswith("int4")
    assert any("held out" in note for note in results["int8"].notes)


def test_dynamic_int8_is_deterministic_and_close_to_float32_on_depthwise_models(built, models):
    """LiteRT 2.3's per-tensor hybrid DEPTHWISE_CONV_2D gave two fresh interpreters different outputs (up to
    0.52 apart, SQNR -2 to 19 dB); edgebench's dynamic-int8 quantizes depthwise weights per channel."""
    path = models[("detector", ())]
    (variant,) = [r for r in built[("detector", ())] if r.name == "dynamic-int8"]
    inputs = agent.representative_inputs(Interpreter(model_path=str(path)).get_input_details(), 20)
    first, second = outputs_of(variant.path, inputs), outputs_of(variant.path, inputs)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    metrics = agent.fidelity_metrics(first, outputs_of(path, inputs))
    assert min(m["sqnr_db"] for m in metrics) > 35, metrics


def test_a_copy_of_the_reference_is_never_reported_as_a_variant(models):
    path = models[("detector", ())]
    info = inspect_model(path)
    reason, share = verify_variant(VARIANT_SPECS["dynamic-int8"], info, info)
    assert reason == "the quantizer returned the float32 model unchanged: no int8 weights" and share == 0


def test_the_converted_share_counts_only_what_the_variant_converted(models):
    """Shares against a reference that still holds float16 weights (one normalization could not unfold): the
    float16 variant's weights were float16 already (not 1219%), and a dynamic-int8 file that converted 7.4% of
    the float weights is 7.4% (not 90.9% of the few float32 ones), so it is refused."""
    reference_path, variant_path = models[("detector", ())], models[("landmark", ("legacy_opcodes",))]
    reference = dataclasses.replace(inspect_model(reference_path), weight_elements={"float16": 2_700_000,
                                                                                    "float32": 16_400})  # fmt: skip
    float16 = dataclasses.replace(inspect_model(variant_path), weight_elements={"float16": 2_716_400})
    reason, share = verify_variant(VARIANT_SPECS["float16"], reference, float16)
    assert share <= 1.0 and share < 0.01 and reason.startswith("only 1% of the float weights became float16")
    few = dataclasses.replace(inspect_model(variant_path), weight_elements={"int8": 200_000, "float16": 2_500_000,
                                                                            "float32": 16_400})  # fmt: skip
    reason, share = verify_variant(VARIANT_SPECS["dynamic-int8"], reference, few)
    assert round(share, 3) == 0.074 and reason.startswith("only 7% of the float weights became int8")
    most = dataclasses.replace(few, weight_elements={"int8": 2_000_000, "float16": 700_000, "float32": 16_400})
    assert verify_variant(VARIANT_SPECS["dynamic-int8"], reference, most) == (None, 2_000_000 / 2_716_400)


def test_a_variant_the_quantizer_left_mostly_float_is_refused(models):
    """float16 weights claimed, but the file still holds float32 everywhere (a float32 model under another name)."""
    reference = inspect_model(models[("detector", ())])
    not_converted = inspect_model(models[("landmark", ("legacy_opcodes",))])
    reason, _ = verify_variant(VARIANT_SPECS["float16"], reference, not_converted)
    assert reason.startswith("only 0% of the float weights became float16; float32 weights remain in FULLY_CONNECTED")


def test_without_calibration_the_static_recipes_are_skipped_and_nothing_fails(models, tmp_path):
    path = models[("detector", ())]
    results = build_variants(ModelSource("detector", path), cache_dir=tmp_path)
    skipped = {r.name: r.reason for r in results if isinstance(r, VariantSkipped)}
    assert set(skipped) == {"int8", "int16x8"}
    assert all("--calibration" in reason for reason in skipped.values())
    assert [r.name for r in results if isinstance(r, Variant)] == ["float32", "float16", "dynamic-int8", "int4-weights"]


def test_an_explicitly_requested_variant_that_cannot_be_made_is_bad_input(models, tmp_path):
    with pytest.raises(QuantizationError, match="variant int8 cannot be made for detector: needs calibration"):
        build_variants(ModelSource("detector", models[("detector", ())]), ["float32", "int8"], cache_dir=tmp_path)


def test_quantize_a_users_model_with_no_other_flag(models, tmp_path):
    result = run_edgebench("quantize", str(models[("landmark", ("float16_weights",))]), "--cache-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "float32: unfolded from float16-stored weights" in text
    assert "int8 skipped: needs calibration data" in text
    lines = result.stdout.splitlines()
    assert max(i for i, line in enumerate(lines) if "skipped" in line and "│" in line) > max(
        i for i, line in enumerate(lines) if "dynamic-int8" in line and "│" in line
    )


def test_run_a_detector_without_a_dataset_reports_fidelity(models, tmp_path):
    result = run_edgebench(
        "run", "--device", "local", "--model", str(models[("detector", ())]), *QUICK, "--json",
        "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["run"]["fidelity"]["source"] == "random"
    assert "weak proxy" in document["run"]["fidelity"]["description"]
    rows = {v["name"]: v for v in document["variants"]}
    assert {rows[name]["status"] for name in ("int8", "int16x8")} == {"skipped"}
    for name in ("float32", "float16", "dynamic-int8", "int4-weights"):
        row = rows[name]
        assert row["status"] == "ok" and len(row["fidelity_outputs"]) == 2, row
        assert [o["name"] for o in row["fidelity_outputs"]] == ["boxes", "scores"]
        assert -1 <= row["cosine"] <= 1 and row["max_abs_error"] >= 0
        assert all(o["reference_rms"] > 0 for o in row["fidelity_outputs"])  # measured on the device, per tensor
        assert set(row["fidelity_worst"].values()) <= {"boxes", "scores", None}
    # float32 on the device against float32 on the host: the same runtime, the same numbers.
    assert rows["float32"]["fidelity_exact"] and rows["float32"]["max_abs_error"] == 0
    assert rows["float16"]["sqnr_db"] > 40  # float16 weights barely move the outputs
    assert rows["int4-weights"]["sqnr_db"] < rows["float16"]["sqnr_db"]


def test_run_with_a_labelled_dataset_holds_out_a_calibration_slice(models, tmp_path):
    path = models[("landmark", ("float16_weights",))]
    data = dataset_for(path, tmp_path, count=50, labelled=True)
    result = run_edgebench(
        "run", "--device", "local", "--model", str(path), "--dataset", str(data), *QUICK,
        "--variants", "float32,int8", "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "c"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "int8: calibrated on the last 10 samples of landmark-float16_weights-data.npz, held out: accuracy uses " \
           "the first 40" in text  # fmt: skip
    assert "SQNR dB" in result.stdout and "top-1" in result.stdout
    (folder,) = (tmp_path / "results" / "local").iterdir()
    run = json.loads((folder / "run.json").read_text())
    assert run["dataset"]["calibration_holdout"] == 10 and run["settings"]["samples"] == 40
    assert json.loads((folder / "int8.json").read_text())["accuracy"]["total"] == 40
    assert run["fidelity"]["samples"] == 20 and run["fidelity"]["source"] == "dataset"


def test_run_a_two_input_model_end_to_end(models, tmp_path):
    path = models[("two-input", ("signature",))]
    data = dataset_for(path, tmp_path, count=30)
    result = run_edgebench(
        "run", "--device", "local", "--model", str(path), "--dataset", str(data), *QUICK,
        "--variants", "float32,dynamic-int8,int8", "--json",
        "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "c"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {v["name"]: v for v in json.loads(result.stdout)["variants"]}
    assert all(rows[name]["status"] == "ok" and rows[name]["fidelity_outputs"] for name in rows)
    assert rows["int8"]["sqnr_db"] > 20


def test_explicit_variant_that_cannot_be_made_exits_2_before_measuring(models, tmp_path, capfd):
    result = run_main(capfd,
        "run", "--device", "local", "--model", str(models[("detector", ())]), "--variants", "float32,int8", *QUICK,
        "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "c"),
    )  # fmt: skip
    assert_one_line_error(result, "variant int8 cannot be made for detector", "--calibration")
    assert not (tmp_path / "results").exists()


def test_a_dataset_that_does_not_fit_the_model_stops_before_anything_runs(models, tmp_path, capfd):
    data = tmp_path / "wrong-shape.npz"
    np.savez(data, x=np.zeros((20, 28, 28), np.uint8))  # MNIST-shaped samples for a 64x64x3 model
    result = run_main(capfd,
        "run", "--device", "local", "--model", str(models[("detector", ())]), "--dataset", str(data), *QUICK,
        "--variants", "float32", "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "c"),
    )  # fmt: skip
    assert_one_line_error(
        result, "wrong-shape.npz", "'x' samples are (28, 28), detector's input 'image' takes (64, 64, 3)"
    )
    assert not (tmp_path / "results").exists()


def test_a_custom_operator_is_named_with_the_users_file_before_anything_is_quantized(tmp_path, capfd):
    from tests.third_party_models import GraphBuilder

    graph = GraphBuilder(seed=4)
    x = graph.input("features", (1, 32))
    graph.output(graph.dense(graph.custom(graph.dense(x, 32, "first"), "VendorFancyNorm"), 10, "out"))
    model = tmp_path / "vendor.tflite"
    model.write_bytes(graph.build())
    cache = tmp_path / "cache"
    refused = run_main(capfd, "run", "--device", "local", "--model", model, "--cache-dir", cache,
                       "--results-dir", tmp_path / "results")  # fmt: skip
    assert_one_line_error(refused, f"{model} uses the custom operator VendorFancyNorm", "cannot load")
    assert not cache.exists() or not any(cache.rglob("*.tflite"))  # nothing was quantized first
    quantized = run_main(capfd, "quantize", model, "--variants", "float16", "--cache-dir", cache)
    assert "edgebench: warning: " in quantized.stderr and "VendorFancyNorm" in quantized.stderr


def test_an_unfolded_reference_is_labelled_so_with_the_users_file_size(built, models):
    for (shape, options), results in built.items():
        reference = next(r for r in results if r.name == "float32")
        given = models[(shape, options)].stat().st_size
        if reference.path == models[(shape, options)]:
            assert reference.recipe == "the float model as given"
        else:
            assert reference.recipe == f"the float32 reference, normalized from the published file ({given:,} bytes)"


def test_the_run_table_gives_sizes_against_the_users_published_file(models, tmp_path, capfd):
    model = models[("landmark", ("float16_weights",))]
    done = run_main(capfd, "run", "--device", "local", "--model", model, "--variants", "float32,dynamic-int8",
                    *QUICK, "--results-dir", tmp_path / "results", "--cache-dir", tmp_path / "cache")  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert f"smaller than your file ({model.stat().st_size:,} bytes): float32 0.5" in said  # unfolded: twice as big


@pytest.mark.slow
def test_a_published_model_gets_post_training_pruned_variants_with_fidelity(models, tmp_path):
    """A published file (float16-stored weights, no signature) is normalized, then pruned: no labels needed, the
    fidelity figures say what each pruning level costs, and the files carry their zeros."""
    path = models[("landmark", ("float16_weights",))]
    result = run_edgebench(
        "run", "--device", "local", "--model", str(path), "--dataset", str(dataset_for(path, tmp_path)), *QUICK,
        "--variants", "float32,pruned-50,pruned-90,pruned-int8", "--json",
        "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    rows = {v["name"]: v for v in document["variants"]}
    assert all(rows[name]["status"] == "ok" for name in rows), rows
    assert rows["float32"]["fidelity_exact"]
    # More zeros, less fidelity; and pruning then int8 is below pruning alone.
    assert rows["pruned-50"]["sqnr_db"] > rows["pruned-90"]["sqnr_db"] > 0
    assert rows["pruned-int8"]["sqnr_db"] < rows["pruned-50"]["sqnr_db"]
    files = {v["name"]: v for v in document["run"]["variants"]}
    assert files["pruned-90"]["sparsity"]["target"] == 0.9
    assert all(abs(t["zeros"] / t["elements"] - t["target"]) <= 0.01 for t in files["pruned-90"]["sparsity"]["tensors"])
    assert files["pruned-90"]["compressed"]["gzip"] < files["pruned-50"]["compressed"]["gzip"]
    assert files["pruned-90"]["compressed"]["gzip"] < files["float32"]["compressed"]["gzip"] / 2
