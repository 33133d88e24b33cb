"""Evaluation and calibration data sets: `.npz` files, validated on the host.

Format (the agent reads the same file on the device):
  x         samples, any numeric dtype, first axis = sample (uint8 images stay small)
  y         integer class labels, one per sample (evaluation sets only)
  x_scale   optional float: model input = x * x_scale + x_offset
  x_offset  optional float
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebench.agent import agent
from edgebench.errors import DatasetError
from edgebench.fileio import sha256_file


@dataclass(frozen=True)
class Dataset:
    path: Path
    arrays: dict = field(repr=False, compare=False)
    sha256: str

    @property
    def count(self) -> int:
        return len(self.arrays["x"])

    @property
    def labels(self) -> np.ndarray:
        return self.arrays["y"]

    def model_inputs(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return agent.model_inputs(self.arrays, start, stop)


def load_dataset(path: str | Path, *, require_labels: bool = True) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"data set not found: {path}")
    try:
        arrays = agent.load_npz(path)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise DatasetError(f"{path} is not a readable .npz file: {error}") from None
    if "x" not in arrays:
        raise DatasetError(f"{path} has no 'x' array (found: {', '.join(sorted(arrays)) or 'nothing'})")
    x = arrays["x"]
    if x.ndim < 1 or len(x) == 0 or not np.issubdtype(x.dtype, np.number):
        raise DatasetError(f"{path}: 'x' must be a non-empty numeric array with samples on the first axis")
    if require_labels:
        if "y" not in arrays:
            raise DatasetError(f"{path} has no 'y' labels; an evaluation set needs one class label per sample")
        y = arrays["y"]
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise DatasetError(f"{path}: 'y' must be {len(x)} integer labels, got {y.dtype} {y.shape}")
    return Dataset(path, arrays, sha256_file(path))
