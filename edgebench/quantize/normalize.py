"""A published float model -> a true float32 reference that the quantizer can work on.

Two shapes of published `.tflite` make ai-edge-quantizer return the model
unchanged, without an error:
- operator codes from the pre-TF-2.3 schema, where only `deprecated_builtin_code`
  is set: the quantizer reads `builtin_code`, finds 0 (ADD) for every operator,
  supports none of them and quantizes nothing. The runtime reads
  max(builtin_code, deprecated_builtin_code), so the model runs fine.
- weights stored as float16 (or int8) behind DEQUANTIZE operators: the
  quantizer sees no float32 constant to convert, and "float32" is not float32.

`normalize_model` upgrades the operator codes and folds every DEQUANTIZE of a
constant into a float32 constant, so `float32` means float32 and every variant
is made from that reference. It also gives the quantizer a SignatureDef when
the model has none (its calibration is keyed by signature). The user's file is
never modified; what was done is returned as sentences for the table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.core.fileio import atomic_write_bytes, sha256_file
from edgebench.model.tflite_model import (
    DENSIFY,
    DEQUANTIZE,
    builtin_code,
    constant_data,
    read_model_object,
    tensor_type_names,
)

# Bump when normalization changes, so cached references are rebuilt.
NORMALIZE_VERSION = 3  # 3: sparse constants densified
SIGNATURE_KEY = "serving_default"


@dataclass(frozen=True)
class NormalizedModel:
    reference: Path  # the float32 reference: the user's own file when nothing needed changing
    quantizer_input: Path  # the reference, with a SignatureDef when it had none
    changes: tuple[str, ...]  # what was done to make the reference, in words


def normalize_model(model_path: Path, cache_dir: Path) -> NormalizedModel:
    """The float32 reference of `model_path`, built once into `cache_dir` (keyed by content)."""
    model_path = Path(model_path)
    key = hashlib.sha256(f"{sha256_file(model_path)}:{NORMALIZE_VERSION}".encode()).hexdigest()[:16]
    model, _ = read_model_object(model_path)
    changes = []
    upgraded = _upgrade_operator_codes(model)
    if upgraded:
        changes.append(f"{upgraded} operator code(s) upgraded from the pre-TF-2.3 schema")
    for dtype, count in sorted(_densify_sparse_constants(model).items()):
        changes.append(f"densified {count} sparse {dtype} constant(s) (DENSIFY folded)")
    for dtype, count in sorted(_fold_dequantized_constants(model).items()):
        changes.append(f"unfolded from {dtype}-stored weights ({count} constant(s) behind DEQUANTIZE)")

    reference = model_path
    if changes:
        reference = Path(cache_dir) / f"reference-float32-{key}.tflite"
        if not reference.is_file():
            atomic_write_bytes(reference, serialize(model))
    if model.signatureDefs:
        return NormalizedModel(reference, reference, tuple(changes))
    quantizer_input = Path(cache_dir) / f"quantizer-input-{key}.tflite"
    if not quantizer_input.is_file():
        _add_signature(model)
        atomic_write_bytes(quantizer_input, serialize(model))
    return NormalizedModel(reference, quantizer_input, tuple(changes))


def serialize(model) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _upgrade_operator_codes(model) -> int:
    upgraded = 0
    for code in model.operatorCodes or []:
        if code.builtinCode != builtin_code(code):
            code.builtinCode = builtin_code(code)
            upgraded += 1
    return upgraded


def _fold_dequantized_constants(model) -> dict[str, int]:
    """Replace DEQUANTIZE(constant) by a float32 constant; returns folded counts by stored dtype."""
    return _fold_constant_operators(model, DEQUANTIZE, lambda *tensor: _as_float32(_dequantized(*tensor)))


def _as_float32(values: np.ndarray | None) -> np.ndarray | None:
    return None if values is None else values.astype("<f4")


def _fold_constant_operators(model, builtin: int, values_of) -> dict[str, int]:
    """Replace each one-input `builtin` operator whose input is a constant `values_of(model, tensor, names)` can
    compute by that constant (its output tensor now holds the values); returns counts by the input's dtype."""
    names = tensor_type_names()
    folded: dict[str, int] = {}
    codes = model.operatorCodes or []
    for subgraph_index, subgraph in enumerate(model.subgraphs):
        kept = []
        for operator in subgraph.operators or []:
            values = None
            if builtin_code(codes[operator.opcodeIndex]) == builtin and len(operator.inputs) == 1:
                source = subgraph.tensors[operator.inputs[0]]
                values = values_of(model, source, names)
            if values is None:
                kept.append(operator)
                continue
            target = subgraph.tensors[operator.outputs[0]]
            target.buffer = _new_buffer(model, values.tobytes())
            target.sparsity = None
            folded[names[source.type]] = folded.get(names[source.type], 0) + 1
        if len(kept) != len(subgraph.operators):
            subgraph.operators = kept
            drop_unused_tensors(model, subgraph_index)
    return folded


