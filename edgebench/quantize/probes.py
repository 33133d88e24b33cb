"""A model cut into single-operator probe models, so a runtime without a profiler still says where time goes.

Python's TFLite interpreters have no per-operator profiler hook (tensorflow/tensorflow#59095). So each
operator of the main subgraph becomes a model of its own: the same operator with its real options, weights,
shapes and quantization parameters, its non-constant inputs as the probe's inputs and its outputs as the
probe's outputs. The agent times each probe on the device with the run's stopping rules and reads which
kernel took it (agent.kernel_placement); the sum of the probes beside the whole model's p50 shows what
fusion and dispatch save or cost. Operators that call other subgraphs (WHILE, IF, CALL_ONCE) or keep state
are not cut out, and are named.

Probes are cached beside the variants, by the variant's sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgebench.core.fileio import atomic_write_bytes, sha256_file
from edgebench.model.tflite_model import builtin_code
from edgebench.quantize.normalize import drop_unused_tensors, serialize

PROBES_VERSION = 2  # 2: constant-making producers (DEQUANTIZE of weights) kept with their consumer
_WITH_SUBGRAPHS = {"WHILE", "IF", "CALL_ONCE", "STABLEHLO_WHILE", "STABLEHLO_CASE"}


@dataclass(frozen=True)
class Probe:
    index: int  # the operator's index in the main subgraph
    op: str  # its builtin name
    path: Path | None  # None: not cut out (why says why)
    sha256: str | None = None
    why: str | None = None


def probe_models(model_path: Path, cache_dir: Path) -> list[Probe]:
    """One probe per operator of the model's main subgraph, in execution order; written once per model file."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    data = Path(model_path).read_bytes()
    folder = Path(cache_dir) / f"probes-{sha256_file(model_path)[:16]}-v{PROBES_VERSION}"
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    count = len(model.subgraphs[0].operators or [])
    folded = constant_producers(model)
    probes = []
    for index in range(count):
        code = builtin_code(model.operatorCodes[model.subgraphs[0].operators[index].opcodeIndex])
        name = names.get(code, f"op {code}")
        path = folder / f"{index:03d}-{name.lower()}.tflite"
        if name in _WITH_SUBGRAPHS or name == "CUSTOM":
            probes.append(Probe(index, name, None, why=f"{name} is not cut out (it calls subgraphs or custom code)"))
            continue
        if index in folded.values():
            probes.append(Probe(index, name, None, why="computes a constant: timed within the probe of the operator "
                                                       "that reads it, as the runtime runs it"))  # fmt: skip
            continue
        if not path.is_file():
            probe = flatbuffer_utils.read_model_from_bytearray(bytearray(data))  # a fresh copy to cut down
            why = _cut(probe, index, folded)
            if why:
                probes.append(Probe(index, name, None, why=why))
                continue
            atomic_write_bytes(path, serialize(probe))
        probes.append(Probe(index, name, path, sha256_file(path)))
    return probes


def _is_constant(model, subgraph, tensor: int) -> bool:
    buffer = model.buffers[subgraph.tensors[tensor].buffer] if subgraph.tensors[tensor].buffer else None
    return buffer is not None and buffer.data is not None and len(buffer.data) > 0


def constant_producers(model) -> dict[int, int]:
    """tensor -> the operator that makes it from constants alone (a DEQUANTIZE of float16 or int4 weights, a
    DENSIFY): the runtime computes these once or folds them into the consumer, so a probe keeps them with it."""
    subgraph = model.subgraphs[0]
    made = {}
    for index, operator in enumerate(subgraph.operators or []):
        inputs = [t for t in operator.inputs if t >= 0]
        if inputs and all(_is_constant(model, subgraph, t) for t in inputs) and len(operator.outputs) == 1:
            made[operator.outputs[0]] = index
    return made


def _cut(model, index: int, folded: dict[int, int]) -> str | None:
    """Keep only operator `index` of subgraph 0 (with the operators that make its constant inputs); returns why
    it cannot be, or None."""
    subgraph = model.subgraphs[0]
    operator = subgraph.operators[index]
    inputs = [t for t in operator.inputs if t >= 0]
    if any(subgraph.tensors[t].isVariable for t in inputs):
        return "keeps state in a variable tensor"
    producers = [subgraph.operators[folded[t]] for t in dict.fromkeys(inputs) if t in folded]
    subgraph.operators = [*producers, operator]
    subgraph.inputs = [t for t in dict.fromkeys(inputs) if not _is_constant(model, subgraph, t) and t not in folded]
    subgraph.outputs = list(operator.outputs)
    model.subgraphs = [subgraph]
    model.signatureDefs = []  # they name the whole model's inputs and outputs
    drop_unused_tensors(model, 0)
    return None
