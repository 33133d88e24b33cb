"""A float .tflite -> its named quantized variants, cached by content hash.

Quantization uses ai-edge-quantizer on the converted float model, so no
TensorFlow is needed at run time. Published models are first normalized into a
true float32 reference (normalize.py); every variant is built from it on its
own and then inspected: a file whose weights did not become what its name says
is never reported under that name. A variant that cannot be made is
`VariantSkipped` with the reason, and the others are still made.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgebench.core.errors import EdgebenchError, QuantizationError
from edgebench.core.fileio import atomic_copy, atomic_write_bytes, sha256_file, unwritable, where_unwritable
from edgebench.core.quiet import library_output_silenced
from edgebench.model.dataset import Dataset, load_dataset
from edgebench.model.runtime_issues import PER_CHANNEL_HYBRID
from edgebench.model.source import ModelSource
from edgebench.model.tflite_model import ModelInfo, inspect_model, require_float_weights
from edgebench.quantize.compressed import compressed_sizes
from edgebench.quantize.normalize import NormalizedModel, normalize_model

# Bump when the way a variant is built changes, so stale cache entries are not reused.
# 2: dynamic-int8 with per-tensor weight scales.
# 3: made from the normalized float32 reference (normalize.py).
# 4: dynamic-int8 with per-channel depthwise weights.
# 5: dynamic-int8 is the quantizer's own recipe (per channel); the 2.14-safe one is dynamic-int8-tensorwise.
# 6: pruned variants, and quantized variants made from another variant's file (base).
VARIANT_FORMAT_VERSION = 6


@dataclass(frozen=True)
class VariantSpec:
    name: str
    recipe: str  # what a person reads in the table
    source: str  # "original", "quantizer", "pruned", "sparse" (another variant's file stored sparse) or "prebuilt"
    needs_calibration: bool = False
    weight_dtype: str | None = None  # what the float32 weights must have become; None: stay float32
    on_request: bool = False  # not in the default set: made when asked for (--variants) or recommended
    prune: float | None = None  # the target sparsity its file must carry (prune.py's policy), read back
    base: str | None = None  # the variant whose file the quantizer starts from; None: the float32 reference
    quantize: str | None = None  # the quantizer recipe, when not named like the variant (pruned-int8: int8)

    @property
    def sparsity_target(self) -> float | None:
        """The sparsity this variant's file must show: its own, or that of the pruned file it was made from."""
        return self.prune if self.prune is not None else (VARIANT_SPECS[self.base].prune if self.base else None)


VARIANT_SPECS = {
    spec.name: spec
    for spec in (
        VariantSpec("float32", "the float model as given", "original"),
        VariantSpec("float16", "weight-only float16 (FLOAT_CASTING)", "quantizer", weight_dtype="float16"),
        VariantSpec(
            "dynamic-int8",
            f"{PER_CHANNEL_HYBRID}: int8 weights per channel, float activations (the quantizer's default)",
            "quantizer",
            weight_dtype="int8",
        ),
        VariantSpec(
            "dynamic-int8-tensorwise",
            "dynamic wi8/afp32 with per-tensor weights (per channel for depthwise): for tflite-runtime 2.14",
            "quantizer",
            weight_dtype="int8",
            on_request=True,
        ),
        VariantSpec("int8", "static_wi8_ai8: full integer, calibrated, int8 in/out", "quantizer", True, "int8"),
        VariantSpec("int16x8", "static_wi8_ai16: int16 activations, int8 weights", "quantizer", True, "int8"),
        VariantSpec(
            "int4-weights", "weight_only_wi4_afp32: int4 weights, float compute", "quantizer", weight_dtype="int4"
        ),
        VariantSpec(
            "qat-int8", "quantization-aware training (tfmot), shipped prebuilt", "prebuilt", weight_dtype="int8"
        ),
        # Pruning (prune.py), on request: three more float32-sized files would double the main job.
        *(
            VariantSpec(
                f"pruned-{percent}",
                f"magnitude pruning to {percent}% zeros, post-training (no fine-tuning); first and last layer at half",
                "pruned",
                on_request=True,
                prune=percent / 100,
            )
            for percent in (50, 80, 90)
        ),
        VariantSpec(
            "pruned-int8",
            "pruned-80, then static_wi8_ai8 (pruning + quantization, Deep Compression's first two steps)",
            "quantizer",
            True,
            "int8",
            on_request=True,
            base="pruned-80",
            quantize="int8",
        ),
        VariantSpec(
            "pruned-80-sparse",
            "pruned-80 with its pruned weights stored sparse (CSR behind DENSIFY, as the converter's "
            "EXPERIMENTAL_SPARSITY writes): smaller raw, and the form in which XNNPACK may take sparse kernels",
            "sparse",
            on_request=True,
            base="pruned-80",
        ),
        VariantSpec(
            "pruned-ft-80",
            "pruning to 80% while fine-tuning (tfmot prune_low_magnitude), shipped prebuilt",
            "prebuilt",
            on_request=True,
            prune=0.8,
        ),
        VariantSpec(
            "pruned-ft-80-int8",
            "pruned-ft-80, then static_wi8_ai8",
            "quantizer",
            True,
            "int8",
            on_request=True,
            base="pruned-ft-80",
            quantize="int8",
        ),
    )
}
VARIANT_NAMES = tuple(VARIANT_SPECS)
# A variant is reported under its name only when at least this share of the
# reference's float32 weight elements became its weight type; between this and
# PARTIAL_WARNING it is reported with a warning that it is partial.
MIN_CONVERTED_SHARE = 0.5
PARTIAL_WARNING = 0.9
# Calibration held out of a labelled data set when no calibration set is given.
HOLDOUT_MAX = 500
HOLDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class Variant:
    name: str
    path: Path
    size_bytes: int
    recipe: str
    sha256: str
    from_cache: bool
    weights: str = ""  # "int8 99.9%": what the weights became, checked in the file
    notes: tuple[str, ...] = ()  # how the file came to be, when it is not the obvious way
    calibration_holdout: int = 0  # samples at the end of the data set used for calibration, not for accuracy
    compressed: dict | None = None  # {"gzip": bytes, "zstd": bytes} (compressed.py)
    sparsity: dict | None = None  # pruned files: target, share of zeros, each tensor's (prune.sparsity_record)


