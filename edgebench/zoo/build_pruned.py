"""Re-create the shipped fine-tuned pruned MNIST variant (`pruned-ft-80`) from the shipped float model.

    pip install -e .[train]
    python -m edgebench.zoo.build_pruned            # about 5 minutes on 2 cores

Build-time only, like build_mnist.py: it needs TensorFlow, tf_keras and tensorflow-model-optimization.
The Keras network is rebuilt with build_mnist's layers and given the shipped float32 file's own weights (read
through the TFLite interpreter), so the pruned model starts from exactly the float model edgebench measures.
Then `tfmot.sparsity.keras.prune_low_magnitude` with a polynomial schedule prunes while fine-tuning, with the
same per-layer policy as edgebench's post-training pruning (prune.py: the first convolution and the last
classifier at half the target, so 40%; the others at 80%), `strip_pruning` removes the wrappers, and the
TFLite converter writes a plain float32 file (no optimizations: the zeros are stored, as in pruned-80).
edgebench quantizes it itself for `pruned-ft-80-int8`, with the same recipe as every int8 variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tensorflow-model-optimization needs Keras 2 (tf_keras)

from edgebench.quantize.prune import layer_targets
from edgebench.zoo.build_common import load_raw_mnist, training_record
from edgebench.zoo.build_mnist import ZOO_DIR, build_model, convert, to_model_input, write_provenance

TARGET = 0.8
PRUNED_FILE = "mnist_pruned_ft_80.tflite"


def shipped_weights(tf) -> dict[tuple[int, ...], np.ndarray]:
    """The shipped float32 file's constant tensors by shape (every weight and bias of this network has its own)."""
    interpreter = tf.lite.Interpreter(model_path=str(ZOO_DIR / "mnist_float32.tflite"))
    interpreter.allocate_tensors()
    found = {}
    for detail in interpreter.get_tensor_details():
        try:
            value = interpreter.get_tensor(detail["index"])
        except ValueError:
            continue
        if value.dtype == np.float32 and value.ndim in (1, 2, 4) and value.size >= 10:
            found.setdefault(tuple(value.shape), value.copy())
    return found


def restore(tf, model) -> None:
    """TFLite's OHWI convolution kernels and [out, in] dense weights back into Keras' HWIO and [in, out]."""
    weights = shipped_weights(tf)
    values = []
    for layer in model.layers:
        for variable in layer.weights:
            shape = tuple(variable.shape)
            if len(shape) == 4:  # HWIO <- OHWI
                values.append(weights[(shape[3], shape[0], shape[1], shape[2])].transpose(1, 2, 3, 0))
            elif len(shape) == 2:  # [in, out] <- [out, in]
                values.append(weights[(shape[1], shape[0])].T)
            else:
                values.append(weights[shape])
    model.set_weights(values)


def train(args: argparse.Namespace) -> dict:
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    tf.keras.utils.set_random_seed(args.seed)
    x_train, y_train, x_test, y_test = load_raw_mnist()
    model = build_model(tf)
    restore(tf, model)
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(loss=loss, metrics=["accuracy"])
    _, restored_accuracy = model.evaluate(to_model_input(x_test), y_test, verbose=0)
    print(f"restored float keras test accuracy {restored_accuracy:.4f}", file=sys.stderr)

    steps_per_epoch = int(np.ceil(len(x_train) / args.batch_size))
    end_step = int(steps_per_epoch * args.epochs * 0.7)  # the last 30% of steps fine-tune at the final sparsity
    prunable = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D | tf.keras.layers.Dense)]

    # The same per-layer policy as post-training pruning (first and last layer at half), from its one owner.
    finals = dict(zip(prunable, layer_targets(TARGET, len(prunable)), strict=True))

    def wrap(layer):
        if layer not in finals:
            return layer
        final = finals[layer]
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=final, begin_step=0, end_step=end_step, frequency=50
        )
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    pruned = tf.keras.models.clone_model(model, clone_function=wrap)
    for source, target in zip(model.layers, pruned.layers, strict=True):  # clone_model re-initializes weights
        (target.layer if hasattr(target, "layer") else target).set_weights(source.get_weights())
    pruned.compile(optimizer=tf.keras.optimizers.Adam(args.learning_rate), loss=loss, metrics=["accuracy"])
    started = time.time()
    pruned.fit(to_model_input(x_train), y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])  # fmt: skip
    seconds = time.time() - started
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    stripped.compile(loss=loss, metrics=["accuracy"])
    _, pruned_accuracy = stripped.evaluate(to_model_input(x_test), y_test, verbose=0)
    print(f"pruned keras test accuracy {pruned_accuracy:.4f}", file=sys.stderr)
    (ZOO_DIR / PRUNED_FILE).write_bytes(convert(tf, stripped, None))
    return {
        "method": "tfmot.sparsity.keras.prune_low_magnitude on the shipped float model's own weights, fine-tuned, "
        "then strip_pruning; first convolution and last dense layer at half the target",
        "target_sparsity": TARGET,
        "schedule": f"PolynomialDecay 0 -> final sparsity over steps 0-{end_step}, every 50 steps",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": f"Adam, constant {args.learning_rate}",
        "seed": args.seed,
        "train_seconds": round(seconds, 1),
        "restored_keras_test_accuracy": round(float(restored_accuracy), 4),
        "keras_test_accuracy": round(float(pruned_accuracy), 4),
        "conversion": "TFLiteConverter, no optimizations: float32, zeros stored",
        "tensorflow": tf.__version__,
        "tensorflow_model_optimization": tfmot.__version__,
        "script": " ".join(["python -m edgebench.zoo.build_pruned", *sys.argv[1:]]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--provenance-only", action="store_true", help="only re-hash and re-evaluate the shipped files")
    args = parser.parse_args(argv)
    path = ZOO_DIR / "provenance.json"
    shipped = json.loads(path.read_text())["training"]  # the float and QAT recipes stay as they are
    write_provenance(training_record(path, args.provenance_only, lambda: {**shipped, "pruned_ft_80": train(args)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
