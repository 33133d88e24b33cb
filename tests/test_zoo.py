"""The shipped MNIST entry: files intact, data sets as documented, accuracy as claimed."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import edgebench.zoo as zoo
from edgebench.core.errors import UnknownModelError, ZooIntegrityError
from edgebench.model.tflite_model import inspect_model

OFFICIAL_MNIST_PARAMETERS = 3_274_634


def test_float_model_is_the_official_network(mnist):
    info = inspect_model(mnist.model_path)
    assert info.float_weight_elements == OFFICIAL_MNIST_PARAMETERS
    assert info.weight_elements.get("int32", 0) <= 4 and info.is_plain_float32  # only Flatten's int32 shape
    assert mnist.provenance["training"]["parameters"] == OFFICIAL_MNIST_PARAMETERS


def test_test_set_is_the_10000_mnist_test_images(mnist_test_set):
    x, y = mnist_test_set.arrays["x"], mnist_test_set.labels
    assert x.shape == (10_000, 28, 28) and x.dtype == np.uint8
    assert set(np.unique(y)) == set(range(10))
    assert np.isclose(float(mnist_test_set.arrays["x_scale"]), 1 / 255)
    assert mnist_test_set.path.stat().st_size < 2_500_000


def test_calibration_set_is_a_few_hundred_training_images(mnist, mnist_test_set):
    calibration = np.load(mnist.calibration_path)["x"]
    assert 100 <= len(calibration) <= 1000 and calibration.dtype == np.uint8
    test_images = {image.tobytes() for image in mnist_test_set.arrays["x"]}
    overlap = sum(image.tobytes() in test_images for image in calibration)
    assert overlap == 0, "calibration images must come from the training split"


def test_provenance_records_how_the_model_was_made(mnist):
    provenance = mnist.provenance
    assert provenance["training"]["float"]["epochs"] >= 1
    assert "Adam" in provenance["training"]["float"]["optimizer"]
    assert provenance["tflite_test_accuracy"]["float32"]["total"] == 10_000
    assert provenance["tflite_test_accuracy"]["float32"]["top1"] >= 0.992
    for name in ("mnist_float32.tflite", "mnist_qat_int8.tflite", "mnist_test.npz", "mnist_calibration.npz"):
        assert len(provenance["files"][name]["sha256"]) == 64


def test_a_damaged_zoo_file_is_reported(tmp_path, monkeypatch, mnist):
    copy = tmp_path / "zoo"
    shutil.copytree(zoo.ZOO_ROOT / "mnist", copy / "mnist")
    damaged = copy / "mnist" / "mnist_test.npz"
    data = bytearray(damaged.read_bytes())
    data[100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(zoo, "ZOO_ROOT", copy)
    with pytest.raises(ZooIntegrityError, match="does not match its recorded sha256"):
        zoo.load_zoo_model("mnist")


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownModelError, match="mnist"):
        zoo.resolve_model("imagenet-model-that-does-not-exist")