@dataclass(frozen=True)
class VariantSkipped:
    """A variant that cannot be made for this model, with the reason in one line."""

    name: str
    reason: str


def default_cache_dir() -> Path:
    if "EDGEBENCH_CACHE_DIR" in os.environ:
        return Path(os.environ["EDGEBENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgebench" / "variants"


def parse_variant_names(text: str | Sequence[str] | None) -> list[str] | None:
    """'float32,int8' or a list -> validated names in the order given; None stays None (the default set)."""
    if text is None:
        return None
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in VARIANT_SPECS]
    if unknown or not names:
        raise EdgebenchError(
            f"unknown variant {', '.join(unknown) or '(none)'}; choose from {', '.join(VARIANT_NAMES)}"
        )
    return list(dict.fromkeys(names))


def default_variant_names(source: ModelSource) -> list[str]:
    """What to try for this model: everything, but quantization-aware training only where it ships prebuilt."""
    return [
        name
        for name in VARIANT_NAMES
        if not VARIANT_SPECS[name].on_request
        and (VARIANT_SPECS[name].source != "prebuilt" or name in source.prebuilt_variants)
    ]


def build_variants(
    source: ModelSource,
    names: Sequence[str] | None = None,
    *,
    cache_dir: Path | None = None,
    on_variant: Callable[[str], None] | None = None,
    original: ModelInfo | None = None,
) -> list[Variant | VariantSkipped]:
    """Every requested variant of `source` (None: the default set), from the cache when already built.

    A model that is not a float TFLite model fails as a whole (ModelError).
    Published models are first turned into a true float32 reference
    (normalize.py), and every variant is made from it and checked to be what
    its name says. One that cannot be made, or that the quantizer did not
    really convert, is skipped with the reason; with explicitly requested
    `names`, that is bad input and raises QuantizationError (exit 2) instead.
    """
    explicit = names is not None
    cache_dir = cache_dir or default_cache_dir()
    original = original or inspect_model(source.model_path)  # the caller may have parsed the file already
    require_float_weights(original)
    builder = _Builder(source, cache_dir, original)
    results: list[Variant | VariantSkipped] = []
    for name in names if explicit else default_variant_names(source):
        if on_variant:
            on_variant(name)
        try:
            results.append(builder.variant(name))
        except EdgebenchError as error:
            results.append(VariantSkipped(name, str(error)))
        except OSError as error:
            if unwritable(error):  # no variant can be kept: stop at the door, before any device work
                raise QuantizationError(
                    f"{where_unwritable(error, f'variant {name} into the cache')}; pass --cache-dir a writable "
                    "folder (a read-only cache serves only the variants already in it)"
                ) from None
            results.append(VariantSkipped(name, f"the quantizer failed: {type(error).__name__}: {error}"))
        except Exception as error:  # the quantizer raises anything; one variant must not sink the others
            results.append(
                VariantSkipped(name, " ".join(f"the quantizer failed: {type(error).__name__}: {error}".split()))
            )
        if explicit and isinstance(results[-1], VariantSkipped):
            raise QuantizationError(f"variant {name} cannot be made for {source.name}: {results[-1].reason}")
    return results


def float32_reference(source: ModelSource, cache_dir: Path | None = None) -> Path:
    """The true float32 model every variant of `source` is made from (and measured against)."""
    return _Builder(source, cache_dir or default_cache_dir()).normalized.reference


def export_variants(variants: Sequence[Variant], out_dir: Path, stem: str) -> list[Path]:
    """Copy variants to `out_dir` as <stem>-<variant>.tflite."""
    return [atomic_copy(v.path, Path(out_dir) / f"{stem}-{v.name}.tflite") for v in variants]


def verify_variant(spec: VariantSpec, reference: ModelInfo, variant: ModelInfo) -> tuple[str | None, float]:
    """Is this file what `spec` claims? (reason it is not, or None; share of the float weights converted).

    The share is of every float weight element of the reference (float32, and float16 or others where the
    reference could not be made plain float32), counting only the elements the variant added in its own
    weight type: weights that were already of that type in the reference were not converted by the variant.
    So it is never above 100%, and a file that converted a few layers is called partial, not 90%."""
    if spec.weight_dtype is None:
        return (None if variant.is_plain_float32 else "its weights are not plain float32"), 0.0
    if variant.path.read_bytes() == reference.path.read_bytes():
        return f"the quantizer returned the float32 model unchanged: no {spec.weight_dtype} weights", 0.0
    reference_float = reference.float_weight_elements
    added = variant.weight_elements.get(spec.weight_dtype, 0) - reference.weight_elements.get(spec.weight_dtype, 0)
    share = min(1.0, max(0, added) / reference_float) if reference_float else 0.0
    if share < MIN_CONVERTED_SHARE:
        left = ", ".join(f"{op} ({count:,})" for op, count in variant.float32_weight_consumers.most_common(3))
        return (
            f"only {share:.0%} of the float weights became {spec.weight_dtype}"
            + (f"; float32 weights remain in {left}" if left else ""),
            share,
        )
    return None, share


class _Builder:
    def __init__(self, source: ModelSource, cache_dir: Path, original: ModelInfo | None = None):
        self.source = source
        self.original = original  # the user's file, already parsed
        self.model_sha256 = sha256_file(source.model_path)
        self.cache_dir = cache_dir / self.model_sha256[:16]
        self.built: dict[str, Variant] = {}  # a base another variant is made from is built once

    def variant(self, name: str) -> Variant:
        if name not in self.built:
            self.built[name] = self.build(VARIANT_SPECS[name])
        return self.built[name]

    @functools.cached_property
    def normalized(self) -> NormalizedModel:
        return normalize_model(self.source.model_path, self.cache_dir)

    @functools.cached_property
    def reference_info(self) -> ModelInfo:
        if self.original is not None and self.normalized.reference == self.source.model_path:
            return self.original  # nothing was normalized: the same file, parsed once
        return inspect_model(self.normalized.reference)

    def build(self, spec: VariantSpec) -> Variant:
        notes: tuple[str, ...] = ()
        holdout = 0
        recipe = spec.recipe
        if spec.source == "original":
            path, from_cache, notes = self.normalized.reference, False, self.normalized.changes
            if path != self.source.model_path:  # not the user's file: say what it is, and what theirs weighs
                given = self.source.model_path.stat().st_size
                recipe = f"the float32 reference, normalized from the published file ({given:,} bytes)"
        elif spec.source == "prebuilt":
            path = self.source.prebuilt_variants.get(spec.name)
            if path is None:
                training = "pruning while fine-tuning" if spec.prune else "quantization-aware training"
                raise QuantizationError(f"{spec.name} needs {training}; only zoo models ship it prebuilt")
            from_cache = False
        elif spec.source == "pruned":
            from edgebench.quantize.prune import EDGE_SHARE, prune_model

            path = self.cache_dir / f"{spec.name}-{self._cache_key(spec, None, EDGE_SHARE)}.tflite"
            from_cache = path.is_file()
            if not from_cache:
                prune_model(self.normalized.quantizer_input, spec.prune, path)
        elif spec.source == "sparse":
            from edgebench.quantize.sparse_format import store_sparse

            base = self.variant(spec.base)
            path = self.cache_dir / f"{spec.name}-{self._cache_key(spec, None, base.sha256)}.tflite"
            from_cache = path.is_file()
            if not from_cache and not store_sparse(base.path, path):
                raise QuantizationError(f"no weight of {spec.base} has enough zeros to be stored sparse")
        else:
            base = self.variant(spec.base) if spec.base else None
            calibration = self._calibration if spec.needs_calibration else None
            key = self._cache_key(spec, calibration.dataset.sha256 if calibration else None, base and base.sha256)
            path = self.cache_dir / f"{spec.name}-{key}.tflite"
            from_cache = path.is_file()
            if not from_cache:
                start = base.path if base else self.normalized.quantizer_input
                atomic_write_bytes(path, self._quantize(spec, calibration, start))
            if calibration:
                notes, holdout = (calibration.note,), calibration.holdout
        info = inspect_model(path)  # the quantizer's output must itself be a valid model
        reason, share = verify_variant(spec, self.reference_info, info)
        sparsity = None
        if not reason and spec.sparsity_target is not None:
            reason, sparsity = _verified_sparsity(spec, path)
        if reason:
            raise QuantizationError(reason)
        sha256 = sha256_file(path)
        compressed = compressed_sizes(path, sha256, self.cache_dir)
        # Rounded down: 99.97% shows as 99.9%, never as a 100% it is not.
        weights = "float32" if spec.weight_dtype is None else f"{spec.weight_dtype} {math.floor(share * 1000) / 10}%"
        if spec.weight_dtype and share < PARTIAL_WARNING:
            notes += (f"partial: only {share:.0%} of the float weights became {spec.weight_dtype}",)
        return Variant(spec.name, path, path.stat().st_size, recipe, sha256, from_cache, weights, notes, holdout,
                       compressed, sparsity)  # fmt: skip

    @functools.cached_property
    def _calibration(self) -> Calibration:
        if self.source.calibration_path is not None:
            dataset = load_dataset(self.source.calibration_path, require_labels=False)
            return Calibration(dataset, f"calibrated on {dataset.path.name} ({dataset.count:,} samples)")
        if self.source.dataset_path is None:
            raise QuantizationError(
                "needs calibration data: pass --calibration data.npz, or --dataset data.npz to hold out a slice of it"
            )
        dataset = load_dataset(self.source.dataset_path, require_labels=False)
        holdout = min(HOLDOUT_MAX, int(dataset.count * HOLDOUT_FRACTION))
        if holdout < 1:
            raise QuantizationError(
                f"needs calibration data: {dataset.path.name} has too few samples ({dataset.count}) to hold out a "
                "calibration slice; pass --calibration data.npz"
            )
        note = (f"calibrated on the last {holdout:,} samples of {dataset.path.name}, held out: accuracy uses the "
                f"first {dataset.count - holdout:,}")  # fmt: skip
        return Calibration(dataset.tail(holdout), note, holdout)

    def _cache_key(self, spec: VariantSpec, calibration_sha256: str | None, made_from: object = None) -> str:
        from importlib.metadata import version

        identity = {
            "format": VARIANT_FORMAT_VERSION,
            "variant": spec.name,
            "quantizer": version("ai-edge-quantizer"),
            "calibration": calibration_sha256,
        }
        if made_from is not None:  # the base file's sha256, or the pruning policy: older keys stay as they were
            identity["from"] = made_from
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def _quantize(self, spec: VariantSpec, calibration: Calibration | None, start: Path) -> bytes:
        from ai_edge_quantizer import quantizer

        qt = quantizer.Quantizer(str(start))
        qt.load_quantization_recipe(_recipe(spec.quantize or spec.name))
        calibration_result = None
        # The calibrator draws a tqdm bar on stderr with no way to turn it off and
        # warns that its preserve-all-tensors interpreter is for debugging; both
        # are noise in the middle of our own progress display.
        with library_output_silenced(".*experimental_preserve_all_tensors"):
            if calibration is not None:
                samples = self._calibration_data(calibration.dataset)
                calibration_result = qt.calibrate(samples, num_threads=os.cpu_count() or 1)
            result = qt.quantize(calibration_result, enable_progress_bar=False, enable_progress_report=False)
        if not result.quantized_model:
            raise QuantizationError("the quantizer produced no model")
        return bytes(result.quantized_model)

    def _calibration_data(self, dataset: Dataset) -> dict:
        """{signature: [{input name: one sample shaped like the input}, ...]}, as the quantizer wants."""
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(self.normalized.quantizer_input))
        signatures = interpreter.get_signature_list()
        if len(signatures) != 1:
            raise QuantizationError(f"calibration supports models with one signature, this one has {len(signatures)}")
        key = next(iter(signatures))
        positions = {detail["index"]: position for position, detail in enumerate(interpreter.get_input_details())}
        details = interpreter.get_signature_runner(key).get_input_details()
        inputs = dataset.input_sets()
        if len(inputs) != len(positions):
            raise QuantizationError(f"the calibration set has {len(inputs)} input array(s), the model {len(positions)}")
        per_input = {}
        for name, detail in details.items():
            shape = tuple(detail["shape"])
            samples = inputs[positions[detail["index"]]]
            try:
                per_input[name] = [sample.reshape(shape) for sample in samples]
            except ValueError:
                raise QuantizationError(
                    f"calibration samples of shape {samples.shape[1:]} do not fit the model input {name} {shape}"
                ) from None
        return {key: [{name: per_input[name][i] for name in per_input} for i in range(dataset.count)]}


