"""Check that a file is a TFLite model, and describe what its weights and operators are.

The description is what lets edgebench tell a real variant from a copy: bytes
and elements of constant tensors by dtype, the operators, whether the model has
a SignatureDef, and the shapes of published models that trip the quantizer up
(operator codes from the pre-TF-2.3 schema, weights stored as float16 behind
DEQUANTIZE).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.core.errors import ModelError

# A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
TFLITE_IDENTIFIER = b"TFL3"

FLOAT_WEIGHT_TYPES = ("float32", "float16", "float64", "bfloat16")
DEQUANTIZE = 6  # BuiltinOperator.DEQUANTIZE
DENSIFY = 124  # BuiltinOperator.DENSIFY
FLOAT32 = 0  # TensorType.FLOAT32


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    size_bytes: int
    weight_elements: dict[str, int]  # constant tensors' elements by dtype name ("float32", "int8", ...)
    weight_bytes: dict[str, int]  # their stored bytes by dtype name
    operators: dict[str, int] = field(default_factory=dict)  # operator name -> count, all subgraphs
    input_dtypes: tuple[str, ...] = ()
    output_count: int = 0
    has_signature: bool = False
    legacy_opcodes: int = 0  # operator codes with only the pre-TF-2.3 deprecated_builtin_code set
    dequantized_constants: dict[str, int] = field(default_factory=dict)  # dtype -> constants behind DEQUANTIZE
    # operator -> float32 weight elements it reads directly: where a quantizer left weights alone
    float32_weight_consumers: Counter = field(default_factory=Counter)

    @property
    def float_weight_elements(self) -> int:
        return sum(self.weight_elements.get(t, 0) for t in FLOAT_WEIGHT_TYPES)

    @property
    def has_float_weights(self) -> bool:
        return self.float_weight_elements > 0 or bool(self.dequantized_constants)

    @property
    def is_plain_float32(self) -> bool:
        """Every float weight is float32 and read directly: what `float32` must mean."""
        return not self.dequantized_constants and self.float_weight_elements == self.weight_elements.get("float32", 0)


def tensor_type_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {code: name.lower() for name, code in vars(schema.TensorType).items() if not name.startswith("_")}


def operator_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def builtin_code(operator_code) -> int:
    """The operator's builtin code, as the runtime reads it (schema_utils.cc GetBuiltinCode).

    Models written before TF 2.3 set only `deprecated_builtin_code`; the newer
    `builtin_code` field then reads 0 (ADD)."""
    return max(operator_code.builtinCode, operator_code.deprecatedBuiltinCode)


def read_model_object(path: str | Path):
    """The model as the TFLite schema's mutable object tree; ModelError on anything wrong."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelError(f"model path is not a file: {path}")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{path} is not a TFLite model (no 'TFL3' flatbuffer identifier)")
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    except Exception as error:  # the flatbuffer reader raises anything from struct.error to IndexError
        raise ModelError(f"{path} is a corrupt TFLite model: {type(error).__name__}: {error}") from None
    if not model.subgraphs:
        raise ModelError(f"{path} is a corrupt TFLite model: it has no subgraphs")
    return model, len(data)


def constant_data(model, tensor):
    """The bytes behind a constant tensor, or None for an activation."""
    if not tensor.buffer or tensor.buffer >= len(model.buffers):
        return None
    data = model.buffers[tensor.buffer].data
    return data if data is not None and len(data) > 0 else None


def inspect_model(path: str | Path) -> ModelInfo:
    """Parse the flatbuffer; raise ModelError with one line on anything wrong."""
    model, size = read_model_object(path)
    types, ops = tensor_type_names(), operator_names()
    elements: Counter = Counter()
    stored: Counter = Counter()
    operators: Counter = Counter()
    dequantized: Counter = Counter()
    consumers: Counter = Counter()
    codes = model.operatorCodes or []
    try:
        for subgraph in model.subgraphs:
            tensors = subgraph.tensors or []
            for tensor in tensors:
                data = constant_data(model, tensor)
                if data is None:
                    continue
                name = types.get(tensor.type, f"type{tensor.type}")
                elements[name] += _element_count(tensor.shape)
                stored[name] += len(data)
            for operator in subgraph.operators or []:
                code = builtin_code(codes[operator.opcodeIndex])
                name = ops.get(code, f"op{code}")
                operators[name] += 1
                for index in operator.inputs if operator.inputs is not None else ():
                    tensor = tensors[index] if index >= 0 else None
                    if tensor is not None and tensor.type == FLOAT32 and constant_data(model, tensor) is not None:
                        consumers[name] += _element_count(tensor.shape)
                if code == DEQUANTIZE and operator.inputs is not None and len(operator.inputs):
                    source = tensors[operator.inputs[0]]
                    if constant_data(model, source) is not None:
                        dequantized[types.get(source.type, f"type{source.type}")] += 1
        first = model.subgraphs[0]
        input_dtypes = tuple(types.get(first.tensors[i].type, "?") for i in first.inputs)
        output_count = len(first.outputs)
    except (IndexError, TypeError, AttributeError) as error:
        raise ModelError(f"{path} is a corrupt TFLite model: {error}") from None
    legacy = sum(1 for code in codes if code.builtinCode < code.deprecatedBuiltinCode)
    return ModelInfo(
        Path(path), size, dict(elements), dict(stored), dict(operators), input_dtypes, output_count,
        bool(model.signatureDefs), legacy, dict(dequantized), consumers,
    )  # fmt: skip


def _element_count(shape) -> int:
    count = 1
    for dimension in shape if shape is not None else ():
        count *= max(int(dimension), 1)
    return count


def require_float_weights(info: ModelInfo) -> None:
    if not info.has_float_weights:
        raise ModelError(
            f"{info.path} has no float weights to quantize (is it already quantized?); pass the float32 model"
        )
