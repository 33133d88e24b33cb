"""`edgebench quantize`: the table, the output folder, and every bad input as one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgebench.cli.main import main
from tests.helpers import assert_one_line_error, run_edgebench, run_main


def test_quantize_writes_variants_and_prints_the_table(tmp_path, variant_cache):
    out = tmp_path / "out"
    result = run_edgebench(
        "quantize", "mnist", "--variants", "float32,dynamic-int8,qat-int8",
        "-o", str(out), "--cache-dir", str(variant_cache),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Variants of mnist" in result.stdout
    assert "dynamic_wi8_afp32: int8 weights per channel, float activations (the quantizer's default)" in result.stdout
    assert "3.99x" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "mnist-dynamic-int8.tflite",
        "mnist-float32.tflite",
        "mnist-qat-int8.tflite",
    ]


def test_quantize_json_with_evaluation(capsys, variant_cache):
    code = main(
        ["quantize", "mnist", "--variants", "float32,int8", "--evaluate", "--samples", "500",
         "--cache-dir", str(variant_cache), "--format", "json"]
    )  # fmt: skip
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    by_name = {v["name"]: v for v in document["variants"]}
    assert by_name["float32"]["evaluated"] == 500
    assert by_name["int8"]["bytes"] * 3.9 < by_name["float32"]["bytes"]
    assert abs(by_name["int8"]["top1"] - by_name["float32"]["top1"]) <= 0.01


def test_markdown_format(capsys, variant_cache):
    assert main(["quantize", "mnist", "--variants", "float32,float16", "--cache-dir", str(variant_cache),
                 "--format", "markdown"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| variant | bytes |")
    assert any(line.startswith("| float16 |") for line in lines)


def test_an_explicit_variant_that_cannot_be_made_is_bad_input(tmp_path, mnist, capfd):
    user_model = tmp_path / "user.tflite"
    shutil.copy(mnist.model_path, user_model)
    result = run_main(capfd, "quantize", str(user_model), "--variants", "float32,int8,float16",
                           "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert_one_line_error(result, "variant int8 cannot be made for user: needs calibration data")


def test_missing_file(tmp_path, capfd):
    assert_one_line_error(run_main(capfd, "quantize", str(tmp_path / "nope.tflite")), "model file not found")


def test_unknown_model_name(capfd):
    assert_one_line_error(run_main(capfd, "quantize", "resnet-9000"), "unknown model 'resnet-9000'", "mnist")


def test_not_a_tflite_file(tmp_path, capfd):
    text = tmp_path / "notes.tflite"
    text.write_text("this is a text file, not a flatbuffer\n" * 10)
    assert_one_line_error(run_main(capfd, "quantize", str(text)), "is not a TFLite model")


def test_corrupt_tflite_file(tmp_path, mnist, capfd):
    """A real model cut short: right header, broken body."""
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(mnist.model_path.read_bytes()[:4096])
    assert_one_line_error(run_main(capfd, "quantize", str(truncated)), "corrupt TFLite model")


def test_garbage_with_a_tflite_header(tmp_path, capfd):
    garbage = tmp_path / "garbage.tflite"
    rng = np.random.default_rng(0)
    garbage.write_bytes(b"\x1c\x00\x00\x00TFL3" + rng.bytes(20_000))
    assert_one_line_error(run_main(capfd, "quantize", str(garbage)), "corrupt TFLite model")


def test_a_model_with_no_float_weights(tmp_path, mnist, capfd):
    """The shipped QAT model is already int8: there is nothing left to quantize."""
    assert_one_line_error(
        run_main(capfd, "quantize", str(mnist.prebuilt_variants["qat-int8"])), "has no float weights to quantize"
    )


def test_bad_calibration_file(tmp_path, mnist, capfd):
    bad = tmp_path / "calibration.npz"
    bad.write_bytes(b"not a zip")
    user_model = tmp_path / "user.tflite"
    shutil.copy(mnist.model_path, user_model)
    result = run_main(capfd, "quantize", str(user_model), "--variants", "int8", "--calibration", str(bad),
                           "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert_one_line_error(result, "is not an .npz archive")


def test_unknown_variant(capfd):
    assert_one_line_error(run_main(capfd, "quantize", "mnist", "--variants", "int3"), "unknown variant int3")


@pytest.mark.parametrize("samples", ["0", "-3"])
def test_bad_sample_count(samples, capfd):
    assert_one_line_error(run_main(capfd, "quantize", "mnist", "--samples", samples), "--samples")
