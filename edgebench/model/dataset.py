"""Evaluation and calibration data sets: `.npz` files, validated on the host.

Format (the agent reads the same file on the device):
  x         samples, any numeric dtype, first axis = sample (uint8 images stay small)
  x0, x1..  instead of x, for a model with several inputs: one array per input, in input order
  y         integer class labels, one per sample (optional: without it there is no top-1,
            and fidelity against float32 still applies)
  x_scale   optional float: model input = x * x_scale + x_offset
  x_offset  optional float
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebench.agent import agent
from edgebench.core.errors import DatasetError
from edgebench.core.fileio import sha256_file


@dataclass(frozen=True)
class Dataset:
    path: Path
    arrays: dict = field(repr=False, compare=False)
    sha256: str

    @property
    def count(self) -> int:
        return len(self.arrays[agent.input_keys(self.arrays)[0]])

    @property
    def has_labels(self) -> bool:
        return "y" in self.arrays

    @property
    def labels(self) -> np.ndarray:
        return self.arrays["y"]

    def model_inputs(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The first (or only) input's samples in the model's float domain."""
        return agent.model_inputs(self.arrays, start, stop)

    def input_sets(self, start: int = 0, stop: int | None = None) -> list[np.ndarray]:
        """One float array per model input."""
        return agent.input_sets(self.arrays, start, stop)

    def tail(self, count: int) -> Dataset:
        """The last `count` samples, as a data set of their own (for a held-out calibration slice)."""
        per_sample = set(agent.input_keys(self.arrays)) | {"y"}
        arrays = {key: (value[-count:] if key in per_sample else value) for key, value in self.arrays.items()}
        digest = hashlib.sha256(f"{self.sha256}:tail:{count}".encode()).hexdigest()
        return Dataset(self.path, arrays, digest)


def load_dataset(path: str | Path, *, require_labels: bool = True) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"data set not found: {path}")
    if not zipfile.is_zipfile(path):  # numpy would answer with advice about allow_pickle
        raise DatasetError(f"{path} is not an .npz archive (numpy.savez writes one, with an 'x' array)")
    try:
        arrays = agent.load_npz(path)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise DatasetError(f"{path} is not a readable .npz file: {error}") from None
    keys = agent.input_keys(arrays)
    if not keys:
        raise DatasetError(
            f"{path} has no 'x' array (or x0, x1, ... for several inputs); found: "
            f"{', '.join(sorted(arrays)) or 'nothing'}"
        )
    count = None
    for key in keys:
        x = arrays[key]
        if x.ndim < 1 or len(x) == 0 or not np.issubdtype(x.dtype, np.number):
            raise DatasetError(f"{path}: {key!r} must be a non-empty numeric array with samples on the first axis")
        if count is not None and len(x) != count:
            raise DatasetError(f"{path}: {key!r} has {len(x)} samples, {keys[0]!r} has {count}")
        count = len(x)
    if require_labels and "y" not in arrays:
        raise DatasetError(f"{path} has no 'y' labels; an evaluation set needs one class label per sample")
    for key in keys:
        if np.issubdtype(arrays[key].dtype, np.floating) and not np.all(np.isfinite(arrays[key])):
            bad = int(np.sum(~np.isfinite(arrays[key])))
            raise DatasetError(f"{path}: {key!r} holds {bad:,} NaN or infinite value(s); every input must be finite")
    for key in ("x_scale", "x_offset"):
        if key in arrays and (arrays[key].size != 1 or not np.isfinite(float(arrays[key]))):
            raise DatasetError(f"{path}: {key!r} must be one finite number, got {arrays[key].tolist()!r}")
    if "y" in arrays:
        y = arrays["y"]
        if y.shape != (count,) or not np.issubdtype(y.dtype, np.integer):
            raise DatasetError(f"{path}: 'y' must be {count} integer labels, got {y.dtype} {y.shape}")
    return Dataset(path, arrays, sha256_file(path))


def check_fits(dataset: Dataset, inputs: list[dict], outputs: list[dict], model_name: str) -> None:
    """Stop a data set that cannot feed this model on the host, before a device is touched.

    `inputs`/`outputs`: the model's tensor details (shape at its own batch size). Samples must have
    as many elements as each input takes per sample, and labels must name one of the first
    output's classes."""
    arrays = dataset.arrays
    keys = agent.input_keys(arrays)
    if len(keys) != len(inputs):
        raise DatasetError(
            f"{dataset.path}: {len(keys)} input array(s) ({', '.join(keys)}) for {model_name}, which has "
            f"{len(inputs)} input(s); name them x0, x1, ... in input order"
        )
    for key, detail in zip(keys, inputs, strict=True):
        wanted = tuple(int(d) for d in detail["shape"][1:])
        sample = arrays[key].shape[1:]
        if int(np.prod(sample, dtype=np.int64)) != int(np.prod(wanted, dtype=np.int64)):
            raise DatasetError(
                f"{dataset.path}: {key!r} samples are {sample}, {model_name}'s input {detail['name']!r} takes {wanted}"
            )
    if dataset.has_labels and outputs:
        classes = int(np.prod(outputs[0]["shape"][1:], dtype=np.int64))
        low, high = int(arrays["y"].min()), int(arrays["y"].max())
        if low < 0 or high >= classes:
            raise DatasetError(
                f"{dataset.path}: labels run from {low} to {high}, but {model_name}'s first output has {classes} "
                f"class(es) (0 to {classes - 1})"
            )
