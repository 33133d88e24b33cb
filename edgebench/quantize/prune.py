"""Post-training magnitude pruning of a float model's weights, and the sparsity a file actually has.

Pruning sets the smallest-magnitude weights of FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D to zero, in the
flatbuffer itself (no TensorFlow at run time). The literature's per-layer policy (Han et al., "Learning both
Weights and Connections"; the TF pruning guide) prunes the first convolution and the last classifier less:
they hold few weights and everything passes through them. Here they get half the target sparsity.

Zeros are still stored: a pruned file is as large as the dense one until it is compressed (or quantized and
then compressed), which is what the compressed-size columns show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.core.fileio import atomic_write_bytes
from edgebench.model.tflite_model import builtin_code

PRUNED_OPERATORS = {"FULLY_CONNECTED": 1, "CONV_2D": 1, "DEPTHWISE_CONV_2D": 1}  # operator -> its weights' input
EDGE_SHARE = 0.5  # the first and the last prunable layer get this share of the target sparsity
TOLERANCE = 0.01  # a pruned tensor is on target within this share (rounding of small tensors, int8 zero points)


@dataclass(frozen=True)
class TensorSparsity:
    name: str
    operator: str
    elements: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.elements if self.elements else 0.0


def prunable(model, schema) -> list[tuple[int, str]]:
    """(weight tensor index, operator name) of the main subgraph's prunable layers, in execution order; a weight
    tensor read by two operators appears once."""
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    subgraph = model.subgraphs[0]
    found, seen = [], set()
    for operator in subgraph.operators or []:
        name = names.get(builtin_code(model.operatorCodes[operator.opcodeIndex]), "")
        position = PRUNED_OPERATORS.get(name)
        if position is None or len(operator.inputs) <= position:
            continue
        tensor = operator.inputs[position]
        if tensor < 0 or tensor in seen or subgraph.tensors[tensor].type != schema.TensorType.FLOAT32:
            continue
        buffer = model.buffers[subgraph.tensors[tensor].buffer]
        if buffer.data is None or len(buffer.data) == 0:
            continue  # a weight computed in the graph (a DEQUANTIZE's output): not a constant to prune
        seen.add(tensor)
        found.append((tensor, name))
    return found


def layer_targets(target: float, layers: int) -> list[float]:
    """The policy: each prunable layer's sparsity for a model target (the first and last at EDGE_SHARE of it,
    when there are more than two layers)."""
    return [target * (EDGE_SHARE if i in (0, layers - 1) and layers > 2 else 1.0) for i in range(layers)]


def sparsity_shortfall(found: list[TensorSparsity], target: float, *, exact: bool) -> str | None:
    """Why a file is not pruned to `target` under the policy, or None. `exact`: each tensor must be on its
    layer's target within TOLERANCE (what the pruning wrote); otherwise at least that (a later quantization
    may round more small weights to zero, never fewer; fewer means a step densified it)."""
    if not found:
        return "it has no prunable weights (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D)"
    missed = []
    for tensor, wanted in zip(found, layer_targets(target, len(found)), strict=True):
        off = tensor.sparsity - wanted
        if off < -TOLERANCE or (exact and off > TOLERANCE):
            missed.append(f"{tensor.name} {tensor.sparsity:.1%} zeros (target {wanted:.0%})")
    if not missed:
        return None
    shown = "; ".join(missed[:3]) + (f"; and {len(missed) - 3} more" if len(missed) > 3 else "")
    return f"not pruned to {target:.0%} as its name says: {shown}"


def stored_sparse(path: Path) -> int:
    """How many tensors the file stores in TFLite's sparse format (behind DENSIFY). Only such weights make the
    XNNPACK delegate ask for its sparse kernels (XNN_FLAG_HINT_SPARSE_INFERENCE); zeros stored densely are
    multiplied like any weight."""
    return _stored_sparse(_read(path))


def file_sparsity(path: Path) -> tuple[list[TensorSparsity], int]:
    """measured_sparsity and stored_sparse of one file, parsed once (a variant is checked on every build)."""
    model = _read(path)
    return _measured_sparsity(model), _stored_sparse(model)


def _read(path: Path):
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(Path(path).read_bytes()))


def _stored_sparse(model) -> int:
    return sum(1 for subgraph in model.subgraphs for tensor in subgraph.tensors or [] if tensor.sparsity)


def sparsity_record(found: list[TensorSparsity], target: float, sparse_tensors: int = 0) -> dict:
    """What the run record keeps of a pruned file: the target, the share of zeros over all pruned weights, each
    tensor's count beside its layer's target, and how many tensors are stored in the sparse format."""
    elements = sum(t.elements for t in found)
    return {
        "target": target,
        "share": sum(t.zeros for t in found) / elements if elements else 0.0,
        "stored_sparse": sparse_tensors,
        "tensors": [
            {"name": t.name, "op": t.operator, "elements": t.elements, "zeros": t.zeros, "target": round(wanted, 4)}
            for t, wanted in zip(found, layer_targets(target, len(found)), strict=True)
        ],
    }


def prune_model(source: Path, target: float, out: Path) -> list[TensorSparsity]:
    """Write `source` with each prunable weight tensor's smallest |w| set to zero (the target share; half of it
    for the first and last prunable layer); returns the sparsity each pruned tensor reached."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(Path(source).read_bytes()))
    subgraph = model.subgraphs[0]
    layers = prunable(model, schema)
    reached = []
    for (tensor, operator), share in zip(layers, layer_targets(target, len(layers)), strict=True):
        buffer = model.buffers[subgraph.tensors[tensor].buffer]
        weights = np.frombuffer(bytes(buffer.data), dtype="<f4").copy()
        count = round(share * weights.size)
        if count:
            # argpartition, not a threshold: ties at the threshold would overshoot the target.
            smallest = np.argpartition(np.abs(weights), count - 1)[:count]
            weights[smallest] = 0.0
        buffer.data = np.frombuffer(weights.astype("<f4").tobytes(), dtype=np.uint8)
        name = subgraph.tensors[tensor].name
        reached.append(TensorSparsity(name.decode() if isinstance(name, bytes) else str(name), operator,
                                      weights.size, int(np.sum(weights == 0))))  # fmt: skip
    atomic_write_bytes(out, bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    return reached


def measured_sparsity(path: Path) -> list[TensorSparsity]:
    """The zero share of each prunable layer's weights as stored in a file (float32, or an integer type whose
    zero point makes a stored zero a zero weight), read independently of how the file was made."""
    return _measured_sparsity(_read(path))


def _measured_sparsity(model) -> list[TensorSparsity]:
    from ai_edge_litert import schema_py_generated as schema

    from edgebench.model.tflite_model import tensor_type_names
    from edgebench.quantize.normalize import densified_values

    subgraph = model.subgraphs[0]
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    dtypes = {schema.TensorType.FLOAT32: "<f4", schema.TensorType.INT8: "i1", schema.TensorType.FLOAT16: "<f2"}
    # A weight stored in the sparse format is DENSIFY's output: counted on the values DENSIFY expands.
    densified = {
        operator.outputs[0]: operator.inputs[0]
        for operator in subgraph.operators or []
        if names.get(builtin_code(model.operatorCodes[operator.opcodeIndex])) == "DENSIFY"
    }
    type_names = tensor_type_names()
    found = []
    for operator in subgraph.operators or []:
        name = names.get(builtin_code(model.operatorCodes[operator.opcodeIndex]), "")
        position = PRUNED_OPERATORS.get(name)
        if position is None or len(operator.inputs) <= position or operator.inputs[position] < 0:
            continue
        tensor = subgraph.tensors[operator.inputs[position]]
        if operator.inputs[position] in densified:
            values = densified_values(model, subgraph.tensors[densified[operator.inputs[position]]], type_names)
            if values is not None:
                label = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
                found.append(TensorSparsity(label, name, values.size, int(np.sum(values == 0))))
            continue
        data = model.buffers[tensor.buffer].data
        if data is None or len(data) == 0 or tensor.type not in dtypes:
            continue
        values = np.frombuffer(bytes(data), dtype=dtypes[tensor.type])
        zero_points = getattr(tensor.quantization, "zeroPoint", None) if tensor.quantization else None
        zero = 0 if zero_points is None or len(zero_points) == 0 else int(np.asarray(zero_points).flat[0])
        label = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        found.append(TensorSparsity(label, name, values.size, int(np.sum(values == zero))))
    return found
