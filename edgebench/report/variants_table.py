"""Rows of `edgebench quantize`: variant, bytes, size ratio, recipe, optional top-1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edgebench.accuracy.evaluate import Accuracy
from edgebench.quantize.compressed import gzip_ratio
from edgebench.quantize.variants import VARIANT_SPECS, Variant, VariantSkipped
from edgebench.report.sizes import compressed_cells, sparsity_notes, zeros_cell
from edgebench.report.table import Column, DataTable


def variants_table(
    model_name: str,
    results: Sequence[Variant | VariantSkipped],
    accuracies: Mapping[str, Accuracy] | None = None,
) -> DataTable:
    float_size = next((r.size_bytes for r in results if isinstance(r, Variant) and r.name == "float32"), None)
    float_compressed = next((r.compressed for r in results if isinstance(r, Variant) and r.name == "float32"), None)
    pruned = any(isinstance(r, Variant) and r.sparsity for r in results)
    float_accuracy = (accuracies or {}).get("float32")
    columns = [Column("variant", "left"), Column("bytes"), Column("smaller by"), Column("gzip -9"), Column("zstd")]
    columns += [Column("gzip smaller by"), Column("file"), Column("weights", "left")]
    columns += [Column("zeros")] if pruned else []
    columns += [Column("recipe", "left")]
    if accuracies is not None:
        columns += [Column("top-1"), Column("Δ pp")]
    rows, notes, skipped = [], [], []
    for result in results:
        if isinstance(result, VariantSkipped):
            skipped.append(
                (result.name, "—", "—", "—", "—", "—", "skipped", "—", *(("—",) if pruned else ()), "—")
                + (("—", "—") if accuracies is not None else ())
            )
            notes.append(f"{result.name} skipped: {result.reason}")
            continue
        ratio = f"{float_size / result.size_bytes:.2f}x" if float_size else "—"
        zipped = compressed_cells(result.compressed, gzip_ratio(result.compressed, float_compressed))
        row = (result.name, f"{result.size_bytes:,}", ratio, *zipped, _origin(result), result.weights,
               *((zeros_cell(result.sparsity),) if pruned else ()), result.recipe)  # fmt: skip
        if accuracies is not None:
            row += _accuracy_cells(accuracies.get(result.name), float_accuracy)
        rows.append(row)
        notes.extend(f"{result.name}: {note}" for note in result.notes)
    rows += skipped  # what could not be made comes after what was
    notes += sparsity_notes([(r.name, r.sparsity) for r in results if isinstance(r, Variant) and r.sparsity])
    if accuracies is not None and float_accuracy is not None:
        notes.insert(0, f"top-1 on {float_accuracy.total:,} evaluation samples (ai_edge_litert on this host)")
    return DataTable(f"Variants of {model_name}", tuple(columns), tuple(rows), tuple(notes))


def _origin(variant: Variant) -> str:
    spec = VARIANT_SPECS[variant.name]
    if spec.source != "quantizer":
        return spec.source
    return "cached" if variant.from_cache else "quantized"


def _accuracy_cells(accuracy: Accuracy | None, reference: Accuracy | None) -> tuple[str, str]:
    if accuracy is None:
        return ("—", "—")
    delta = "—" if reference is None else f"{(accuracy.top1 - reference.top1) * 100:+.2f}"
    return (f"{accuracy.top1:.4f}", delta)
