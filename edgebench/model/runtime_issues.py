"""Known ways a runtime computes a valid variant wrongly: what a measurement on that runtime must say.

Kept as data, each with the evidence, so a figure is labelled where it is shown (run table, report, farm),
not left for the user to discover.
"""

from __future__ import annotations

# The recipe text of variants whose hybrid kernels read per-channel weight scales (quantize/variants.py).
PER_CHANNEL_HYBRID = "dynamic_wi8_afp32"


def runtime_issue(recipe: str | None, runtime: dict | None) -> str | None:
    """Why this variant's figures on this runtime are wrong, with what to measure instead; None when fine.

    tflite-runtime (its last release is 2.14): the hybrid CONV_2D and FULLY_CONNECTED kernels ignore
    per-channel weight scales. MNIST dynamic-int8 per channel: top-1 8.0% there, 99.8% on tensorflow 2.21
    and ai-edge-litert 2.3 (measured with the agent on 500 test images)."""
    if not recipe or not runtime or PER_CHANNEL_HYBRID not in recipe:
        return None
    if runtime.get("name") == "tflite_runtime":
        return (f"tflite_runtime {runtime.get('version', '?')} ignores per-channel weight scales in its hybrid "
                "kernels: these accuracy and fidelity figures are wrong; measure dynamic-int8-tensorwise on this "
                "runtime")  # fmt: skip
    return None