_NUMPY_TYPES = {"float32": "<f4", "float16": "<f2", "int8": "i1", "uint8": "u1", "int16": "<i2", "int32": "<i4"}


def _densify_sparse_constants(model) -> dict[str, int]:
    """Replace DENSIFY(sparse constant) by the dense constant (same dtype); returns counts by dtype. A
    DEQUANTIZE after it (sparse float16 weights, as some published detectors store them) is then folded
    like any other."""
    return _fold_constant_operators(model, DENSIFY, densified_values)


def densified_values(model, tensor, names: dict[int, str]) -> np.ndarray | None:
    """The dense values of a constant tensor stored in TFLite's sparse format (traversal order, block map,
    per-level DENSE or SPARSE_CSR metadata), as the runtime's FormatConverter expands it; None when the tensor
    is not a sparse constant this can read. Vectorized level by level: a few million weights take
    milliseconds, not a Python loop per element."""
    sparsity, data = tensor.sparsity, constant_data(model, tensor)
    numpy_type = _NUMPY_TYPES.get(names.get(tensor.type, ""))
    if sparsity is None or data is None or numpy_type is None or not sparsity.dimMetadata:
        return None
    values = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=numpy_type)
    shape = [int(d) for d in tensor.shape]
    rank, order = len(shape), [int(i) for i in sparsity.traversalOrder]
    block_map = [int(i) for i in sparsity.blockMap] if sparsity.blockMap is not None else []
    previous = np.zeros(1, dtype=np.int64)  # the position reached at each level, per element
    coordinates: list[np.ndarray] = []  # per traversal level, the index of each element
    for level in sparsity.dimMetadata:
        if level.format == 0:  # DENSE
            size = int(level.denseSize)
            coordinates = [np.repeat(c, size) for c in coordinates] + [np.tile(np.arange(size), previous.size)]
            previous = (previous[:, None] * size + np.arange(size)[None, :]).reshape(-1)
        else:  # SPARSE_CSR: this level's indices of the children of each position, delimited by the segments
            segments = np.asarray(level.arraySegments.values, dtype=np.int64)
            indices = np.asarray(level.arrayIndices.values, dtype=np.int64)
            starts, counts = segments[previous], segments[previous + 1] - segments[previous]
            positions = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            positions += np.repeat(starts, counts)
            coordinates = [np.repeat(c, counts) for c in coordinates] + [indices[positions]]
            previous = positions
    if previous.size != values.size or len(coordinates) != len(order):
        return None
    original = [np.zeros(0)] * rank
    for level in range(rank):
        original[order[level]] = coordinates[level]
    for level in range(rank, len(order)):  # a block level: refine the blocked dimension's index
        dimension = block_map[order[level] - rank]
        original[dimension] = original[dimension] * int(sparsity.dimMetadata[level].denseSize) + coordinates[level]
    dense = np.zeros(shape, dtype=numpy_type)
    dense[tuple(original)] = values
    return dense


