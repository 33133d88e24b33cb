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


@pytest.fixture(scope="module")
def pruned(mnist, variant_cache):
    from edgebench.quantize.variants import build_variants

    names = ["float32", "pruned-50", "pruned-90", "pruned-int8", "pruned-ft-80", "pruned-ft-80-int8",
             "pruned-80-sparse"]  # fmt: skip
    return {v.name: v for v in build_variants(mnist, names, cache_dir=variant_cache)}


def zero_shares_by_runtime(path, names):
    """Each named weight tensor's share of zero weights as the runtime holds it (int8: the stored value equal to
    the tensor's zero point), independently of the pruning and reading code."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    details = {d["name"]: d for d in interpreter.get_tensor_details()}
    shares = []
    for name in names:
        detail = details[name]
        zero = detail["quantization_parameters"]["zero_points"]
        zero = int(zero[0]) if len(zero) else 0
        shares.append(float(np.mean(interpreter.get_tensor(detail["index"]) == zero)))
    return shares


@pytest.mark.slow
def test_pruned_variants_carry_their_zeros_and_say_so(pruned):
    for name in ("pruned-90", "pruned-int8", "pruned-ft-80", "pruned-ft-80-int8"):
        variant = pruned[name]
        record = variant.sparsity
        assert record["target"] == {"pruned-90": 0.9}.get(name, 0.8)
        tensors = record["tensors"]
        assert [t["op"] for t in tensors] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED", "FULLY_CONNECTED"]
        assert [t["target"] for t in tensors] == [record["target"] * f for f in (0.5, 1, 1, 0.5)]
        by_runtime = zero_shares_by_runtime(variant.path, [t["name"] for t in tensors])
        for tensor, share in zip(tensors, by_runtime, strict=True):
            assert abs(share - tensor["zeros"] / tensor["elements"]) < 1e-9, name
            assert share >= tensor["target"] - 0.01, (name, tensor)  # int8 may round a few more to zero
            if name == "pruned-90":
                assert abs(share - tensor["target"]) <= 0.01  # the pruning itself: on target, ±1%
    assert pruned["pruned-int8"].weights.startswith("int8 ")
    assert pruned["float32"].sparsity is None and pruned["pruned-50"].sparsity["share"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.slow
def test_pruning_then_int8_is_over_ten_times_smaller_than_float32_once_both_are_gzipped(pruned):
    float32 = pruned["float32"].compressed
    assert float32["gzip"] == len(gzip.compress(pruned["float32"].path.read_bytes(), 9, mtime=0))
    for name in ("pruned-int8", "pruned-ft-80-int8"):
        assert float32["gzip"] / pruned[name].compressed["gzip"] > 10, name
        assert pruned[name].compressed["zstd"] < pruned["pruned-90"].compressed["zstd"]
    # Raw bytes do not move: the zeros are stored.
    assert abs(pruned["pruned-90"].size_bytes - pruned["float32"].size_bytes) < 1_000


def test_a_file_that_lost_its_zeros_is_not_called_pruned(mnist_variants):
    from edgebench.quantize.prune import measured_sparsity, sparsity_shortfall

    dense = measured_sparsity(mnist_variants["int8"].path)  # int8 of the dense model: as if a step densified it
    reason = sparsity_shortfall(dense, 0.8, exact=False)
    assert reason.startswith("not pruned to 80% as its name says: ") and "target 40%" in reason
    assert sparsity_shortfall(dense, 0.0, exact=False) is None


def test_a_float_model_without_prunable_layers_is_refused_by_name(tmp_path):
    from edgebench.quantize.prune import sparsity_shortfall

    assert sparsity_shortfall([], 0.5, exact=True).startswith("it has no prunable weights")


@pytest.mark.slow
def test_zeros_stored_densely_are_told_apart_from_the_sparse_format(pruned, tmp_path):
    from edgebench.quantize.prune import stored_sparse
    from edgebench.report.sizes import sparsity_notes
    from tests.third_party_models import write_model

    assert pruned["pruned-90"].sparsity["stored_sparse"] == 0
    zeros, dense = sparsity_notes([("pruned-90", pruned["pruned-90"].sparsity)])
    assert zeros.startswith("pruned-90: zeros per pruned weight tensor") and "FULLY_CONNECTED 90.0% (90%)" in zeros
    assert dense.startswith("pruned-90: latency is dense by construction")
    # A published detector whose weights are stored sparse behind DENSIFY (the converter's sparsity format).
    assert stored_sparse(write_model(tmp_path, "detector", sparse_weights=True)) == 11  # every float16 constant


@pytest.mark.slow
def test_the_sparse_format_stores_only_the_kept_weights_and_computes_the_same(pruned, mnist):
    from ai_edge_litert.interpreter import Interpreter

    from edgebench.model.dataset import load_dataset
    from edgebench.report.sizes import sparse_path_note

    sparse = pruned["pruned-80-sparse"]
    dense_path = next(p for p in sparse.path.parent.glob("pruned-80-*.tflite") if "sparse" not in p.name)
    assert sparse.sparsity["stored_sparse"] == 2  # the two middle layers; the edges (40%) stay dense
    # Read back through DENSIFY: the same zeros as the dense file it was made from.
    assert [t["zeros"] for t in sparse.sparsity["tensors"]] == [t.zeros for t in measured_sparsity(dense_path)]
    assert sparse.size_bytes < dense_path.stat().st_size / 3  # CSR: values and uint16 column indices only
    images = load_dataset(mnist.dataset_path).input_sets()[0][:4].astype(np.float32) / 255
    outputs = []
    for path in (dense_path, sparse.path):
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], images[:1].reshape(detail["shape"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
    assert np.array_equal(outputs[0], outputs[1])  # DENSIFY gives back exactly the pruned weights
    assert "no sign XNNPACK's sparse kernels ran" in sparse_path_note("s", "d", 1.01, emulated=False)
    assert "a sign XNNPACK's sparse kernels ran" in sparse_path_note("s", "d", 1.4, emulated=False)
    assert "no claim" in sparse_path_note("s", "d", 1.4, emulated=True)


def test_a_run_with_pruned_variants_fits_80_and_120_columns_with_its_compressed_sizes(monkeypatch, capfd):
    """The compact layouts of a pruned run trade raw size and memory (pruning moves neither) for the gzipped
    ratio and the zeros, and nothing is squeezed into '…'."""
    from edgebench.cli.render import emit
    from edgebench.compare.run_summary import RunSummaryView, VariantSummary
    from edgebench.report.run_table import fit

    float_zipped = {"gzip": 12_151_601, "zstd": 12_145_038}
    sparsity = {"target": 0.8, "share": 0.799, "stored_sparse": 0, "tensors": [
        {"name": "w", "op": "FULLY_CONNECTED", "elements": 100, "zeros": 80, "target": 0.8}]}  # fmt: skip

    def variant(name, size, zipped, **figures):
        return VariantSummary(
            name, "ok", size_bytes=size, size_ratio=13_101_984 / size, p50_ms=0.5, p90_ms=0.6, speedup=1.28,
            speedup_interval=(1.2, 1.35), rounds=3, peak_rss_mb=67.8, top1=0.9943, top1_delta_pp=0.0,
            top1_delta_interval=(-0.13, 0.13), evaluated=10_000, agreement=0.9979, sqnr_db=10.2, cosine=0.98,
            max_abs_error=16, fidelity_outputs=({"name": "logits"},), compressed={"gzip": zipped, "zstd": zipped},
            reference_compressed=float_zipped, **figures,
        )  # fmt: skip

    view = RunSummaryView(
        "local", False, "ai_edge_litert 2.3.0", "3.11.7", "2.4.6", 1, "AMD EPYC", "x86_64", (None, None),
        (variant("float32", 13_101_984, 12_151_601), variant("pruned-ft-80-int8", 3_309_008, 1_067_348,
                                                             sparsity=sparsity)),
    )  # fmt: skip
    for width in (80, 120):
        monkeypatch.setenv("COLUMNS", str(width))
        capfd.readouterr()
        emit("table", fit(view, "mnist on local", width), {}, width)
        lines = capfd.readouterr().out.splitlines()
        header = next(line for line in lines if line.lstrip().startswith("variant"))
        rows = [line for line in lines if line.startswith("pruned-ft-80-int8")]
        assert all(len(line) <= width for line in lines) and "…" not in "".join(lines), "\n".join(lines)
        assert "gz smaller" in header and "zeros" in header and "peak MB" not in header
        assert "11.38x" in rows[0] and "79.9%" in rows[0]
