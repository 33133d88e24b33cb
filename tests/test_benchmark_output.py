"""benchmark_model's outputs (tests/data/benchmark_model, published samples of each format) -> figures in µs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edgebench.backends.android_facts import big_cores, parse_facts
from edgebench.backends.benchmark_output import figures_from_proto, parse_output
from edgebench.backends.benchmark_proto import encode_result, parse_result

DATA = Path(__file__).resolve().parent / "data" / "benchmark_model"


def parsed(name: str):
    return parse_output((DATA / name).read_text())


def test_the_2018_average_line_with_no_stats():
    figures = parsed("tf-2018-average-line.txt")
    assert figures.format == "stat"
    assert (figures.inference.count, figures.inference.mean, figures.inference.std) == (50, 137722, 896)
    assert (figures.inference.min, figures.inference.max, figures.inference.first) == (137079, 143416, 137789)
    assert figures.inference.median is None  # this version printed no median: never invented
    assert (figures.warmup.count, figures.warmup.mean) == (1, 146161)  # "count=1 curr=146161": all the same
    assert figures.init_us == 4452


def test_min_secs_runs_and_the_no_stats_summary():
    figures = parsed("tf-2019-min-secs.txt")
    assert (figures.inference.count, figures.inference.mean, figures.init_us) == (50, 747733, 21039)
    assert figures.warmup.mean == 751932


def test_op_profiling_tables_do_not_pass_for_the_run_statistics():
    figures = parsed("tf-2020-op-profiling.txt")
    assert (figures.inference.count, figures.inference.mean) == (
        50,
        79732,
    )  # the line after "Running ...", not "Timings"
    assert (figures.warmup.count, figures.warmup.mean, figures.init_us) == (6, 83235, 38467)


def test_info_prefixed_lines_and_the_peak_memory_line():
    figures = parsed("tf-2.x-xnnpack-peak-memory.txt")
    assert (figures.inference.count, figures.inference.mean, figures.inference.std) == (1061, 56265.8, 982)
    assert (figures.warmup.count, figures.warmup.first, figures.init_us) == (9, 81913, 3337)
    assert figures.memory_mb == {"peak": 93.2383}


def test_all_same_and_count_zero_mean_nothing_was_measured():
    figures = parsed("tf-2.x-memory-footprint.txt")
    assert figures.warmup.count == 3 and figures.warmup.mean == 9 and figures.warmup.std == 0
    assert figures.inference.count == 0 and not figures.measured
    assert figures.memory_mb == {"init": 2.43359, "overall": 8.67578, "peak": 13.1797}


def test_percentiles_give_a_real_median():
    figures = parsed("tf-2.x-percentiles.txt")
    assert figures.format == "stat+percentiles"
    inference = figures.inference
    assert (inference.p5, inference.median, inference.p95, inference.mean) == (202, 212, 340, 223.87)
    assert figures.warmup.median == 214


def test_the_litert_benchmark_results_block_in_milliseconds():
    figures = parsed("litert-benchmark-results-block.txt")
    assert figures.format == "litert-block"
    assert figures.inference.count == 4466 and figures.inference.mean == pytest.approx(220.0)
    assert (figures.inference.min, figures.inference.max, figures.inference.std) == pytest.approx((200, 1510, 50))
    assert figures.warmup.count == 2300 and figures.warmup.first == pytest.approx(1190)
    assert figures.init_us == pytest.approx(2510)
    assert figures.memory_mb == {"init": 1.5, "overall": 2.25, "peak": 5.13}


def test_the_android_app_line_through_logcat():
    figures = parsed("logcat-android-app.txt")
    assert figures.format == "average-line"
    assert (figures.inference.mean, figures.warmup.mean, figures.init_us) == (80660.1, 91471, 4108)
    assert figures.inference.count is None and not figures.measured  # a mean without a run count is not a measurement


def test_a_model_the_binary_cannot_load_is_its_own_error_lines():
    figures = parsed("failed-to-load.txt")
    assert not figures.measured
    assert "The model is not a valid Flatbuffer buffer" in figures.errors
    assert any("Failed to mmap model" in e for e in figures.errors)


def test_every_recorded_output_says_where_it_came_from():
    for path in DATA.glob("*.txt"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# ") and (
            "Published" in first or "Written from" in first or "published" in first or "Recorded here" in first
        ), path


def test_the_result_proto_is_read_with_its_median_and_preferred_fields():
    data = encode_result(
        {"avg_ms": 0.25, "median_ms": 0.2, "p5_ms": 0.19, "p95_ms": 0.4, "stddev_ms": 0.05, "min_ms": 0.18,
         "max_ms": 1.5, "init_ms": 2.5, "first_inference_ms": 1.2, "average_warm_up_ms": 0.3},
        {"init_footprint_kb": 1536, "overall_footprint_kb": 2304, "peak_mem_mb": 5.125},
        {"num_runs": 4466, "num_warmup_runs": 2300},
    )  # fmt: skip
    figures = figures_from_proto(parse_result(data))
    assert figures.format == "proto"
    assert figures.inference.count == 4466
    assert figures.inference.median == pytest.approx(200) and figures.inference.p95 == pytest.approx(400)
    assert figures.init_us == pytest.approx(2500) and figures.warmup.first == pytest.approx(1200)
    assert figures.memory_mb == pytest.approx({"init": 1.5, "overall": 2.25, "peak": 5.125})


@pytest.mark.parametrize("junk", [b"", b"\xff\xff\xff", b"not a proto at all"])
def test_bytes_that_are_not_a_result_proto_are_refused(junk):
    assert parse_result(junk) is None


def test_phone_facts_from_getprop_sysfs_and_dumpsys():
    stdout = "\n".join([
        "prop.model=Pixel 7", "prop.manufacturer=Google", "prop.soc=GS201", "prop.abi=arm64-v8a",
        "prop.release=14", "prop.sdk=34", "prop.hardware=", "cores=8",
        "maxfreq.cpu0=1803000", "maxfreq.cpu4=2348000", "maxfreq.cpu5=2348000", "maxfreq.cpu6=2850000",
        "maxfreq.cpu7=2850000", "zone.BIG=41250", "zone.battery=31000", "zone.unused=0",
        "battery_decic=312", "free_kib=1048576", "binary=executable", "binary.proto=1",
    ])  # fmt: skip
    facts = parse_facts(stdout)
    assert facts["android"] == {"model": "Pixel 7", "manufacturer": "Google", "soc": "GS201", "abi": "arm64-v8a",
                                "release": "14", "sdk": "34"}  # fmt: skip
    assert facts["cores"] == 8 and facts["big_cores"] == [6, 7]
    assert facts["thermal_zones"]["BIG"] == 41.25 and facts["battery_c"] == 31.2
    assert facts["temperature_c"] == 41.25  # the hottest real zone; the 0 placeholder zone is not a reading
    assert facts["free_bytes"] == 1 << 30
    assert facts["binary"] == "executable" and facts["binary_writes_proto"]


def test_no_frequencies_no_big_cores_and_no_zones_falls_back_to_the_battery():
    facts = parse_facts("cores=4\nbattery_decic=295\n")
    assert facts["big_cores"] == [] and facts["temperature_c"] == 29.5
    assert big_cores({0: 1000, 1: 1000}) == [0, 1]
    assert not math.isnan(facts["battery_c"])


OP_PROFILES = Path(__file__).resolve().parent / "data" / "op_profiling"


def test_the_older_tab_separated_op_profile_with_a_start_column_parses():
    """Real published output: DeepLab V3 on NNAPI, TFLite 1.x-era layout."""
    from edgebench.backends.op_profile import parse_op_profile

    rows = parse_op_profile((OP_PROFILES / "tab_separated_with_start.txt").read_text())
    assert len(rows) == 8 and rows[0].node_type == "TfLiteNnapiDelegate" and rows[0].on == "NNAPI"
    assert rows[0].avg_ms == 11.422 and rows[0].share == pytest.approx(0.21939) and rows[0].index == 71
    resize = rows[6]
    assert (resize.node_type, resize.avg_ms, resize.on, resize.name) == (
        "RESIZE_BILINEAR",
        22.369,
        "builtin",
        "[ResizeBilinear_2]:69",
    )


def test_the_newer_space_aligned_op_profile_with_xnnpacks_own_operators_parses():
    """Real published output (INFO: prefix, no [start], node types with spaces, XNNPACK's detailed profiling)."""
    from edgebench.backends.op_profile import parse_op_profile

    rows = parse_op_profile((OP_PROFILES / "space_aligned_xnnpack_detail.txt").read_text())
    assert [r.node_type for r in rows[:3]] == ["QUANTIZE", "Convolution (NHWC, QC8) IGEMM",
                                               "Convolution (NHWC, QC8) DWConv"]  # fmt: skip
    assert [r.on for r in rows[:3]] == ["builtin", "XNNPACK", "XNNPACK"]
    assert rows[2].times_called == 13 and rows[2].avg_ms == 0.051
    post = next(r for r in rows if r.node_type == "TFLite_Detection_PostProcess")
    assert post.avg_ms == 3.653 and post.index == 266 and post.on == "builtin"
    assert parse_op_profile("INFO: Inference timings in us: Init: 1, First inference: 2") is None


def test_the_op_profiling_proto_round_trips_in_run_order():
    from edgebench.backends.op_profile import encode_op_profile_proto, parse_op_profile_proto

    data = encode_op_profile_proto([("CONV_2D", 7881.0, "[conv2d_1]:2", 2), ("CONV_2D", 1635.0, "[conv2d]:0", 0),
                                    ("TfLiteXNNPackDelegate", 120.0, "[dense]:7", 5)])  # fmt: skip
    rows = parse_op_profile_proto(data)
    assert [(r.index, r.on) for r in rows] == [(0, "builtin"), (2, "builtin"), (7, "XNNPACK")]
    assert rows[1].avg_ms == 7.881 and abs(sum(r.share for r in rows) - 1) < 1e-9
    assert parse_op_profile_proto(b"\x00not a proto") is None


def test_litert_tools_source_line_prefix_is_read_too():
    """LiteRT's benchmark tool logs every line as 'INFO: [file.h:92] ...' (the prefix as a published
    benchmark_litert_model run shows it); here it is put before the newer layout's real rows: ASSEMBLED, not a
    published per-operator table of that tool, which none was found for."""
    from edgebench.backends.op_profile import parse_op_profile

    newer = (OP_PROFILES / "space_aligned_xnnpack_detail.txt").read_text().splitlines()
    assembled = "\n".join(
        "INFO: [profile_summarizer.cc:196] " + line.removeprefix("INFO: ") for line in newer if not line.startswith("#")
    )
    rows = parse_op_profile(assembled)
    assert len(rows) == 9 and rows[1].node_type == "Convolution (NHWC, QC8) IGEMM" and rows[1].on == "XNNPACK"


def test_the_litert_python_editions_block_and_its_json_result():
    """ai-edge-litert's tools/benchmark_litert_model.py: its printed block has percentiles and the placement; its
    --result_json file says the same in milliseconds with two decimals."""
    import json

    from edgebench.backends.benchmark_output import figures_from_litert_json

    figures = parsed("litert-python-results-block.txt")
    assert figures.format == "litert-block" and figures.fully_accelerated is True
    assert figures.inference.count == 64 and figures.inference.median == pytest.approx(930)
    assert (figures.inference.p5, figures.inference.p95) == pytest.approx((860, 1130))
    result = json.loads((DATA / "litert-python-result.json").read_text())
    from_json = figures_from_litert_json(result)
    assert from_json.format == "litert-json" and from_json.measured and from_json.fully_accelerated is True
    assert from_json.inference.median == figures.inference.median and from_json.init_us == figures.init_us
    assert from_json.warmup.count == 1 and from_json.warmup.first == pytest.approx(1440)