def _verified_sparsity(spec: VariantSpec, path: Path) -> tuple[str | None, dict | None]:
    """(why the file is not pruned as its name says, or None; what the run record keeps of its sparsity).
    A pruned file must be on its policy's targets; a file quantized from one must have kept the zeros."""
    from edgebench.quantize.prune import file_sparsity, sparsity_record, sparsity_shortfall

    found, stored = file_sparsity(path)
    reason = sparsity_shortfall(found, spec.sparsity_target, exact=spec.source == "pruned")
    if reason and spec.base:
        reason = f"{reason} ({spec.base}'s zeros did not survive quantization)"
    return reason, (None if reason else sparsity_record(found, spec.sparsity_target, stored))


@dataclass(frozen=True)
class Calibration:
    dataset: Dataset
    note: str
    holdout: int = 0


def _recipe(name: str):
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe, recipe_manager

    if name == "float16":
        manager = recipe_manager.RecipeManager()
        manager.add_weight_only_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
        )
        return manager.get_quantization_recipe()
    if name == "dynamic-int8":
        # The quantizer's own recipe, per-channel weights: 10-14 dB better than per-tensor on published models
        # under LiteRT (27.9 vs 13.4 dB on a landmark model). Where a runtime mishandles it, the run says so
        # (model/runtime_issues.py) and recommends dynamic-int8-tensorwise.
        return recipe.dynamic_wi8_afp32()
    if name == "dynamic-int8-tensorwise":
        # Per-tensor weight scales: the hybrid CONV_2D and FULLY_CONNECTED kernels of tflite-runtime 2.14
        # (what Raspberry Pi OS boards run) ignore per-channel scales and return wrong
        # classes (8% top-1 on MNIST; SQNR 11-18 dB on a depthwise model), while
        # per-tensor is as accurate and fast on LiteRT 2.3.
        # Except DEPTHWISE_CONV_2D: its per-tensor hybrid kernel is non-deterministic
        # on LiteRT 2.3, XNNPACK and builtin alike (two fresh interpreters differ by
        # up to 0.52 on the same input; SQNR -2 to 19 dB), and per-channel there is
        # exact and deterministic on both runtimes (50-51 dB on 2.3, 46-50 on 2.14).
        manager = recipe_manager.RecipeManager()
        for operation, granularity in (
            (qtyping.TFLOperationName.ALL_SUPPORTED, qtyping.QuantGranularity.TENSORWISE),
            (qtyping.TFLOperationName.DEPTHWISE_CONV_2D, qtyping.QuantGranularity.CHANNELWISE),
        ):
            manager.add_dynamic_config(regex=".*", operation_name=operation, num_bits=8, granularity=granularity)
        return manager.get_quantization_recipe()
    return {
        "int8": recipe.static_wi8_ai8,
        "int16x8": recipe.static_wi8_ai16,
        "int4-weights": recipe.weight_only_wi4_afp32,
    }[name]()


def cached_variant_file(sha256: str, model_sha256: str, cache_dir: Path | None = None) -> Path | None:
    """The variant file with this content that was built from the model with `model_sha256`, if the cache still
    holds it (an A/B confirmation measures a baseline's exact file, not a rebuilt one)."""
    folder = (cache_dir or default_cache_dir()) / model_sha256[:16]
    if not folder.is_dir():
        return None
    for path in sorted(folder.rglob("*.tflite")):
        if path.is_file() and sha256_file(path) == sha256:
            return path
    return None
