"""Variants of the real MNIST model: sizes, accuracy bounds, the cache, failure isolation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgebench.accuracy.evaluate import evaluate_file
from edgebench.core.errors import QuantizationError
from edgebench.model.source import ModelSource
from edgebench.quantize.variants import Variant, VariantSkipped, build_variants, parse_variant_names

ACCURACY_SAMPLES = 2_000
QUANTIZER_VARIANTS = ("float16", "dynamic-int8", "int8", "int16x8", "int4-weights")


def ratio(variants, name):
    return variants["float32"].size_bytes / variants[name].size_bytes


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("float16", 1.9, 2.1),
        ("dynamic-int8", 3.9, 4.1),
        ("int8", 3.9, 4.1),
        ("qat-int8", 3.9, 4.1),
        ("int16x8", 3.9, 4.1),
        ("int4-weights", 6.5, 8.0),
    ],
)
def test_sizes_against_float32(mnist_variants, name, low, high):
    assert low <= ratio(mnist_variants, name) <= high


@pytest.fixture(scope="module")
def float_accuracy(mnist_variants, mnist_test_set):
    return evaluate_file(mnist_variants["float32"].path, mnist_test_set, ACCURACY_SAMPLES)


def test_float32_reaches_the_seed_accuracy_on_all_10000_test_images(mnist_variants, mnist_test_set):
    accuracy = evaluate_file(mnist_variants["float32"].path, mnist_test_set)
    assert accuracy.total == 10_000
    assert accuracy.top1 >= 0.992


@pytest.mark.parametrize(
    ("name", "max_drop_pp"),
    [
        ("float16", 0.3),
        ("dynamic-int8", 0.3),
        ("int8", 0.3),
        ("qat-int8", 0.3),
        pytest.param("int16x8", 0.3, marks=pytest.mark.slow),  # the reference kernels: 17 s for 10,000 images
        ("int4-weights", 1.0),
    ],
)
def test_variant_accuracy_stays_near_float32(mnist_variants, mnist_test_set, float_accuracy, name, max_drop_pp):
    accuracy = evaluate_file(mnist_variants[name].path, mnist_test_set, ACCURACY_SAMPLES)
    assert accuracy.total == ACCURACY_SAMPLES
    assert (float_accuracy.top1 - accuracy.top1) * 100 <= max_drop_pp
    # A broken input/output quantization would still look plausible on top-1 of a
    # good model only by luck; agreement with float catches it.
    agreement = np.mean(accuracy.predictions == float_accuracy.predictions)
    assert agreement >= 0.99


def test_integer_variants_really_have_integer_io(mnist_variants):
    from edgebench.model.tflite_model import inspect_model

    assert inspect_model(mnist_variants["int8"].path).input_dtypes == ("int8",)
    assert inspect_model(mnist_variants["qat-int8"].path).input_dtypes == ("int8",)
    assert inspect_model(mnist_variants["int16x8"].path).input_dtypes == ("int16",)
    assert inspect_model(mnist_variants["dynamic-int8"].path).input_dtypes == ("float32",)


def test_second_request_is_served_from_the_cache(mnist, mnist_variants, variant_cache):
    before = {name: mnist_variants[name].path.stat().st_mtime_ns for name in QUANTIZER_VARIANTS}
    again = {r.name: r for r in build_variants(mnist, QUANTIZER_VARIANTS, cache_dir=variant_cache)}
    assert all(again[name].from_cache for name in QUANTIZER_VARIANTS)
    assert {name: again[name].path.stat().st_mtime_ns for name in QUANTIZER_VARIANTS} == before
    assert {name: again[name].sha256 for name in QUANTIZER_VARIANTS} == {
        name: mnist_variants[name].sha256 for name in QUANTIZER_VARIANTS
    }


def test_other_calibration_data_is_a_different_cache_entry(mnist, mnist_variants, variant_cache, tmp_path):
    calibration = np.load(mnist.calibration_path)
    small = tmp_path / "small-calibration.npz"
    np.savez_compressed(small, x=calibration["x"][:32], x_scale=calibration["x_scale"])
    source = ModelSource("mnist", mnist.model_path, mnist.dataset_path, small)
    (result,) = build_variants(source, ["int8"], cache_dir=variant_cache)
    assert isinstance(result, Variant) and not result.from_cache
    assert result.path != mnist_variants["int8"].path


def test_a_variant_that_cannot_be_made_is_skipped_and_the_others_are_made(mnist, tmp_path):
    """A user's model with no calibration set: the static recipes are skipped, QAT is not even tried."""
    user_model = tmp_path / "my model.tflite"
    shutil.copy(mnist.model_path, user_model)
    results = build_variants(ModelSource("my model", user_model), cache_dir=tmp_path / "cache")
    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == ["float32", "float16", "dynamic-int8", "int8", "int16x8", "int4-weights"]
    assert isinstance(by_name["int8"], VariantSkipped) and "--calibration" in by_name["int8"].reason
    assert isinstance(by_name["dynamic-int8"], Variant) and by_name["dynamic-int8"].weights.startswith("int8 99.")


def test_an_explicit_request_that_cannot_be_made_is_bad_input(mnist, tmp_path):
    user_model = tmp_path / "mine.tflite"
    shutil.copy(mnist.model_path, user_model)
    with pytest.raises(QuantizationError, match=r"variant qat-int8 cannot be made for mine: .*quantization-aware"):
        build_variants(ModelSource("mine", user_model), ["float32", "qat-int8"], cache_dir=tmp_path / "cache")


def test_variant_names_are_validated():
    from edgebench.core.errors import EdgebenchError

    assert parse_variant_names("int8, float32,int8") == ["int8", "float32"]
    assert parse_variant_names(None) is None  # the default set, decided per model
    with pytest.raises(EdgebenchError, match="unknown variant int3"):
        parse_variant_names("int8,int3")
