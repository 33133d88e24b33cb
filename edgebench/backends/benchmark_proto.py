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
    file = descriptor_pb2.FileDescriptorProto(name="edgebench_benchmark_result.proto", package=PACKAGE,
                                              syntax="proto2")  # fmt: skip
    for name, fields in MESSAGES.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind in fields:
            field = message.field.add(name=field_name, number=number,
                                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)  # fmt: skip
            if isinstance(kind, str):
                field.type, field.type_name = _MESSAGE, f".{PACKAGE}.{kind}"
            else:
                field.type = kind
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.BenchmarkResult"))


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
