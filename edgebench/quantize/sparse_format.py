"""A pruned float32 file with its pruned weights stored in TFLite's sparse format, behind DENSIFY.

This is what the TFLite converter's EXPERIMENTAL_SPARSITY optimization writes, made here without TensorFlow:
each pruned weight of FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D with at least MIN_SHARE zeros becomes a
sparse constant (every dimension DENSE but the last, which is SPARSE_CSR: only the non-zero values and their
column indices are stored) read through a DENSIFY operator. Two things follow:
- the raw file shrinks (at 80% zeros to about a third), before any compression;
- it is the only form in which a TFLite runtime can reach a sparse kernel: the XNNPACK delegate asks for its
  sparse inference (XNN_FLAG_HINT_SPARSE_INFERENCE) only when a graph has such weights, and XNNPACK then takes
  its sparse (NCHW) kernels for the convolution patterns it supports, mostly 1x1 convolutions of
  MobileNet-like networks. Other runtimes and kernels densify the weights once, when the model is prepared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebench.core.fileio import atomic_write_bytes
from edgebench.quantize.prune import prunable

MIN_SHARE = 0.5  # below this, CSR (value + index per non-zero) would not be smaller than the dense tensor


def store_sparse(source: Path, out: Path) -> int:
    """Write `source` with its pruned weights in the sparse format; returns how many tensors were stored so."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(Path(source).read_bytes()))
    subgraph = model.subgraphs[0]
    densify = _opcode(model, schema, schema.BuiltinOperator.DENSIFY)
    added = []
    for tensor_index, _ in prunable(model, schema):
        tensor = subgraph.tensors[tensor_index]
        values = np.frombuffer(bytes(model.buffers[tensor.buffer].data), dtype="<f4").reshape(tuple(tensor.shape))
        if values.ndim < 2 or np.mean(values == 0) < MIN_SHARE:
            continue
        rows = values.reshape(-1, values.shape[-1])
        keep = rows != 0
        sparse = schema.TensorT()
        sparse.name = (tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)) + "/sparse"
        sparse.shape, sparse.type = list(tensor.shape), schema.TensorType.FLOAT32
        sparse.buffer = _buffer(model, schema, rows[keep].astype("<f4").tobytes())
        sparse.sparsity = schema.SparsityParametersT()
        sparse.sparsity.traversalOrder = list(range(values.ndim))
        sparse.sparsity.dimMetadata = [_dense(schema, size) for size in values.shape[:-1]] + [_csr(schema, keep)]
        subgraph.tensors.append(sparse)
        shared = sum(1 for t in subgraph.tensors if t.buffer == tensor.buffer) > 1
        if not shared:
            model.buffers[tensor.buffer].data = None  # the dense values are gone from the file, not just unread
        tensor.buffer = _buffer(model, schema, b"")  # the dense tensor is now computed: DENSIFY's output
        operator = schema.OperatorT()
        operator.opcodeIndex, operator.inputs, operator.outputs = densify, [len(subgraph.tensors) - 1], [tensor_index]
        added.append(operator)
    subgraph.operators = added + list(subgraph.operators)  # before every consumer: the graph stays in order
    atomic_write_bytes(out, bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    return len(added)


def _opcode(model, schema, builtin: int) -> int:
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _buffer(model, schema, data: bytes) -> int:
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8) if data else None
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def _dense(schema, size: int):
    level = schema.DimensionMetadataT()
    level.format, level.denseSize = schema.DimensionType.DENSE, int(size)
    return level


def _csr(schema, keep: np.ndarray):
    """The last level: for each row, which columns are stored (segments, int32; column indices, uint16 when
    they fit: 6 bytes per stored weight instead of 8)."""
    level = schema.DimensionMetadataT()
    level.format = schema.DimensionType.SPARSE_CSR
    segments = schema.Int32VectorT()
    segments.values = [0, *np.cumsum(keep.sum(axis=1)).tolist()]
    columns = np.nonzero(keep)[1]
    if keep.shape[1] <= np.iinfo(np.uint16).max:
        indices, kind = schema.Uint16VectorT(), schema.SparseIndexVector.Uint16Vector
    else:
        indices, kind = schema.Int32VectorT(), schema.SparseIndexVector.Int32Vector
    indices.values = columns.tolist()
    level.arraySegmentsType, level.arrayIndicesType = schema.SparseIndexVector.Int32Vector, kind
    level.arraySegments, level.arrayIndices = segments, indices
    return level
