"""Host-side accuracy: top-1 of a .tflite on an evaluation set, with ai_edge_litert.

It feeds the model through the agent's own helpers, so a host number and a
device number differ only by the runtime and the hardware.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.agent import agent
from edgebench.core.errors import ModelError
from edgebench.core.quiet import native_stderr_silenced
from edgebench.model.dataset import Dataset
from edgebench.model.tflite_model import inspect_model

EVALUATION_BATCH = 100


@dataclass(frozen=True)
class Accuracy:
    correct: int
    total: int
    predictions: np.ndarray

    @property
    def top1(self) -> float:
        return self.correct / self.total if self.total else float("nan")


def host_runner(model_path: str | Path, threads: int = 1) -> agent.ModelRunner:
    """The model loaded by ai_edge_litert on this host, fed through the agent's own runner."""
    interpreter_class, _, _ = agent.load_runtime("ai_edge_litert")
    try:
        with native_stderr_silenced():
            interpreter = interpreter_class(model_path=str(model_path), num_threads=threads)
            interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as error:
        custom = re.search(r"unresolved custom op: ([^\s.]+)", str(error))
        if custom:
            raise ModelError(
                f"{model_path} uses the custom operator {custom.group(1)}, which ai_edge_litert cannot load (it is "
                "not built into the runtime); edgebench cannot measure or compare it"
            ) from None
        raise ModelError(f"{model_path} cannot be loaded by ai_edge_litert: {error}") from None
    return agent.ModelRunner(interpreter)


def evaluate_file(model_path: str | Path, dataset: Dataset, samples: int | None = None, threads: int = 1) -> Accuracy:
    """Top-1 over the first `samples` items (all when None)."""
    inspect_model(model_path)
    runner = host_runner(model_path, threads)
    count = dataset.count if samples is None else min(samples, dataset.count)
    agent.batch_if_faithful(runner, dataset.input_sets(0, min(count, agent.BATCH_CHECK_SAMPLES)), EVALUATION_BATCH)
    predictions = runner.predict(dataset.input_sets(0, count))
    correct = int(np.sum(predictions == dataset.labels[:count]))
    return Accuracy(correct, count, predictions)
