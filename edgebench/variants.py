"""A float .tflite -> its named quantized variants, cached by content hash.

Quantization uses ai-edge-quantizer on the converted float model, so no
TensorFlow is needed at run time. Each variant is built on its own: one that
fails becomes a `VariantFailure` and the others are still made.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgebench.dataset import Dataset, load_dataset
from edgebench.errors import EdgebenchError, QuantizationError
from edgebench.fileio import atomic_copy, atomic_write_bytes, sha256_file
from edgebench.quiet import native_stderr_silenced
from edgebench.tflite_model import inspect_model, require_float_weights
from edgebench.zoo import ModelSource

# Bump when the way a variant is built changes, so stale cache entries are not reused.
# 2: dynamic-int8 with per-tensor weight scales.
VARIANT_FORMAT_VERSION = 2


@dataclass(frozen=True)
class VariantSpec:
    name: str
    recipe: str  # what a person reads in the table
    source: str  # "original", "quantizer" or "prebuilt"
    needs_calibration: bool = False


VARIANT_SPECS = {
    spec.name: spec
    for spec in (
        VariantSpec("float32", "the float model as given", "original"),
        VariantSpec("float16", "weight-only float16 (FLOAT_CASTING)", "quantizer"),
        VariantSpec("dynamic-int8", "dynamic wi8/afp32, per-tensor: int8 weights, float activations", "quantizer"),
        VariantSpec("int8", "static_wi8_ai8: full integer, calibrated, int8 in/out", "quantizer", True),
        VariantSpec("int16x8", "static_wi8_ai16: int16 activations, int8 weights", "quantizer", True),
        VariantSpec("int4-weights", "weight_only_wi4_afp32: int4 weights, float compute", "quantizer"),
        VariantSpec("qat-int8", "quantization-aware training (tfmot), shipped prebuilt", "prebuilt"),
    )
}
VARIANT_NAMES = tuple(VARIANT_SPECS)


@dataclass(frozen=True)
class Variant:
    name: str
    path: Path
    size_bytes: int
    recipe: str
    sha256: str
    from_cache: bool


@dataclass(frozen=True)
class VariantFailure:
    name: str
    message: str


def default_cache_dir() -> Path:
    if "EDGEBENCH_CACHE_DIR" in os.environ:
        return Path(os.environ["EDGEBENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgebench" / "variants"


def parse_variant_names(text: str | Sequence[str] | None) -> list[str]:
    """'float32,int8' or a list -> validated names in the order given; None -> all."""
    if text is None:
        return list(VARIANT_NAMES)
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in VARIANT_SPECS]
    if unknown or not names:
        raise EdgebenchError(
            f"unknown variant {', '.join(unknown) or '(none)'}; choose from {', '.join(VARIANT_NAMES)}"
        )
    return list(dict.fromkeys(names))


def build_variants(
    source: ModelSource,
    names: Sequence[str] = VARIANT_NAMES,
    *,
    cache_dir: Path | None = None,
    on_variant: Callable[[str], None] | None = None,
) -> list[Variant | VariantFailure]:
    """Every requested variant of `source`, from the cache when already built.

    A model that is not a float TFLite model fails as a whole (ModelError);
    after that, a variant that cannot be made is reported and the rest go on.
    """
    require_float_weights(inspect_model(source.model_path))
    builder = _Builder(source, cache_dir or default_cache_dir())
    results: list[Variant | VariantFailure] = []
    for name in names:
        if on_variant:
            on_variant(name)
        try:
            results.append(builder.build(VARIANT_SPECS[name]))
        except EdgebenchError as error:
            results.append(VariantFailure(name, str(error)))
        except Exception as error:  # the quantizer raises anything; one variant must not sink the others
            message = " ".join(f"{type(error).__name__}: {error}".split())
            results.append(VariantFailure(name, message))
    return results


def export_variants(variants: Sequence[Variant], out_dir: Path, stem: str) -> list[Path]:
    """Copy variants to `out_dir` as <stem>-<variant>.tflite."""
    return [atomic_copy(v.path, Path(out_dir) / f"{stem}-{v.name}.tflite") for v in variants]


class _Builder:
    def __init__(self, source: ModelSource, cache_dir: Path):
        self.source = source
        self.model_sha256 = sha256_file(source.model_path)
        self.cache_dir = cache_dir / self.model_sha256[:16]

    def build(self, spec: VariantSpec) -> Variant:
        if spec.source == "original":
            return self._describe(spec, self.source.model_path, from_cache=False)
        if spec.source == "prebuilt":
            path = self.source.prebuilt_variants.get(spec.name)
            if path is None:
                raise QuantizationError(
                    f"{spec.name} needs quantization-aware training; only zoo models ship it prebuilt"
                )
            return self._describe(spec, path, from_cache=False)

        calibration_sha256 = self._calibration_sha256() if spec.needs_calibration else None
        path = self.cache_dir / f"{spec.name}-{self._cache_key(spec, calibration_sha256)}.tflite"
        if path.is_file():
            return self._describe(spec, path, from_cache=True)
        atomic_write_bytes(path, self._quantize(spec))
        inspect_model(path)  # the quantizer's output must itself be a valid model
        return self._describe(spec, path, from_cache=False)

    def _describe(self, spec: VariantSpec, path: Path, from_cache: bool) -> Variant:
        return Variant(spec.name, path, path.stat().st_size, spec.recipe, sha256_file(path), from_cache)

    @functools.cached_property
    def _calibration(self) -> Dataset:
        if self.source.calibration_path is None:
            raise QuantizationError("needs calibration data: pass --calibration data.npz (an 'x' array of samples)")
        return load_dataset(self.source.calibration_path, require_labels=False)

    def _calibration_sha256(self) -> str:
        return self._calibration.sha256

    def _cache_key(self, spec: VariantSpec, calibration_sha256: str | None) -> str:
        from importlib.metadata import version

        identity = {
            "format": VARIANT_FORMAT_VERSION,
            "variant": spec.name,
            "quantizer": version("ai-edge-quantizer"),
            "calibration": calibration_sha256,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def _quantize(self, spec: VariantSpec) -> bytes:
        from ai_edge_quantizer import quantizer

        qt = quantizer.Quantizer(str(self.source.model_path))
        qt.load_quantization_recipe(_recipe(spec.name))
        calibration_result = None
        # The calibrator draws a tqdm bar on stderr with no way to turn it off and
        # warns that its preserve-all-tensors interpreter is for debugging; both
        # are noise in the middle of our own progress display.
        with contextlib.redirect_stderr(io.StringIO()), native_stderr_silenced(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors", category=UserWarning)
            if spec.needs_calibration:
                calibration_result = qt.calibrate(self._calibration_data(), num_threads=os.cpu_count() or 1)
            result = qt.quantize(calibration_result, enable_progress_bar=False, enable_progress_report=False)
        if not result.quantized_model:
            raise QuantizationError("the quantizer produced no model")
        return bytes(result.quantized_model)

    def _calibration_data(self) -> dict:
        """{signature: [{input name: one sample shaped like the input}, ...]}, as the quantizer wants."""
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(self.source.model_path))
        signatures = interpreter.get_signature_list()
        if len(signatures) != 1:
            raise QuantizationError(f"calibration supports models with one signature, this one has {len(signatures)}")
        key, signature = next(iter(signatures.items()))
        if len(signature["inputs"]) != 1:
            raise QuantizationError("calibration supports single-input models")
        input_name = signature["inputs"][0]
        runner = interpreter.get_signature_runner(key)
        shape = tuple(runner.get_input_details()[input_name]["shape"])
        samples = self._calibration.model_inputs()
        try:
            return {key: [{input_name: sample.reshape(shape)} for sample in samples]}
        except ValueError:
            raise QuantizationError(
                f"calibration samples of shape {samples.shape[1:]} do not fit the model input {shape}"
            ) from None


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
        # Per-tensor weight scales, not the recipe's default per-channel ones: the
        # hybrid kernels of tflite-runtime 2.14 (what Raspberry Pi OS boards run)
        # ignore per-channel scales and return wrong classes (8% top-1 on MNIST),
        # while per-tensor gives the same accuracy and speed on LiteRT 2.3.
        manager = recipe_manager.RecipeManager()
        manager.add_dynamic_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=8,
            granularity=qtyping.QuantGranularity.TENSORWISE,
        )
        return manager.get_quantization_recipe()
    return {
        "int8": recipe.static_wi8_ai8,
        "int16x8": recipe.static_wi8_ai16,
        "int4-weights": recipe.weight_only_wi4_afp32,
    }[name]()
