"""Third-party-style TFLite models, built here as real flatbuffers (no TensorFlow needed).

Published models break naive quantization in ways the zoo model never shows:
no SignatureDef (converted before TF 2.x), weights stored as float16 behind
DEQUANTIZE ops, PRELU activations, two inputs, two outputs (a detector's boxes
and scores). This module writes such models with the TFLite schema's own
object API, with seeded weights, so the tests run the real runtime and the real
quantizer on each shape. The weights are not trained: the tests look at what
quantization does to the graph and its outputs, not at accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

_DTYPES = {np.dtype(np.float32): schema.TensorType.FLOAT32, np.dtype(np.float16): schema.TensorType.FLOAT16}
_OP = schema.BuiltinOperator
_OPTIONS = schema.BuiltinOptions
_ACT = schema.ActivationFunctionType


class GraphBuilder:
    """One subgraph, NHWC float32 activations; constants float32, or float16 behind DEQUANTIZE."""

    def __init__(self, *, seed: int = 0, float16_weights: bool = False, sparse_weights: bool = False):
        self.rng = np.random.default_rng(seed)
        self.float16_weights = float16_weights or sparse_weights
        self.sparse_weights = sparse_weights
        self.model = schema.ModelT()
        self.model.version = 3
        self.model.description = "edgebench third-party-style test model"
        self.model.buffers = [schema.BufferT()]  # buffer 0: the empty sentinel
        self.model.operatorCodes = []
        self.subgraph = schema.SubGraphT()
        self.subgraph.tensors, self.subgraph.operators = [], []
        self.subgraph.inputs, self.subgraph.outputs = [], []
        self.subgraph.name = "main"
        self.model.subgraphs = [self.subgraph]
        self.shapes: list[tuple[int, ...]] = []

    # ---- tensors -------------------------------------------------------------
    def _tensor(self, name: str, shape, dtype=np.float32, data: np.ndarray | None = None) -> int:
        tensor = schema.TensorT()
        tensor.name = name
        tensor.shape = list(shape)
        tensor.type = _DTYPES[np.dtype(dtype)]
        tensor.buffer = 0
        if data is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data, dtype=dtype).tobytes(), dtype=np.uint8)
            self.model.buffers.append(buffer)
            tensor.buffer = len(self.model.buffers) - 1
        self.subgraph.tensors.append(tensor)
        self.shapes.append(tuple(shape))
        return len(self.subgraph.tensors) - 1

    def input(self, name: str, shape) -> int:
        index = self._tensor(name, shape)
        self.subgraph.inputs.append(index)
        return index

    def output(self, index: int) -> None:
        self.subgraph.outputs.append(index)

    def weight(self, name: str, shape, scale: float = 0.2) -> int:
        values = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        return self.constant(name, values)

    def constant(self, name: str, values: np.ndarray) -> int:
        if not self.float16_weights or values.ndim < 2:
            return self._tensor(name, values.shape, np.float32, values)
        if self.sparse_weights:
            return self._sparse_float16(name, values)
        stored = self._tensor(name + "_fp16", values.shape, np.float16, values.astype(np.float16))
        return self._op(_OP.DEQUANTIZE, [stored], name, values.shape)

    def _sparse_float16(self, name: str, values: np.ndarray) -> int:
        """SPARSE float16 -> DENSIFY -> DEQUANTIZE, as some published detectors store weights: 60% of each
        tensor pruned by magnitude, then stored in TFLite's sparse format. A 2-D (fully connected) weight in 1x4
        blocks along its input dimension (the block map the converter uses for sparse FC kernels), anything
        else as plain CSR over its last dimension."""
        pruned = np.where(np.abs(values) < np.quantile(np.abs(values), 0.6), 0, values).astype(np.float16)
        sparsity = schema.SparsityParametersT()
        rank = pruned.ndim
        if rank == 2 and pruned.shape[1] % 4 == 0:
            rows, blocks = pruned.shape[0], pruned.shape[1] // 4
            grid = pruned.reshape(rows, blocks, 4)
            keep = np.abs(grid).sum(axis=2) > 0
            sparsity.traversalOrder, sparsity.blockMap = [0, 1, 2], [1]
            levels = [_dense_level(rows), _csr_level(keep), _dense_level(4)]
            stored = grid[keep].reshape(-1)
        else:
            flat = pruned.reshape(-1, pruned.shape[-1])
            keep = flat != 0
            sparsity.traversalOrder = list(range(rank))
            levels = [_dense_level(size) for size in pruned.shape[:-1]] + [_csr_level(keep)]
            stored = flat[keep]
        sparsity.dimMetadata = levels
        index = self._tensor(name + "_sparse_fp16", pruned.shape, np.float16, stored)
        self.subgraph.tensors[index].sparsity = sparsity
        dense = self._op(_OP.DENSIFY, [index], name + "_fp16", pruned.shape)
        self.subgraph.tensors[dense].type = schema.TensorType.FLOAT16
        return self._op(_OP.DEQUANTIZE, [dense], name, pruned.shape)

    # ---- operators -----------------------------------------------------------
    def _opcode(self, builtin: int) -> int:
        for index, code in enumerate(self.model.operatorCodes):
            if code.builtinCode == builtin:
                return index
        code = schema.OperatorCodeT()
        code.builtinCode = builtin
        code.deprecatedBuiltinCode = min(builtin, 127)
        code.version = 1
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    def _op(self, builtin: int, inputs, name: str, shape, options_type=0, options=None) -> int:
        output = self._tensor(name, shape)
        operator = schema.OperatorT()
        operator.opcodeIndex = self._opcode(builtin)
        operator.inputs, operator.outputs = list(inputs), [output]
        operator.builtinOptionsType = options_type
        operator.builtinOptions = options
        self.subgraph.operators.append(operator)
        return output

    def conv2d(self, x: int, filters: int, kernel: int = 3, stride: int = 1, name: str = "conv") -> int:
        batch, height, width, channels = self.shapes[x]
        weights = self.weight(
            name + "/weights", (filters, kernel, kernel, channels), (2 / (kernel * kernel * channels)) ** 0.5
        )
        bias = self.constant(name + "/bias", np.zeros(filters, np.float32))
        options = schema.Conv2DOptionsT()
        options.padding, options.strideH, options.strideW = schema.Padding.SAME, stride, stride
        options.dilationHFactor = options.dilationWFactor = 1
        options.fusedActivationFunction = _ACT.NONE
        shape = (batch, -(-height // stride), -(-width // stride), filters)
        return self._op(_OP.CONV_2D, [x, weights, bias], name, shape, _OPTIONS.Conv2DOptions, options)

    def depthwise_conv2d(self, x: int, kernel: int = 3, stride: int = 1, name: str = "dw") -> int:
        batch, height, width, channels = self.shapes[x]
        weights = self.weight(name + "/weights", (1, kernel, kernel, channels), (2 / (kernel * kernel)) ** 0.5)
        bias = self.constant(name + "/bias", np.zeros(channels, np.float32))
        options = schema.DepthwiseConv2DOptionsT()
        options.padding, options.strideH, options.strideW = schema.Padding.SAME, stride, stride
        options.depthMultiplier = 1
        options.dilationHFactor = options.dilationWFactor = 1
        options.fusedActivationFunction = _ACT.RELU6
        shape = (batch, -(-height // stride), -(-width // stride), channels)
        return self._op(
            _OP.DEPTHWISE_CONV_2D, [x, weights, bias], name, shape, _OPTIONS.DepthwiseConv2DOptions, options
        )

    def prelu(self, x: int, name: str = "prelu") -> int:
        channels = self.shapes[x][-1]
        alpha = self.constant(name + "/alpha", np.full((1, 1, channels), 0.25, np.float32))
        return self._op(_OP.PRELU, [x, alpha], name, self.shapes[x])

    def mean_hw(self, x: int, name: str = "pool") -> int:
        axes = self._tensor(name + "/axes", (2,), np.float32)  # replaced below: MEAN wants int32 axes
        tensor = self.subgraph.tensors[axes]
        tensor.type = schema.TensorType.INT32
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(np.array([1, 2], np.int32).tobytes(), dtype=np.uint8)
        self.model.buffers.append(buffer)
        tensor.buffer = len(self.model.buffers) - 1
        options = schema.ReducerOptionsT()
        options.keepDims = False
        batch, _, _, channels = self.shapes[x]
        return self._op(_OP.MEAN, [x, axes], name, (batch, channels), _OPTIONS.ReducerOptions, options)

    def dense(self, x: int, units: int, name: str = "dense", relu: bool = False) -> int:
        batch, features = self.shapes[x]
        weights = self.weight(name + "/weights", (units, features), (1 / features) ** 0.5)
        bias = self.constant(name + "/bias", np.zeros(units, np.float32))
        options = schema.FullyConnectedOptionsT()
        options.fusedActivationFunction = _ACT.RELU if relu else _ACT.NONE
        return self._op(
            _OP.FULLY_CONNECTED, [x, weights, bias], name, (batch, units), _OPTIONS.FullyConnectedOptions, options
        )

    def add(self, a: int, b: int, name: str = "add") -> int:
        options = schema.AddOptionsT()
        options.fusedActivationFunction = _ACT.NONE
        return self._op(_OP.ADD, [a, b], name, self.shapes[a], _OPTIONS.AddOptions, options)

    def softmax(self, x: int, name: str = "softmax") -> int:
        options = schema.SoftmaxOptionsT()
        options.beta = 1.0
        return self._op(_OP.SOFTMAX, [x], name, self.shapes[x], _OPTIONS.SoftmaxOptions, options)

    def custom(self, x: int, code: str, name: str = "custom") -> int:
        """An operator the runtime does not know (CUSTOM with this custom_code), shape-preserving."""
        operator_code = schema.OperatorCodeT()
        operator_code.builtinCode = operator_code.deprecatedBuiltinCode = _OP.CUSTOM
        operator_code.customCode, operator_code.version = code, 1
        self.model.operatorCodes.append(operator_code)
        output = self._tensor(name, self.shapes[x])
        operator = schema.OperatorT()
        operator.opcodeIndex = len(self.model.operatorCodes) - 1
        operator.inputs, operator.outputs = [x], [output]
        self.subgraph.operators.append(operator)
        return output

    def logistic(self, x: int, name: str = "sigmoid") -> int:
        return self._op(_OP.LOGISTIC, [x], name, self.shapes[x])

    # ---- out -------------------------------------------------------------------
    def build(self, *, signature: bool = False, legacy_opcodes: bool = False) -> bytes:
        """The flatbuffer; `legacy_opcodes` writes operator codes as converters before TF 2.3 did
        (only deprecated_builtin_code set, builtin_code left 0)."""
        if legacy_opcodes:
            for code in self.model.operatorCodes:
                code.builtinCode = 0
        if signature:
            definition = schema.SignatureDefT()
            definition.signatureKey = "serving_default"
            definition.subgraphIndex = 0
            definition.inputs = [_tensor_map(self.subgraph.tensors[i].name, i) for i in self.subgraph.inputs]
            definition.outputs = [_tensor_map(self.subgraph.tensors[i].name, i) for i in self.subgraph.outputs]
            self.model.signatureDefs = [definition]
        return bytes(flatbuffer_utils.convert_object_to_bytearray(self.model))


def _dense_level(size: int):
    level = schema.DimensionMetadataT()
    level.format, level.denseSize = schema.DimensionType.DENSE, size
    return level


def _csr_level(keep: np.ndarray):
    """One SPARSE_CSR level over the rows of `keep` (rows x columns): which columns each row stores."""
    level = schema.DimensionMetadataT()
    level.format = schema.DimensionType.SPARSE_CSR
    segments, indices = schema.Int32VectorT(), schema.Int32VectorT()
    segments.values = [0, *np.cumsum(keep.sum(axis=1)).tolist()]
    indices.values = np.nonzero(keep)[1].tolist()
    level.arraySegmentsType = level.arrayIndicesType = schema.SparseIndexVector.Int32Vector
    level.arraySegments, level.arrayIndices = segments, indices
    return level


def _tensor_map(name: str, index: int):
    entry = schema.TensorMapT()
    entry.name, entry.tensorIndex = name, index
    return entry


def _backbone(graph: GraphBuilder, x: int, width: int = 64, name: str = "") -> int:
    """A MobileNet-style stem: conv, PRELU, two depthwise-separable blocks."""
    x = graph.prelu(graph.conv2d(x, width, 3, 2, name + "stem"), name + "stem/prelu")
    for block in range(2):
        x = graph.depthwise_conv2d(x, 3, 2 if block == 0 else 1, f"{name}block{block}/dw")
        x = graph.prelu(graph.conv2d(x, width * 2, 1, 1, f"{name}block{block}/pw"), f"{name}block{block}/prelu")
    return x


def landmark_model(
    *, float16_weights: bool = False, signature: bool = False, legacy_opcodes: bool = False, seed: int = 1
) -> bytes:
    """A face-landmark-like CNN: 64x64x3 in, 68 (x, y) points out; CONV_2D, DEPTHWISE_CONV_2D, PRELU."""
    graph = GraphBuilder(seed=seed, float16_weights=float16_weights)
    x = graph.input("image", (1, 64, 64, 3))
    features = graph.dense(graph.mean_hw(_backbone(graph, x)), 1024, "hidden", relu=True)
    graph.output(graph.dense(features, 136, "landmarks"))
    return graph.build(signature=signature, legacy_opcodes=legacy_opcodes)


def detector_model(
    *,
    float16_weights: bool = False,
    signature: bool = False,
    legacy_opcodes: bool = False,
    seed: int = 2,
    sparse_weights: bool = False,
) -> bytes:
    """A detector-like head: one 64x64x3 image in, boxes (1, 40) and class scores (1, 10) out."""
    graph = GraphBuilder(seed=seed, float16_weights=float16_weights, sparse_weights=sparse_weights)
    x = graph.input("image", (1, 64, 64, 3))
    features = graph.dense(graph.mean_hw(_backbone(graph, x)), 1024, "hidden", relu=True)
    graph.output(graph.logistic(graph.dense(features, 40, "boxes/dense"), "boxes"))
    graph.output(graph.softmax(graph.dense(features, 10, "scores/dense"), "scores"))
    return graph.build(signature=signature, legacy_opcodes=legacy_opcodes)


def two_input_model(
    *, float16_weights: bool = False, signature: bool = False, legacy_opcodes: bool = False, seed: int = 3
) -> bytes:
    """Two images (say, two camera views) through two stems, summed, one embedding (1, 64) out."""
    graph = GraphBuilder(seed=seed, float16_weights=float16_weights)
    left = graph.mean_hw(_backbone(graph, graph.input("left", (1, 48, 48, 3)), name="left/"), "left/pool")
    right = graph.mean_hw(_backbone(graph, graph.input("right", (1, 48, 48, 3)), name="right/"), "right/pool")
    hidden = graph.dense(graph.add(left, right), 1024, "hidden", relu=True)
    graph.output(graph.dense(hidden, 64, "embedding"))
    return graph.build(signature=signature, legacy_opcodes=legacy_opcodes)


SHAPES = {
    "landmark": landmark_model,
    "detector": detector_model,
    "two-input": two_input_model,
}


def write_model(folder: Path, shape: str, **options) -> Path:
    suffix = "".join(f"-{key}" for key, value in sorted(options.items()) if value)
    path = Path(folder) / f"{shape}{suffix}.tflite"
    path.write_bytes(SHAPES[shape](**options))
    return path


if __name__ == "__main__":
    # python -m tests.third_party_models OUT_DIR: write every shape, as the README's examples use them.
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    for shape in SHAPES:
        for options in ({}, {"float16_weights": True}, {"legacy_opcodes": True}):
            print(write_model(out, shape, **options))
    print(write_model(out, "detector", sparse_weights=True))
