"""Named models that ship with edgebench, and resolving a --model argument.

A zoo entry is a folder under edgebench/zoo/ with a `provenance.json` that
lists every shipped file with its sha256; loading an entry checks them, so a
damaged install is reported instead of measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgebench.core.errors import UnknownModelError, ZooIntegrityError
from edgebench.core.fileio import sha256_file
from edgebench.model.source import ModelSource

ZOO_ROOT = Path(__file__).resolve().parent
PROVENANCE_SCHEMA_VERSION = 1

# name -> (float model, evaluation set, calibration set, {prebuilt variant: file})
_ENTRIES = {
    "mnist": (
        "mnist/mnist_float32.tflite",
        "mnist/mnist_test.npz",
        "mnist/mnist_calibration.npz",
        {"qat-int8": "mnist/mnist_qat_int8.tflite", "pruned-ft-80": "mnist/mnist_pruned_ft_80.tflite"},
    ),
    # MobileNetV1 0.25 at 96x96: depthwise-separable edge vision (build_mobilenet.py)
    "mobilenet-digits": (
        "mobilenet_digits/mobilenet_digits_float32.tflite",
        "mobilenet_digits/mobilenet_digits_test.npz",
        "mobilenet_digits/mobilenet_digits_calibration.npz",
        {},
    ),
}


def zoo_names() -> list[str]:
    return sorted(_ENTRIES)


@dataclass(frozen=True)
class ZooEntry:
    """What `edgebench zoo` says of one model, from its provenance."""

    name: str
    description: str
    input: str
    test_samples: int
    float32_top1: float | None


def zoo_entries() -> list[ZooEntry]:
    entries = []
    for name in zoo_names():
        source = load_zoo_model(name)
        provenance = source.provenance or {}
        with np.load(source.dataset_path) as data:
            samples = len(data["y"]) if "y" in data.files else len(data[data.files[0]])
        accuracy = (provenance.get("tflite_test_accuracy") or {}).get("float32")
        top1 = accuracy.get("top1") if isinstance(accuracy, dict) else accuracy
        entries.append(ZooEntry(name, provenance.get("description", ""), provenance.get("input", ""), samples, top1))
    return entries


def load_zoo_model(name: str, *, verify: bool = True) -> ModelSource:
    if name not in _ENTRIES:
        raise UnknownModelError(f"unknown zoo model {name!r}; known: {', '.join(zoo_names())}")
    model, dataset, calibration, prebuilt = _ENTRIES[name]
    source = ModelSource(
        name=name,
        model_path=ZOO_ROOT / model,
        dataset_path=ZOO_ROOT / dataset,
        calibration_path=ZOO_ROOT / calibration,
        prebuilt_variants={variant: ZOO_ROOT / path for variant, path in prebuilt.items()},
    )
    if not verify:
        return source
    provenance = _read_provenance(source.model_path.parent)
    _verify_files(name, source, provenance)
    return replace(source, provenance=provenance)


def _read_provenance(folder: Path) -> dict:
    path = folder / "provenance.json"
    try:
        provenance = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ZooIntegrityError(f"cannot read {path}: {error}; reinstall edgebench") from None
    if provenance.get("schema_version") != PROVENANCE_SCHEMA_VERSION:
        raise ZooIntegrityError(
            f"{path} has schema_version {provenance.get('schema_version')!r}, this edgebench reads "
            f"{PROVENANCE_SCHEMA_VERSION}; reinstall edgebench"
        )
    return provenance


def _verify_files(name: str, source: ModelSource, provenance: dict) -> None:
    recorded = provenance.get("files", {})
    paths = [source.model_path, source.dataset_path, source.calibration_path, *source.prebuilt_variants.values()]
    for path in paths:
        expected = recorded.get(path.name, {}).get("sha256")
        if not path.is_file():
            raise ZooIntegrityError(f"zoo model {name!r} is missing {path}; reinstall edgebench")
        if expected != sha256_file(path):
            raise ZooIntegrityError(f"zoo file {path} does not match its recorded sha256; reinstall edgebench")


def resolve_model(
    spec: str, *, dataset: str | Path | None = None, calibration: str | Path | None = None
) -> ModelSource:
    """A zoo name or a path to a user's float .tflite; explicit data sets override the zoo's."""
    path = Path(spec)
    if spec in _ENTRIES and not path.exists():
        source = load_zoo_model(spec)
    elif path.suffix == ".tflite" or path.exists():
        source = ModelSource(name=path.stem, model_path=path)
    else:
        raise UnknownModelError(f"unknown model {spec!r}: not a zoo name ({', '.join(zoo_names())}) and no such file")
    if dataset is not None:
        source = replace(source, dataset_path=Path(dataset))
    if calibration is not None:
        source = replace(source, calibration_path=Path(calibration))
    return source
