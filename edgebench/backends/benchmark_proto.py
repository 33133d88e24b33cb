"""TFLite/LiteRT's BenchmarkResult proto (tflite/tools/benchmark/proto/benchmark_result.proto), read with protobuf.

`benchmark_litert_model --result_file_path=FILE` writes it; when it is there it is preferred
over the log text (exact floats, median and p5/p95 that the text block does not print). The
message is declared here field for field (proto2, package tflite.tools.benchmark) and built
with protobuf's descriptor API, so no generated code is vendored.
"""

from __future__ import annotations

from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

_FLOAT, _INT32, _INT64, _STRING, _MESSAGE = (
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
)
PACKAGE = "tflite.tools.benchmark"
MESSAGES = {
    "LatencyMetrics": [("avg_ms", 1, _FLOAT), ("min_ms", 2, _FLOAT), ("max_ms", 3, _FLOAT), ("stddev_ms", 4, _FLOAT),
                       ("median_ms", 5, _FLOAT), ("p5_ms", 6, _FLOAT), ("p95_ms", 7, _FLOAT), ("init_ms", 8, _FLOAT),
                       ("first_inference_ms", 9, _FLOAT), ("average_warm_up_ms", 10, _FLOAT)],
    "MemoryMetrics": [("init_footprint_kb", 1, _INT64), ("overall_footprint_kb", 2, _INT64),
                      ("peak_mem_mb", 3, _FLOAT)],
    "MiscMetrics": [("model_size_mb", 1, _FLOAT), ("num_runs", 2, _INT32), ("num_warmup_runs", 3, _INT32),
                    ("model_throughput_in_mb_per_sec", 4, _FLOAT)],
    "BenchmarkResult": [("name", 1, _STRING), ("latency_metrics", 2, "LatencyMetrics"),
                        ("memory_metrics", 3, "MemoryMetrics"), ("misc_metrics", 4, "MiscMetrics")],
}  # fmt: skip


@cache
def result_class():
    """The BenchmarkResult message class, from a descriptor built once in a private pool."""
    return message_class("edgebench_benchmark_result.proto", PACKAGE, MESSAGES, "BenchmarkResult")


def message_class(file_name: str, package: str, messages: dict, root: str, repeated: frozenset = frozenset()):
    """A proto2 message class from field tables {message: [(field, number, type or message name)]}, built in a
    private descriptor pool; `repeated` names the fields ("Message.field") that repeat."""
    file = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto2")
    for name, fields in messages.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind in fields:
            label = (descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if f"{name}.{field_name}" in repeated
                     else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)  # fmt: skip
            field = message.field.add(name=field_name, number=number, label=label)
            if isinstance(kind, str):
                field.type, field.type_name = _MESSAGE, f".{package}.{kind}"
            else:
                field.type = kind
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{root}"))


def parse_result(data: bytes) -> dict | None:
    """The proto's fields that are set, as {message: {field: value}}; None when the bytes are not one."""
    result = result_class()()
    try:
        result.ParseFromString(data)
    except DecodeError:
        return None
    if not result.HasField("latency_metrics"):
        return None
    parsed = {}
    for part in ("latency_metrics", "memory_metrics", "misc_metrics"):
        if result.HasField(part):
            message = getattr(result, part)
            parsed[part] = {field.name: value for field, value in message.ListFields()}
    return parsed


def encode_result(latency: dict, memory: dict | None = None, misc: dict | None = None) -> bytes:
    """The proto's bytes from plain dicts: what the stand-in binary writes, as the real one does."""
    result = result_class()()
    for part, values in (("latency_metrics", latency), ("memory_metrics", memory), ("misc_metrics", misc)):
        for key, value in (values or {}).items():
            setattr(getattr(result, part), key, value)
    return result.SerializeToString()
