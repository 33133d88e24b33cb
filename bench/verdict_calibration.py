"""How often does `compare` cry wolf, and how often does it catch a real slowdown, on this machine?

    python bench/verdict_calibration.py [--documents 120] [--rounds 3] [--threshold 5%] [--cpus 1]

1. Runs the agent in fresh processes, `--documents` times per model, alternating a micro
   model (a tiny MLP, a few µs per inference) and the MNIST int8 zoo variant (~0.5 ms), so
   both see the same drift of the machine.
2. Groups consecutive documents into runs of `--rounds` rounds (and of 1 round), and pairs
   runs measured close in time (each with the next five), as a nightly compares tonight with
   last night. Nothing differs between the two runs of a pair: any "slower" is a false alarm.
3. Detection: the candidate of each pair is slowed by an exact factor (every recorded sample
   multiplied by 1.05, 1.10, 1.20; real samples, known effect) and judged again.

It prints, per model and round count, the false-alarm rate ("slower" on A/A pairs; "faster"
is shown apart, it pages nobody) and the detection rates, with the number of comparisons.
Numbers come from this machine at this time: a shared VM drifts between processes far more
than a pinned board with a fixed governor.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgebench.agent import agent  # noqa: E402
from edgebench.compare.verdicts import compare_runs, parse_threshold  # noqa: E402
from edgebench.quantize.variants import build_variants  # noqa: E402
from edgebench.results.record import RunRecord  # noqa: E402
from edgebench.results.store import Measurement, RunData  # noqa: E402
from edgebench.zoo import load_zoo_model  # noqa: E402
from tests.third_party_models import GraphBuilder  # noqa: E402

EFFECTS = (0.05, 0.10, 0.20, 0.30, 0.50, 1.00)
THRESHOLDS = (0.05, 0.10, 0.20, 0.30)
NEIGHBOURS = 5


def micro_model(folder: Path) -> Path:
    graph = GraphBuilder(seed=5)
    x = graph.input("features", (1, 16))
    graph.output(graph.dense(graph.dense(x, 16, "hidden", relu=True), 4, "out"))
    path = folder / "micro-mlp.tflite"
    path.write_bytes(graph.build(signature=True))
    return path


def measure(model: Path, runs: int, seconds: float, cpus: str | None) -> dict:
    argv = [sys.executable, agent.__file__, str(model), "--samples", "0", "--min-runs", str(runs),
            "--min-seconds", str(seconds), "--warmup-min-seconds", "0.1"]  # fmt: skip
    argv += ["--cpus", cpus] if cpus else []
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    document = json.loads(result.stdout)
    if document["status"] != "ok":
        raise SystemExit(f"agent failed on {model}: {document.get('error')}")
    return document


def as_run(run_id: str, documents: list[dict]) -> RunData:
    summary = {
        "run_id": run_id, "device": {"name": "this-machine"}, "model": {"name": "bench", "sha256": "m"},
        "settings": {"threads": 1, "delegate": "xnnpack", "cpus": []}, "rounds": len(documents),
        "variants": [{"name": "v", "sha256": "v"}],
    }  # fmt: skip
    return RunData(RunRecord(summary), [Measurement("v", i + 1, "ok", d) for i, d in enumerate(documents)])


def slowed(document: dict, factor: float) -> dict:
    samples = [s * factor for s in document["timing"]["samples_us"]]
    return {**document, "timing": {**document["timing"], "samples_us": samples, "stats": agent.summarize(samples)}}


def judge(documents: list[dict], rounds: int, threshold: float, last: int = 1) -> dict:
    """Every candidate run against the run before it and its neighbours (last=1), or against the
    `last` runs before it merged as one baseline, as `--baseline last:N` does."""
    runs = [documents[i : i + rounds] for i in range(0, len(documents) - rounds + 1, rounds)]
    if last == 1:
        pairs = [([i], j) for i in range(len(runs)) for j in range(i + 1, min(i + 1 + NEIGHBOURS, len(runs)))]
    else:
        pairs = [(list(range(j - last, j)), j) for j in range(last, len(runs))]
    verdicts = {"slower": 0, "faster": 0}
    detected = dict.fromkeys(EFFECTS, 0)
    slowed_runs = {(j, e): [slowed(d, 1 + e) for d in runs[j]] for j in {j for _, j in pairs} for e in EFFECTS}
    for baseline, j in pairs:
        a = as_run("a", [document for i in baseline for document in runs[i]])
        (aa,) = compare_runs(a, as_run(f"b{j}", runs[j]), threshold).variants
        if aa.verdict in verdicts:
            verdicts[aa.verdict] += 1
        for effect in EFFECTS:
            b = as_run(f"b{j}", slowed_runs[(j, effect)])
            (ab,) = compare_runs(a, b, threshold).variants
            detected[effect] += ab.verdict == "slower"
    count = len(pairs)
    return {"pairs": count, "false_alarms": verdicts["slower"] / count, "faster": verdicts["faster"] / count,
            "detected": {effect: detected[effect] / count for effect in EFFECTS}}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=120, help="agent runs per model (fresh processes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threshold", default="5%")
    parser.add_argument("--cpus", help="pin every agent to these CPUs, as a farm board would (e.g. 1)")
    args = parser.parse_args()
    args_threshold = parse_threshold(args.threshold)

    with tempfile.TemporaryDirectory() as folder:
        mnist = load_zoo_model("mnist")
        (int8,) = build_variants(mnist, ["int8"])
        # (runs, seconds): a few thousand samples each; a µs model left to run 0.3 s gives 200,000,
        # which a nightly compares once but this bench would compare thousands of times.
        models = {"micro MLP": (micro_model(Path(folder)), 5000, 0.01), "MNIST int8": (int8.path, 500, 0.3)}
        documents: dict[str, list[dict]] = {name: [] for name in models}
        for index in range(args.documents):
            for name, (path, runs, seconds) in models.items():
                documents[name].append(measure(path, runs, seconds, args.cpus))
            if (index + 1) % 20 == 0:
                print(f"  measured {index + 1}/{args.documents} per model", file=sys.stderr, flush=True)

    pinned = f", agents pinned to CPU {args.cpus}" if args.cpus else ", agents not pinned"
    print(
        f"machine: {platform.machine()}, {agent.cpu_model()}, {len(documents['micro MLP'])} documents per model{pinned}"
    )
    effects = " ".join(f"{'det ' + format(e, '.0%'):>8}" for e in EFFECTS)
    header = f"{'model':<11} {'p50 µs':>8} {'rounds':>6} {'baseline':>8} {'thresh':>6} {'pairs':>5} {'false':>6}"
    print(f"{header} {'faster':>6} {effects}")
    best: dict[tuple, str] = {}
    modes = [(rounds, last) for rounds in (1, args.rounds) for last in (1, 5)]
    for name, docs in documents.items():
        p50 = sorted(d["timing"]["stats"]["p50"] for d in docs)[len(docs) // 2]
        for rounds, last in modes:
            for threshold in sorted({*THRESHOLDS, args_threshold}):
                r = judge(docs, rounds, threshold, last)
                cells = " ".join(f"{r['detected'][e]:>8.0%}" for e in EFFECTS)
                baseline = "last" if last == 1 else f"last:{last}"
                print(f"{name:<11} {p50:>8.1f} {rounds:>6} {baseline:>8} {threshold:>6.0%} {r['pairs']:>5} "
                      f"{r['false_alarms']:>6.1%} {r['faster']:>6.1%} {cells}", flush=True)  # fmt: skip
                caught = [e for e in EFFECTS if r["detected"][e] >= 0.95]
                if r["false_alarms"] <= 0.01 and caught and (name, rounds, last) not in best:
                    best[(name, rounds, last)] = (
                        f"threshold {threshold:.0%}: false alarms {r['false_alarms']:.1%}, "
                        f"smallest effect detected >= 95%: {min(caught):.0%}"
                    )
    print()
    for name in documents:
        for rounds, last in modes:
            found = best.get((name, rounds, last), "no threshold tried keeps false alarms <= 1% and detects an effect")
            print(f"{name}, --rounds {rounds}, --baseline {'last' if last == 1 else f'last:{last}'}: {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
