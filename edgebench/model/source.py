"""A float model and what belongs with it: where a run's work starts, whether from the zoo or a user's file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelSource:
    """A float model plus what belongs with it. User models leave the optional parts empty."""

    name: str
    model_path: Path
    dataset_path: Path | None = None
    calibration_path: Path | None = None
    prebuilt_variants: dict[str, Path] = field(default_factory=dict)
    provenance: dict | None = None
