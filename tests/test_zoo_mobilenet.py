"""The shipped mobilenet-digits entry: a real depthwise-separable edge vision network, trained, intact, runnable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgebench.accuracy.evaluate import evaluate_file
from edgebench.model.dataset import load_dataset
from edgebench.model.tflite_model import inspect_model
from edgebench.zoo import load_zoo_model, zoo_names
from tests.helpers import run_edgebench


@pytest.fixture(scope="module")
def mobilenet():
    return load_zoo_model("mobilenet-digits")  # checks every shipped file against its recorded sha256


def test_it_is_listed_next_to_mnist():
    assert zoo_names() == ["mnist", "mobilenet-digits"]


def test_it_is_a_mobilenet_class_network(mobilenet):
    info = inspect_model(mobilenet.model_path)
    assert info.operators["DEPTHWISE_CONV_2D"] == 13  # MobileNetV1's 13 depthwise-separable blocks
    assert info.operators["CONV_2D"] == 14 + 1  # the stem, 13 pointwise convolutions and the 1x1 classifier
    assert info.input_dtypes == ("float32",) and info.is_plain_float32
    # Keras counts 4 batch-norm parameters per channel; the converter folds them into the convolutions
    # and leaves one bias each. MobileNetV1 0.25 normalizes 2,736 channels (the stem's 8, then each
    # block's depthwise and pointwise outputs), so the file holds 3 x 2,736 fewer float elements.
    assert info.float_weight_elements == mobilenet.provenance["training"]["parameters"] - 3 * 2_736


def test_the_shipped_data_are_96x96_canvases(mobilenet):
    test = load_dataset(mobilenet.dataset_path)
    assert test.arrays["x"].shape == (2_000, 96, 96) and test.arrays["x"].dtype == np.uint8
    assert set(np.unique(test.labels)) == set(range(10))
    calibration = np.load(mobilenet.calibration_path)["x"]
    assert calibration.shape == (500, 96, 96)
    test_images = {image.tobytes() for image in test.arrays["x"]}
    assert not any(image.tobytes() in test_images for image in calibration)


def test_it_is_a_trained_model(mobilenet):
    accuracy = evaluate_file(mobilenet.model_path, load_dataset(mobilenet.dataset_path), 500)
    assert accuracy.top1 >= 0.94  # 0.965 on all 2,000 (provenance); chance is 0.10
    assert mobilenet.provenance["tflite_test_accuracy"]["float32"]["top1"] >= 0.95


def test_run_it_on_the_local_device(tmp_path):
    result = run_edgebench(
        "run", "--device", "local", "--model", "mobilenet-digits", "--variants", "float32,dynamic-int8",
        "--samples", "200", "--fidelity-samples", "20", "--min-runs", "10", "--min-seconds", "0.05",
        "--warmup-seconds", "0", "--rounds", "1", "--json", "--results-dir", str(tmp_path / "r"),
        "--cache-dir", str(tmp_path / "c"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {v["name"]: v for v in json.loads(result.stdout)["variants"]}
    assert rows["float32"]["top1"] >= 0.93 and rows["float32"]["fidelity_exact"]
    assert rows["dynamic-int8"]["sqnr_db"] > 15 and rows["dynamic-int8"]["agreement"] >= 0.95
