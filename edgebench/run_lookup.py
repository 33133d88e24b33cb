"""Find runs: a folder, a run id, or a baseline chosen as 'last' or 'best'.

Baselines are chosen from the run folders themselves (the source of truth),
so a stale or missing history index never picks the wrong one.
"""

from __future__ import annotations

from pathlib import Path

from edgebench.compare import comparability
from edgebench.errors import EdgebenchError
from edgebench.results import ResultsError, RunData, load


def resolve_run(spec: str, results_dir: Path) -> Path:
    path = Path(spec)
    if (path / "run.json").is_file():
        return path
    matches = sorted(Path(results_dir).glob(f"*/{spec}/run.json"))
    if len(matches) == 1:
        return matches[0].parent
    if not matches:
        raise EdgebenchError(f"no run {spec!r}: give a run folder, or a run id under {results_dir}")
    raise EdgebenchError(f"run id {spec!r} is ambiguous under {results_dir}: give its folder")


def latest_run(results_dir: Path) -> Path:
    runs = sorted(Path(results_dir).glob("*/*/run.json"), key=lambda p: p.parent.name)
    if not runs:
        raise EdgebenchError(f"no runs under {results_dir}")
    return runs[-1].parent


def resolve_baseline(spec: str, candidate: RunData, results_dir: Path) -> Path:
    """'last': the newest earlier run of the same device and model; 'best': the fastest comparable one."""
    if spec not in ("last", "best"):
        return resolve_run(spec, results_dir)
    device, model = candidate.summary["device"]["name"], candidate.summary["model"]["name"]
    earlier = []
    for run_file in sorted(Path(results_dir).glob(f"{device}/*/run.json"), key=lambda p: p.parent.name):
        if run_file.parent.name >= candidate.run_id:
            continue
        try:
            data = load(run_file.parent)
        except ResultsError:
            continue
        if data.summary["model"]["name"] == model and data.summary["status"] in ("ok", "partial"):
            earlier.append((run_file.parent, data))
    if not earlier:
        raise EdgebenchError(f"no earlier run of {model} on {device} under {results_dir} to use as a baseline")
    # Baselines come from comparable runs that measured every variant the candidate did: a run
    # lacking one would skip it silently. Failing that, the newest earlier run, whose comparison
    # then says what is not comparable (exit 2) instead of hiding it.
    wanted = [name for name in candidate.variants() if candidate.ok(name)]
    complete = [
        (folder, data) for folder, data in earlier
        if not comparability(data, candidate) and all(data.ok(name) for name in wanted)
    ]  # fmt: skip
    if spec == "last":
        return (complete or earlier)[-1][0]
    if not complete:
        raise EdgebenchError(
            f"no earlier run of {model} on {device} has the same model file, runtime, threads and delegate "
            "and measured every variant of this one"
        )
    return min(complete, key=lambda item: _total_p50(item[1], candidate))[0]


def _total_p50(run: RunData, candidate: RunData) -> float:
    total = 0.0
    for variant in candidate.variants():
        figure = run.latency(variant)
        total += figure.p50_us if figure else float("inf")
    return total
