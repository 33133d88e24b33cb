"""How long does the main job take, and does stopping accuracy early change any decision?

    python bench/first_answer.py            # about 9 minutes on a 2-core VM

Runs `edgebench run --device local --model mnist` four times, side by side in one go:
cold (an empty variant cache: every variant quantized, the reference computed) and warm, each with
today's defaults and with the behaviour before them (every accuracy sample, 1 s timed after 0.5 s of
warm-up per process, 50 runs: `--samples all --min-seconds 1 --warmup-seconds 0.5 --min-runs 50`).
It prints the wall times, the ratios, and each variant's accuracy decision (top-1 change within the
tolerance of float32, or not) from the early-stopped run beside the one on the full test set.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAIN_JOB = ["run", "--device", "local", "--model", "mnist", "--json"]
BEFORE = ["--samples", "all", "--min-seconds", "1", "--warmup-seconds", "0.5", "--min-runs", "50"]


def one_run(extra: list[str], cache: Path, results: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "edgebench", *MAIN_JOB, *extra, "--cache-dir", str(cache), "--results-dir",
         str(results)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return time.perf_counter() - started, json.loads(completed.stdout)


def decisions(document: dict) -> dict[str, tuple[bool, int, float]]:
    """variant -> (within the tolerance, samples evaluated, change in pp)."""
    tolerance = document["run"]["settings"]["accuracy_tolerance"]
    return {
        v["name"]: (round(v["top1_delta_pp"], 6) >= -tolerance, v["evaluated"], v["top1_delta_pp"])
        for v in document["variants"]
        if v["top1_delta_pp"] is not None
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        times, documents = {}, {}
        # Cold first (each with its own empty cache), then warm on the caches they filled; new before old.
        for label, extra, cache in (
            ("cold, today", [], root / "cache-today"),
            ("cold, before", BEFORE, root / "cache-before"),
            ("warm, today", [], root / "cache-today"),
            ("warm, before", BEFORE, root / "cache-before"),
        ):
            times[label], documents[label] = one_run(extra, cache, root / "results")
            print(f"{label:13} {times[label]:6.1f} s", flush=True)
    print()
    for kind in ("cold", "warm"):
        today, before = times[f"{kind}, today"], times[f"{kind}, before"]
        print(f"{kind}: {today:.1f} s today, {before:.1f} s before: {before / today:.1f}x faster")
    print()
    settled, full = decisions(documents["warm, today"]), decisions(documents["warm, before"])
    same = True
    print(f"{'variant':14} {'early-stopped':>24} {'full test set':>24}  decision")
    for name, (keeps, count, change) in settled.items():
        keeps_full, count_full, change_full = full[name]
        same &= keeps == keeps_full
        print(f"{name:14} {change:+6.2f} pp on {count:>6,} ({'keeps' if keeps else 'loses'}) "
              f"{change_full:+6.2f} pp on {count_full:>6,} ({'keeps' if keeps_full else 'loses'})  "
              f"{'same' if keeps == keeps_full else 'DIFFERENT'}")  # fmt: skip
    print(f"\nevery accuracy decision the same as on the full set: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
