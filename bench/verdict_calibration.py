"""How often does a nightly verdict cry wolf, and how often does it catch a real slowdown, on this machine?

    python bench/verdict_calibration.py measure --out pools.json [--processes 165]   # ~11 min
    python bench/verdict_calibration.py judge pools.json [--threshold 5%] [--pairs 10]

`measure` runs the agent in fresh processes, one after another, and keeps every document, in pools:
  quiet micro / quiet MNIST int8       nothing else of ours running (a micro MLP of a few µs, MNIST int8)
  busy micro / busy MNIST int8         another process spinning on the machine, not pinned
  throttled MNIST int8, busy 6% / 10%  a real slower device: a duty-cycled process (busy 6% or 10% of every
                                       millisecond) pinned to the agent's core, as thermal throttling
                                       takes time from the model; measured right after quiet MNIST int8
  file A / file B                      a real slower file: an MLP of 10 dense layers and the same with an
                                       11th, alternating A B A B ... (what an A/B confirmation measures)

`judge` replays nights from the pools with the shipped verdict code. A night is AUTO_ROUNDS consecutive
processes (the rounds a cheap model gets by default); each night is compared with the night before
(`--baseline last`), with the noise floor of the nights before that (none for the first five). A night
called slower is confirmed as `check --confirm` does, from the processes measured right after it in the
same pool: the same file again (A/A, throttled), or interleaved pairs of both files (file A/B). Nothing
differs in an A/A pair: a confirmed "slower" there is a false alarm. For the throttled pool the baseline
nights come from the quiet pool, the candidate and its confirmation from the throttled one.

It prints, per pool, the comparisons, one-shot false alarms/detections and confirmed ones, with the real
effect of each slowdown (the ratio of the pools' medians). Numbers come from this machine at this time.
The agent measures 0.3 s per process here (the shipped 1 s is steadier): the bench errs on the noisy side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgebench.agent import agent  # noqa: E402
from edgebench.compare.confirmation import judge_again, judge_pairs  # noqa: E402
from edgebench.compare.noise import WINDOW, noise_floor  # noqa: E402
from edgebench.compare.verdicts import compare_runs, parse_threshold, process_medians  # noqa: E402
from edgebench.core.settings import AUTO_ROUNDS, CONFIRM_PAIRS  # noqa: E402
from edgebench.quantize.variants import build_variants  # noqa: E402
from edgebench.results.record import RunRecord  # noqa: E402
from edgebench.results.store import Measurement, RunData  # noqa: E402
from edgebench.zoo import load_zoo_model  # noqa: E402
from tests.third_party_models import GraphBuilder  # noqa: E402

SECONDS = 0.3


def micro_model(folder: Path) -> Path:
    graph = GraphBuilder(seed=5)
    x = graph.input("features", (1, 16))
    graph.output(graph.dense(graph.dense(x, 16, "hidden", relu=True), 4, "out"))
    path = folder / "micro-mlp.tflite"
    path.write_bytes(graph.build(signature=True))
    return path


def layered_model(folder: Path, layers: int) -> Path:
    """Dense layers of 192 units: the 11-layer file costs about a tenth more than the 10-layer one."""
    graph = GraphBuilder(seed=7)
    x = graph.input("features", (1, 192))
    for index in range(layers):
        x = graph.dense(x, 192, f"dense{index}", relu=True)
    graph.output(graph.dense(x, 10, "out"))
    path = folder / f"mlp-{layers}.tflite"
    path.write_bytes(graph.build(signature=True))
    return path


def measure_one(model: Path, cpu: int) -> dict:
    argv = [sys.executable, agent.__file__, str(model), "--samples", "0", "--min-runs", "50",
            "--min-seconds", str(SECONDS), "--warmup-min-seconds", "0.1", "--cpus", str(cpu)]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    document = json.loads(result.stdout)
    if document["status"] != "ok":
        raise SystemExit(f"agent failed on {model}: {document.get('error')}")
    # Only what the verdicts read: the samples of a micro model would make the file huge.
    timing = document["timing"]
    return {
        "timing": {"stats": timing["stats"], "samples_us": timing["samples_us"][:20000]},
        "memory": document["memory"],
    }


def competitor(cpu: int | None, duty: float | None) -> subprocess.Popen:
    """A process spinning (duty None) or busy `duty` of every millisecond, pinned to `cpu` when given."""
    code = "import os, time\n"
    code += f"os.sched_setaffinity(0, {{{cpu}}})\n" if cpu is not None else ""
    if duty is None:
        code += "while True: pass\n"
    else:
        code += (f"while True:\n    end = time.perf_counter() + {duty / 1000}\n"
                 f"    while time.perf_counter() < end: pass\n    time.sleep({(1 - duty) / 1000})\n")  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", code])


def measure(args) -> int:
    cpu = min(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as folder:
        (int8,) = build_variants(load_zoo_model("mnist"), ["int8"])
        micro, file_a, file_b = (
            micro_model(Path(folder)),
            layered_model(Path(folder), 10),
            layered_model(Path(folder), 11),
        )
        pools: dict[str, list[dict]] = {}
        started = time.monotonic()

        def fill(name: str, models: list[Path], count: int, hog: tuple | None = None) -> None:
            process = competitor(*hog) if hog else None
            try:
                documents = pools.setdefault(name, [])
                for index in range(count):
                    documents.append(measure_one(models[index % len(models)], cpu))
            finally:
                if process:
                    process.kill()
                    process.wait()
            print(f"  {name}: {count} processes, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)

        n, kinds = args.processes, set(args.pools.split(","))
        if "quiet" in kinds:
            fill("quiet micro", [micro], n)
            fill("quiet MNIST int8", [int8.path], n)
        if "throttled" in kinds:
            for duty in map(float, args.duty.split(",")):
                fill(f"throttled MNIST int8, busy {duty:.0%}", [int8.path], n, (cpu, duty))
        if "busy" in kinds:
            fill("busy micro", [micro], n, (None, None))
            fill("busy MNIST int8", [int8.path], n, (None, None))
        if "file" in kinds:
            fill("file A B", [file_a, file_b], 2 * n)
    meta = {"machine": f"{platform.machine()}, {agent.cpu_model()}, {os.cpu_count()} CPUs", "processes": n,
            "seconds": SECONDS, "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    out = Path(args.out)
    if out.is_file() and kinds != {"quiet", "throttled", "busy", "file"}:
        pools = {**json.loads(out.read_text())["pools"], **pools}  # measured again: these pools replaced
    out.write_text(json.dumps({"meta": meta, "pools": pools}))
    print(f"wrote {args.out}")
    return 0


def as_run(run_id: str, documents: list[dict], sha: str = "v") -> RunData:
    record = {
        "run_id": run_id, "device": {"name": "this-machine"}, "model": {"name": "bench", "sha256": "m"},
        "settings": {"threads": 1, "delegate": "xnnpack", "cpus": []}, "rounds": len(documents),
        "variants": [{"name": "v", "sha256": sha}],
    }  # fmt: skip
    documents = [{"memory": {}, **d} for d in documents]
    return RunData(RunRecord(record), [Measurement("v", i + 1, "ok", d) for i, d in enumerate(documents)])


def nights(documents: list[dict]) -> list[list[dict]]:
    return [documents[i : i + AUTO_ROUNDS] for i in range(0, len(documents) - AUTO_ROUNDS + 1, AUTO_ROUNDS)]


def night_median(night: list[dict]) -> float:
    return statistics.median(process_medians(night))


def judge_aa(history: list[list[dict]], tonight: list[dict], after: list[dict], threshold: float, pairs: int):
    """One nightly verdict of `tonight` against the last of `history`, confirmed from `after` (the same file
    re-measured in fresh processes). Returns (one-shot slower, confirmed slower)."""
    floor = noise_floor([night_median(n) for n in history[:-1][-WINDOW:]])
    (one_shot,) = compare_runs(as_run("a", history[-1]), as_run("b", tonight), threshold, {"v": floor}).variants
    if not one_shot.suspected:
        return False, False
    key = one_shot.statistic  # the median, or the mean when stalls made it slower
    again = judge_again("v", "a", process_medians(after[:pairs], key), process_medians(history[-1], key), threshold,
                        floor)  # fmt: skip
    return one_shot.verdict == "slower", again.verdict == "slower"


def judge_pools(args) -> int:
    data = json.loads(Path(args.pools).read_text())
    pools, meta = data["pools"], data["meta"]
    threshold, pairs = parse_threshold(args.threshold), args.pairs
    print(f"machine: {meta['machine']}; {meta['processes']} processes per pool, {meta['seconds']} s each, "
          f"measured {meta['date']}")  # fmt: skip
    print(
        f"verdict: threshold {threshold:.0%}, {AUTO_ROUNDS} rounds a night, baseline the night before, "
        f"noise floor from up to {WINDOW} nights before it, confirmation {pairs} pairs / fresh processes"
    )
    print(f"{'pool':<22} {'effect':>7} {'nights':>6} {'one-shot slower':>16} {'confirmed slower':>17}")
    totals = {"aa": [0, 0], "real": {}}
    for name in ("quiet micro", "quiet MNIST int8", "busy micro", "busy MNIST int8"):
        docs = pools[name]
        all_nights = nights(docs)
        results = []
        for j in range(1, len(all_nights)):
            after = docs[(j + 1) * AUTO_ROUNDS :] or docs[:pairs]  # the last nights re-measure from the start
            after = (after + docs)[:pairs]
            results.append(judge_aa(all_nights[:j], all_nights[j], after, threshold, pairs))
        one = sum(r[0] for r in results)
        confirmed = sum(r[1] for r in results)
        totals["aa"][0] += len(results)
        totals["aa"][1] += confirmed
        print(f"{name:<22} {'A/A':>7} {len(results):>6} {one / len(results):>16.1%} {confirmed / len(results):>17.1%}")

    # A real slower device: quiet nights as history, throttled nights as tonight, re-measured throttled.
    for name in sorted(p for p in pools if p.startswith("throttled")):
        quiet, slow = pools["quiet MNIST int8"], pools[name]
        effect = statistics.median(process_medians(slow)) / statistics.median(process_medians(quiet))
        history, throttled = nights(quiet), nights(slow)
        results = []
        for j, tonight in enumerate(throttled):
            base = history[: max(1, len(history) - len(throttled) + j + 1)]  # a growing window of quiet history
            after = (slow[(j + 1) * AUTO_ROUNDS :] + slow)[:pairs]
            results.append(judge_aa(base, tonight, after, threshold, pairs))
        _print_real(name.replace("MNIST int8, ", ""), effect, results)

    # A real slower file: A and B alternate; nights of A are the history, a night of B tonight.
    alternating = pools["file A B"]
    a_docs, b_docs = alternating[0::2], alternating[1::2]
    effect = statistics.median(process_medians(b_docs)) / statistics.median(process_medians(a_docs))
    a_nights, b_nights = nights(a_docs), nights(b_docs)
    results = []
    for j in range(1, min(len(a_nights), len(b_nights)) - 1):
        history, tonight = a_nights[:j], b_nights[j]
        floor = noise_floor([night_median(n) for n in history[:-1][-WINDOW:]])
        (one_shot,) = compare_runs(as_run("a", history[-1]), as_run("b", tonight, "w"), threshold,
                                   {"v": floor}).variants  # fmt: skip
        if not one_shot.suspected:
            results.append((False, False))
            continue
        start = (j + 1) * AUTO_ROUNDS
        key = one_shot.statistic
        a_now = process_medians((a_docs[start:] + a_docs)[:pairs], key)
        b_now = process_medians((b_docs[start:] + b_docs)[:pairs], key)
        confirmed = judge_pairs("v", "a", a_now, b_now, process_medians(history[-1], key), threshold, floor)
        results.append(
            (
                one_shot.verdict == "slower",
                confirmed.verdict == "slower" and confirmed.cause.startswith("regression in"),
            )
        )
    _print_real("file B (11 layers)", effect, results)
    aa, false = totals["aa"]
    print(f"\nA/A: {false} confirmed false alarms in {aa} nightly comparisons ({false / aa:.1%}), quiet and busy")
    return 0


def _print_real(name: str, effect: float, results: list[tuple[bool, bool]]) -> None:
    one = sum(r[0] for r in results) / len(results)
    confirmed = sum(r[1] for r in results) / len(results)
    print(f"{name:<22} {(effect - 1) * 100:>+6.1f}% {len(results):>6} {one:>16.1%} {confirmed:>17.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    measuring = commands.add_parser("measure", help="run the agent in fresh processes and keep the pools")
    measuring.add_argument("--out", required=True)
    measuring.add_argument("--processes", type=int, default=165, help="fresh agent processes per pool (165)")
    measuring.add_argument(
        "--pools",
        default="quiet,throttled,busy,file",
        help="which pools to measure; others are kept from --out when it exists",
    )
    measuring.add_argument(
        "--duty",
        default="0.06,0.1",
        help="shares of every millisecond the throttling process is busy, a pool each (0.06,0.1)",
    )
    judging = commands.add_parser("judge", help="replay nightly verdicts from kept pools")
    judging.add_argument("pools")
    judging.add_argument("--threshold", default="5%")
    judging.add_argument("--pairs", type=int, default=CONFIRM_PAIRS)
    args = parser.parse_args()
    return measure(args) if args.command == "measure" else judge_pools(args)


if __name__ == "__main__":
    sys.exit(main())
