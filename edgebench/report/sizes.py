"""Compressed sizes and pruned sparsity as table cells and notes, for the run table and the quantize table."""

from __future__ import annotations


def compressed_cells(compressed: dict | None, ratio: float | None) -> tuple[str, str, str]:
    """(gzip -9 bytes, zstd bytes, how much smaller than float32 gzipped): pruning's zeros only pay once
    compressed, so the ratio that matters on disk and over the air is gzip's against float32's gzip."""
    if not compressed:
        return ("—", "—", "—")
    return (f"{compressed['gzip']:,}", f"{compressed['zstd']:,}", f"{ratio:.2f}x" if ratio else "—")


def zeros_cell(sparsity: dict | None) -> str:
    """The share of zeros over all pruned weights, as read back from the file; '—' for a file not pruned."""
    return f"{sparsity['share']:.1%}" if sparsity else "—"


LISTED_TENSORS = 6  # more pruned tensors than this are summarized per target


def _tensor_shares(tensors: list[dict]) -> str:
    """'CONV_2D 45.0% (45%), ...' for a few tensors; for many, per target: '2 at 40.0-40.3% (40%), 26 at
    79.7-80.6% (80%)'."""
    shares = [(t["op"], t["zeros"] / t["elements"], t["target"]) for t in tensors]
    if len(shares) <= LISTED_TENSORS:
        return ", ".join(f"{op} {share:.1%} ({target:.0%})" for op, share, target in shares)
    by_target: dict[float, list[float]] = {}
    for _, share, target in shares:
        by_target.setdefault(target, []).append(share)
    return f"{len(shares)} tensors: " + ", ".join(
        f"{len(found)} at {_span(found)} ({target:.0%})" for target, found in by_target.items()
    )


def _span(shares: list[float]) -> str:
    low, high = f"{min(shares):.1%}", f"{max(shares):.1%}"
    return low if low == high else f"{low}–{high}"


def sparsity_notes(files: list[tuple[str, dict]]) -> list[str]:
    """Notes for the pruned files of a table, [(variant, sparsity record)]: each tensor's zeros beside its own
    target (the first and last layer are pruned less), one line for the variants that share them, then which
    files store nothing in the sparse format: their latency is dense by construction."""
    groups: dict[str, list[str]] = {}
    for name, sparsity in files:
        groups.setdefault(_tensor_shares(sparsity["tensors"]), []).append(name)
    notes = [f"{', '.join(names)}: zeros per pruned weight tensor in execution order, read from the file (target): "
             f"{tensors}" for tensors, names in groups.items()]  # fmt: skip
    dense = [name for name, sparsity in files if not sparsity.get("stored_sparse")]
    if dense:
        notes.append(f"{', '.join(dense)}: latency is dense by construction: no tensor is stored in the sparse "
                     "format, the only way a TFLite runtime reaches a sparse kernel, so the zeros are multiplied "
                     "like any weight")  # fmt: skip
    for name, sparsity in files:
        if sparsity.get("stored_sparse"):
            notes.append(f"{name}: {sparsity['stored_sparse']} tensor(s) stored in the sparse format (DENSIFY): "
                         "XNNPACK is asked for its sparse kernels, which it takes only for some convolution "
                         "patterns")  # fmt: skip
    return notes


SPARSE_SIGN = 0.05  # a sparse file this much faster than its dense twin is a sign the sparse kernels ran


def sparse_path_note(name: str, dense_name: str, ratio: float | None, emulated: bool) -> str:
    """Whether the sparse kernels ran, from what can be measured: XNNPACK says nothing of it, so the sparse
    file's speed against the same weights stored dense, measured in the same run. `ratio`: the sparse file's
    speed over the dense one's (None: the dense twin was not measured)."""
    if ratio is None:
        return f"{name}: whether sparse kernels ran shows beside {dense_name} (the same weights dense): measure both"
    if emulated:
        return f"{name}: {ratio:.2f}x {dense_name}'s speed on an emulator: no claim about sparse kernels"
    if ratio >= 1 + SPARSE_SIGN:
        return (f"{name}: {ratio:.2f}x {dense_name}'s speed (the same weights dense): a sign XNNPACK's sparse "
                "kernels ran")  # fmt: skip
    return (
        f"{name}: {ratio:.2f}x {dense_name}'s speed (the same weights dense): no sign XNNPACK's sparse kernels "
        "ran (its sparse path covers some convolution patterns only, mostly MobileNet's 1x1 on RGB input)"
    )
