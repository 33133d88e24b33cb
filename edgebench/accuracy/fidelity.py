"""The float32 reference outputs that every variant's outputs are measured against.

Fidelity answers the question accuracy cannot for a detector, a landmark or an
embedding model: how far do the quantized outputs drift from float32? The host
runs the float32 reference model (ai_edge_litert, through the agent's own
ModelRunner) once on a set of inputs and writes inputs and outputs to one
`.npz` that travels with the run; on the device each variant runs the same
inputs and the agent computes SQNR, cosine similarity and the largest absolute
error per output tensor (agent.fidelity_metrics).

The inputs are the first samples of the data set's evaluation part when one is
given, or seeded uniform [0, 1) inputs shaped like the model's inputs when not;
random inputs are a weak proxy for real data and every table says when they
were used.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.accuracy.evaluate import host_runner
from edgebench.agent import agent
from edgebench.core.errors import DatasetError, ModelError
from edgebench.core.fileio import atomic_write_bytes, sha256_file
from edgebench.model.dataset import Dataset

# Inputs and outputs of a large model (a segmentation map per sample) must still fit on a board.
BYTES_BUDGET = 64 << 20
REFERENCE_VERSION = 1


@dataclass(frozen=True)
class ReferenceSet:
    path: Path
    source: str  # "dataset" or "random"
    samples: int
    description: str  # what a person reads in the table

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "samples": self.samples,
            "description": self.description,
            "sha256": sha256_file(self.path),
        }


def build_reference(
    model_path: Path, dataset: Dataset | None, samples: int, cache_dir: Path, *, limit: int | None = None,
    runner: agent.ModelRunner | None = None,
) -> ReferenceSet:  # fmt: skip
    """Reference inputs and float32 outputs of `model_path`, cached by content.

    `limit` caps which data-set samples may be used (the held-out calibration
    slice at the end of the data set is never a fidelity input)."""
    runner = runner or host_runner(model_path)  # the caller may have loaded it already
    if dataset is not None:
        available = dataset.count if limit is None else min(limit, dataset.count)
        count = _within_budget(runner, min(samples, available))
        source, label = "dataset", f"{count:,} samples of {dataset.path.name}"
        identity = f"dataset:{dataset.sha256}"
    else:
        count = _within_budget(runner, samples)
        source = "random"
        label = f"{count:,} seeded random inputs, uniform [0, 1): a weak proxy for real data"
        identity = "random:0"
    key = hashlib.sha256(f"{sha256_file(model_path)}:{identity}:{count}:{REFERENCE_VERSION}".encode()).hexdigest()
    path = Path(cache_dir) / f"reference-{key[:16]}.npz"
    if not path.is_file():
        inputs = (
            dataset.input_sets(0, count) if dataset is not None else agent.representative_inputs(runner.inputs, count)
        )
        if len(inputs) != len(runner.inputs):
            raise ModelError(
                f"the data set has {len(inputs)} input array(s); {model_path.name} has {len(runner.inputs)}"
            )
        try:  # at the model's own batch size, as the agent runs the variants
            outputs = runner.run(inputs)
        except (RuntimeError, ValueError) as error:
            name = dataset.path.name if dataset is not None else "the generated inputs"
            raise DatasetError(f"the samples of {name} do not fit {model_path.name}'s inputs: {error}") from None
        arrays = {f"in{i}": values for i, values in enumerate(inputs)}
        arrays.update({f"out{i}": values for i, values in enumerate(outputs)})
        buffer = io.BytesIO()
        np.savez(buffer, source=np.array(source), **arrays)
        atomic_write_bytes(path, buffer.getvalue())
    return ReferenceSet(path, source, count, label)


def _within_budget(runner: agent.ModelRunner, count: int) -> int:
    per_sample = sum(4 * int(np.prod(d["shape"][1:])) for d in [*runner.inputs, *runner.outputs])
    return max(1, min(count, BYTES_BUDGET // max(per_sample, 1)))
