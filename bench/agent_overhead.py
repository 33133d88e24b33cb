"""How much does the agent itself add to the latency it reports?

    python bench/agent_overhead.py [--rounds 7] [--variants float32,int8] [--runs 300]

For each variant, in interleaved rounds (agent, bare, agent, bare, ...), it
runs in a fresh process:
  - the agent, with warm-up and measured run counts fixed to --runs;
  - a bare loop: load the same model the same way, set the same input,
    warm up the same number of runs, then time `invoke()` --runs times;
and prints the median over rounds of agent p50 / bare p50. The goal is a ratio
within 2% of 1.00: the agent's bookkeeping happens outside its clock.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from edgebench.agent import agent
from edgebench.quantize.variants import build_variants, parse_variant_names
from edgebench.zoo import load_zoo_model

BARE_LOOP = r"""
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
model, dataset, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
import agent  # only for the same input bytes: quantize_input and model_inputs
interpreter = Interpreter(model_path=model, num_threads=1)
interpreter.allocate_tensors()
detail = interpreter.get_input_details()[0]
sample = agent.model_inputs(agent.load_npz(dataset), 0, 1).reshape(detail["shape"])
interpreter.set_tensor(detail["index"], agent.quantize_input(sample, detail))
for _ in range(runs):
    interpreter.invoke()
samples = []
for _ in range(runs):
    start = time.perf_counter_ns()
    interpreter.invoke()
    samples.append((time.perf_counter_ns() - start) / 1000.0)
print(json.dumps({"p50": float(np.percentile(samples, 50))}))
"""


def agent_p50(model: Path, dataset: Path, runs: int) -> float:
    argv = [sys.executable, agent.__file__, str(model), "--dataset", str(dataset), "--samples", "0"]
    argv += ["--threads", "1", "--warmup-min-runs", str(runs), "--warmup-min-seconds", "0"]
    argv += ["--min-runs", str(runs), "--min-seconds", "0"]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(output)["timing"]["stats"]["p50"]


def bare_p50(model: Path, dataset: Path, runs: int) -> float:
    argv = [sys.executable, "-c", BARE_LOOP, str(model), str(dataset), str(runs), str(Path(agent.__file__).parent)]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)["p50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--variants", default="float32,int8")
    args = parser.parse_args()

    source = load_zoo_model("mnist")
    variants = build_variants(source, parse_variant_names(args.variants))
    print(f"{'variant':<14}{'agent p50 µs':>14}{'bare p50 µs':>14}{'ratio':>9}   per-round ratios")
    for variant in variants:
        ratios, agent_values, bare_values = [], [], []
        for _ in range(args.rounds):
            a = agent_p50(variant.path, source.dataset_path, args.runs)
            b = bare_p50(variant.path, source.dataset_path, args.runs)
            agent_values.append(a)
            bare_values.append(b)
            ratios.append(a / b)
        print(
            f"{variant.name:<14}{statistics.median(agent_values):>14.1f}{statistics.median(bare_values):>14.1f}"
            f"{statistics.median(ratios):>9.3f}   " + " ".join(f"{r:.3f}" for r in ratios)
        )


if __name__ == "__main__":
    main()