def _dequantized(model, tensor, names: dict[int, str]) -> np.ndarray | None:
    """The float32 values of a constant float16/int8/uint8 tensor, or None when it is not one we can fold."""
    data = constant_data(model, tensor)
    if data is None or tensor.sparsity is not None:
        return None
    raw = np.asarray(data, dtype=np.uint8).tobytes()
    shape = [int(d) for d in tensor.shape] if tensor.shape is not None else []
    dtype = names.get(tensor.type)
    if dtype == "float16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(shape)
    if dtype not in ("int8", "uint8") or tensor.quantization is None or tensor.quantization.scale is None:
        return None
    values = np.frombuffer(raw, dtype=np.int8 if dtype == "int8" else np.uint8).astype(np.float32).reshape(shape)
    scale = np.asarray(tensor.quantization.scale, dtype=np.float32)
    zero_point = np.asarray(tensor.quantization.zeroPoint if tensor.quantization.zeroPoint is not None else 0)
    if scale.size > 1:  # per channel, along quantizedDimension
        axis = tensor.quantization.quantizedDimension
        view = [1] * len(shape)
        view[axis] = scale.size
        scale, zero_point = scale.reshape(view), zero_point.reshape(view) if zero_point.size > 1 else zero_point
    return (values - zero_point.astype(np.float32)) * scale


def _new_buffer(model, data: bytes) -> int:
    from ai_edge_litert import schema_py_generated as schema

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8)
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def drop_unused_tensors(model, subgraph_index: int) -> None:
    """Remove the tensors nothing reads or writes any more (the float16 originals), and their bytes.

    Orphaned constants are not harmless: the quantizer's calibration reads
    every tensor of the graph and fails on one that has neither data nor a
    producer. Indices in operators, the subgraph and signatures are remapped."""
    subgraph = model.subgraphs[subgraph_index]
    used = set(subgraph.inputs or []) | set(subgraph.outputs or [])
    for operator in subgraph.operators:
        for field in ("inputs", "outputs", "intermediates"):
            used |= {index for index in getattr(operator, field, None) or [] if index >= 0}
    used |= {index for index, tensor in enumerate(subgraph.tensors) if tensor.isVariable}
    if len(used) == len(subgraph.tensors):
        return
    remap = {old: new for new, old in enumerate(sorted(used))}
    dropped_buffers = {tensor.buffer for index, tensor in enumerate(subgraph.tensors) if index not in used}
    subgraph.tensors = [tensor for index, tensor in enumerate(subgraph.tensors) if index in used]
    for operator in subgraph.operators:
        for field in ("inputs", "outputs", "intermediates"):
            indices = getattr(operator, field, None)
            if indices is not None:
                setattr(operator, field, [remap[index] if index >= 0 else index for index in indices])
    subgraph.inputs = [remap[index] for index in subgraph.inputs]
    subgraph.outputs = [remap[index] for index in subgraph.outputs]
    for definition in model.signatureDefs or []:
        if definition.subgraphIndex == subgraph_index:
            for entry in (definition.inputs or []) + (definition.outputs or []):
                entry.tensorIndex = remap[entry.tensorIndex]
    still_read = {tensor.buffer for graph in model.subgraphs for tensor in graph.tensors}
    for buffer in dropped_buffers - still_read - {0}:
        model.buffers[buffer].data = None


def _add_signature(model) -> None:
    """One SignatureDef over the first subgraph's inputs and outputs, named after their tensors."""
    from ai_edge_litert import schema_py_generated as schema

    subgraph = model.subgraphs[0]
    definition = schema.SignatureDefT()
    definition.signatureKey = SIGNATURE_KEY
    definition.subgraphIndex = 0
    definition.inputs = _tensor_maps(subgraph, subgraph.inputs, "input")
    definition.outputs = _tensor_maps(subgraph, subgraph.outputs, "output")
    model.signatureDefs = [definition]


def _tensor_maps(subgraph, indices, prefix: str) -> list:
    from ai_edge_litert import schema_py_generated as schema

    entries, seen = [], set()
    for position, index in enumerate(indices):
        raw = subgraph.tensors[index].name
        name = raw.decode() if isinstance(raw, bytes) else (raw or "")
        if not name or name in seen:
            name = f"{prefix}_{position}"
        seen.add(name)
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = name, index
        entries.append(entry)
    return entries
