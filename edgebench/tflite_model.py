"""Check that a file is a TFLite model, and describe what its weights are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import ModelError

# A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
TFLITE_IDENTIFIER = b"TFL3"

_FLOAT_TYPES = {0: "float32", 1: "float16", 10: "float64"}  # tflite schema TensorType codes


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    size_bytes: int
    float_weight_elements: int  # elements of constant float32/float16 tensors
    integer_weight_elements: int
    input_dtypes: tuple[str, ...]

    @property
    def has_float_weights(self) -> bool:
        return self.float_weight_elements > 0


def inspect_model(path: str | Path) -> ModelInfo:
    """Parse the flatbuffer; raise ModelError with one line on anything wrong."""
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

    float_elements = integer_elements = 0
    input_dtypes = []
    try:
        for subgraph_index, subgraph in enumerate(model.subgraphs or []):
            for tensor in subgraph.tensors or []:
                buffer = model.buffers[tensor.buffer] if tensor.buffer else None
                if buffer is None or buffer.data is None or len(buffer.data) == 0:
                    continue
                elements = _element_count(tensor.shape)
                if tensor.type in _FLOAT_TYPES:
                    float_elements += elements
                else:
                    integer_elements += elements
            if subgraph_index == 0:
                input_dtypes = [_type_name(subgraph.tensors[i].type) for i in subgraph.inputs]
    except (IndexError, TypeError, AttributeError) as error:
        raise ModelError(f"{path} is a corrupt TFLite model: {error}") from None
    if not model.subgraphs:
        raise ModelError(f"{path} is a corrupt TFLite model: it has no subgraphs")
    return ModelInfo(path, len(data), float_elements, integer_elements, tuple(input_dtypes))


def _element_count(shape) -> int:
    count = 1
    for dimension in shape if shape is not None else ():
        count *= max(int(dimension), 1)
    return count


def _type_name(code: int) -> str:
    names = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8"}
    return names.get(code, f"type{code}")


def require_float_weights(info: ModelInfo) -> None:
    if not info.has_float_weights:
        raise ModelError(
            f"{info.path} has no float weights to quantize (is it already quantized?); pass the float32 model"
        )
