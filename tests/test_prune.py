"""Post-training magnitude pruning: the sparsity each weight tensor reaches, counted independently of the
pruning code (the runtime's own view of the weights), and the bytes it saves once compressed."""

import gzip

import numpy as np
import pytest

from edgebench.quantize.prune import measured_sparsity, prune_model


@pytest.mark.parametrize("target", [0.5, 0.9])
def test_a_pruned_model_has_its_target_share_of_zeros_in_every_pruned_tensor(mnist, tmp_path, target):
    from ai_edge_litert.interpreter import Interpreter

    out = tmp_path / f"pruned-{int(target * 100)}.tflite"
    reached = prune_model(mnist.model_path, target, out)
    assert [r.operator for r in reached] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    # Counted by the runtime: the weight tensors as the interpreter holds them.
    interpreter = Interpreter(model_path=str(out))
    interpreter.allocate_tensors()
    by_name = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    shares = [float(np.mean(interpreter.get_tensor(by_name[r.name]) == 0)) for r in reached]
    middle, edges = shares[1:-1], [shares[0], shares[-1]]
    assert all(abs(s - target) <= 0.01 for s in middle), shares  # the policy's target, ±1%
    assert all(abs(s - target / 2) <= 0.01 for s in edges), shares  # first and last layer: half of it
    assert [round(m.sparsity, 4) for m in measured_sparsity(out)] == [round(s, 4) for s in shares]
    assert len(gzip.compress(out.read_bytes(), 9)) < len(gzip.compress(mnist.model_path.read_bytes(), 9)) * (
        1 - target * 0.8
    )  # zeros compress: what pruning buys on disk
