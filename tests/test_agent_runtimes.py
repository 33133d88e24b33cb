"""The agent under the other two runtimes, numpy 1.x and no psutil: what older boards have.

tflite-runtime 2.14 (the last release) needs numpy<2, so these run in a second
virtual environment named by EDGEBENCH_ALT_PYTHON; `.ci/run` builds it with
tflite-runtime 2.14.0, tensorflow-cpu and numpy 1.26, and without psutil.
"""

from __future__ import annotations

import os

import pytest

from edgebench.agent import agent
from tests.helpers import QUICK, run_agent

ALT_PYTHON = os.environ.get("EDGEBENCH_ALT_PYTHON")
pytestmark = pytest.mark.skipif(
    not ALT_PYTHON,
    reason="EDGEBENCH_ALT_PYTHON is not set: no Python with tflite-runtime 2.14 + numpy<2 here (.ci/run makes one)",
)


@pytest.mark.parametrize("runtime", ["tflite_runtime", "tensorflow"])
@pytest.mark.parametrize("variant", ["float32", "float16", "dynamic-int8-tensorwise", "int8", "int16x8", "qat-int8"])
def test_the_agent_runs_on_the_older_runtimes(mnist_variants, mnist, runtime, variant):
    document, code, stderr = run_agent(
        mnist_variants[variant].path, "--runtime", runtime, "--dataset", str(mnist.dataset_path),
        "--samples", "300", *QUICK, python=ALT_PYTHON,
    )  # fmt: skip
    assert code == 0, stderr
    environment = document["environment"]
    assert environment["runtime"]["name"] == runtime
    assert environment["numpy"].startswith("1.")
    assert environment["psutil"] is None
    assert document["memory"]["source"] == "/proc VmRSS + VmHWM"
    assert document["memory"]["baseline_rss"] > 10e6
    assert document["accuracy"]["top1"] >= 0.97


def test_tflite_runtime_2_14_is_the_one_found_first(mnist_variants):
    """Without ai_edge_litert the search order falls through to tflite_runtime."""
    document, code, _ = run_agent(mnist_variants["float32"].path, *QUICK, python=ALT_PYTHON)
    assert code == 0
    assert document["environment"]["runtime"] == {"name": "tflite_runtime", "version": "2.14.0"}


def test_a_model_the_old_runtime_cannot_load_is_reported_not_crashed(mnist_variants):
    """ai-edge-quantizer's int4 weights need a DEQUANTIZE kernel newer than 2.14's."""
    document, code, _ = run_agent(mnist_variants["int4-weights"].path, "--runtime", "tflite_runtime", *QUICK,
                                  python=ALT_PYTHON)  # fmt: skip
    assert code == agent.EXIT_MODEL_FAILED
    assert document["error"]["kind"] == "model-load-failed"
    assert "dequantize" in document["error"]["message"].lower()


@pytest.mark.parametrize(("runtime", "wrong"), [("tflite_runtime", True), ("tensorflow", False)])
def test_per_channel_dynamic_int8_is_wrong_on_tflite_runtime_and_labelled_so(mnist_variants, mnist, runtime, wrong):
    """The quantizer's default dynamic-int8 (per-channel weights) on tflite-runtime 2.14: its hybrid kernels ignore
    the scales and the classes come out wrong. The run labels those figures and names the variant to measure."""
    from edgebench.model.runtime_issues import runtime_issue

    variant = mnist_variants["dynamic-int8"]
    document, code, stderr = run_agent(
        variant.path, "--runtime", runtime, "--dataset", str(mnist.dataset_path), "--samples", "300", *QUICK,
        python=ALT_PYTHON,
    )  # fmt: skip
    assert code == 0, stderr
    issue = runtime_issue(variant.recipe, document["environment"]["runtime"])
    if wrong:
        assert document["accuracy"]["top1"] < 0.5
        assert issue.startswith("tflite_runtime 2.14.0 ignores per-channel weight scales")
        assert "measure dynamic-int8-tensorwise" in issue
    else:
        assert document["accuracy"]["top1"] >= 0.97 and issue is None
