"""The agent's input/output quantization and batching, which host and device share."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.agent import agent


def detail(dtype, scale, zero_point):
    return {"name": "t", "dtype": dtype, "quantization": (scale, zero_point)}


def test_int8_input_uses_scale_and_zero_point():
    values = np.array([0.0, 0.6, 1.0, 2.0], dtype=np.float32)
    q = agent.quantize_input(values, detail(np.int8, 1 / 255, -128))
    assert q.dtype == np.int8
    assert q.tolist() == [-128, 25, 127, 127]  # 2.0 is out of range and saturates


def test_float_input_is_only_cast():
    values = np.array([0.25], dtype=np.float64)
    assert agent.quantize_input(values, detail(np.float32, 0.0, 0)).dtype == np.float32


def test_integer_input_without_parameters_is_refused():
    with pytest.raises(ValueError, match="without quantization parameters"):
        agent.quantize_input(np.zeros(2, np.float32), detail(np.int8, 0.0, 0))


def test_output_dequantization_round_trips():
    scale, zero_point = 0.05, 3
    real = np.array([[-1.0, 0.0, 2.5]], dtype=np.float32)
    stored = np.round(real / scale + zero_point).astype(np.int8)
    assert np.allclose(agent.dequantize_output(stored, detail(np.int8, scale, zero_point)), real, atol=scale / 2)


def test_batched_and_single_predictions_agree(mnist, mnist_test_set):
    interpreter_class, runtime, _ = agent.load_runtime()
    assert runtime == "ai_edge_litert"
    single_interpreter = interpreter_class(model_path=str(mnist.model_path))
    single_interpreter.allocate_tensors()
    single = agent.ModelRunner(single_interpreter)
    batched_interpreter = interpreter_class(model_path=str(mnist.model_path))
    batched_interpreter.allocate_tensors()
    batched = agent.ModelRunner(batched_interpreter)
    assert batched.try_batch(64) == 64
    x = [mnist_test_set.model_inputs(0, 150)]  # not a multiple of 64: the last batch is padded
    assert np.array_equal(single.predict(x), batched.predict(x))


def test_no_runtime_says_what_was_tried(monkeypatch):
    monkeypatch.setattr(agent, "RUNTIME_MODULES", (("no_such_runtime", "no_such_runtime.interpreter"),))
    with pytest.raises(agent.RuntimeNotFound, match="no TFLite runtime importable: no_such_runtime"):
        agent.load_runtime()
