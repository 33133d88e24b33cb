"""Find runs: a folder, a run id, or a baseline chosen as 'last' or 'best'.

Baselines are chosen from the run folders themselves (the source of truth),
so a stale or missing history index never picks the wrong one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

from edgebench.compare.noise import WINDOW, NoiseFloor, noise_floor
from edgebench.compare.verdicts import comparability
from edgebench.core.errors import EdgebenchError
from edgebench.results.layout import is_run_folder, run_folders
from edgebench.results.record import RunRecord
from edgebench.results.store import Measurement, ResultsError, RunData, load


def resolve_run(spec: str, results_dir: Path) -> Path:
    path = Path(spec)
    if is_run_folder(path):
        return path
    matches = run_folders(results_dir, run_id=spec)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise EdgebenchError(f"no run {spec!r}: give a run folder, or a run id under {results_dir}")
    raise EdgebenchError(f"run id {spec!r} is ambiguous under {results_dir}: give its folder")


def latest_run(results_dir: Path) -> Path:
    runs = run_folders(results_dir)
    if not runs:
        raise EdgebenchError(f"no runs under {results_dir}")
    return runs[-1]


def baseline_data(spec: str, candidate: RunData, results_dir: Path) -> RunData:
    """The baseline to compare `candidate` with: one run, or with 'last:N' the N newest earlier comparable
    runs merged, each run's measurements becoming rounds, so the verdict sees night-to-night variation."""
    count = _last_count(spec)
    if count is None:
        return load(resolve_baseline(spec, candidate, results_dir))
    folders = _earlier_complete(candidate, results_dir)[-count:]
    if len(folders) < count:
        raise EdgebenchError(
            f"--baseline {spec}: only {len(folders)} earlier comparable run(s) of {candidate.record.model_name} "
            f"on {candidate.record.device_name} measured every variant of this one"
        )
    runs = [data for _, data in folders]
    measurements = []
    for variant in candidate.variants():
        documents = [document for run in runs for document in run.ok(variant)]
        measurements += [Measurement(variant, number, "ok", doc) for number, doc in enumerate(documents, 1)]
    newest = runs[-1].record
    record = RunRecord({**newest, "run_id": f"{runs[0].run_id}..{newest.run_id} ({count} runs)"})
    return RunData(record, measurements)


def check_policy(spec: str, results_dir: Path | None = None) -> None:
    """A baseline policy, checked before anything is measured: 'last', 'best', 'last:N', or a run id that exists
    under `results_dir` (with None, only that it could be one). A typo found after the whole night costs the
    night's verdict."""
    if spec in ("last", "best") or _last_count(spec) is not None:
        return
    if results_dir is None:
        if ":" in spec or not spec.strip():
            raise EdgebenchError(f"baseline {spec!r}: a policy is 'last', 'best', 'last:N' or a run id")
        return
    try:
        resolve_run(spec, results_dir)
    except EdgebenchError:
        raise EdgebenchError(f"baseline {spec!r} is neither a policy ('last', 'best', 'last:N') nor a run under "
                             f"{results_dir}") from None  # fmt: skip


def _last_count(spec: str) -> int | None:
    if not spec.startswith("last:"):
        return None
    try:
        count = int(spec.split(":", 1)[1])
    except ValueError:
        count = 0
    if count < 1:
        raise EdgebenchError(f"--baseline {spec}: last:N takes a number of runs, like last:5")
    return count


def resolve_baseline(spec: str, candidate: RunData, results_dir: Path) -> Path:
    """'last': the newest earlier comparable run of the same device and model; 'best': the fastest comparable one.

    Comparable: the same model file, runtime and settings (threads, delegate, pinning, stopping rules, accuracy
    samples, rounds), and every variant the candidate measured. A run of other settings is never a baseline:
    a first night after manual runs made with other settings has none, and says which runs it passed over."""
    if spec not in ("last", "best"):
        return resolve_run(spec, results_dir)
    device, model = candidate.record.device_name, candidate.record.model_name
    earlier = _earlier_runs(candidate, results_dir)
    if not earlier:
        raise EdgebenchError(f"no earlier run of {model} on {device} under {results_dir} to use as a baseline")
    complete = _complete(earlier, candidate)
    if not complete:
        raise EdgebenchError(
            f"no earlier run of {model} on {device} is comparable with run {candidate.run_id}; passed over "
            + "; ".join(passed_over(candidate, results_dir)[:3])
        )
    if spec == "last":
        return complete[-1][0]
    return min(complete, key=lambda item: _total_p50(item[1], candidate))[0]


def passed_over(candidate: RunData, results_dir: Path, baseline_id: str | None = None) -> list[str]:
    """Earlier runs of the candidate's device and model, newer than the baseline chosen (all without one), that
    were not taken as its baseline, newest first, each with why: 'run X (different minimum runs: 50 vs 64)'."""
    lines = []
    for _, data in _newest_earlier_runs(candidate, results_dir):
        if baseline_id and data.run_id <= baseline_id.split("..")[-1].split(" ")[0]:
            break
        reasons = why_not_comparable(data, candidate)
        if reasons:
            lines.append(f"run {data.run_id} ({'; '.join(reasons)})")
    return lines


def why_not_comparable(data: RunData, candidate: RunData) -> list[str]:
    """Why an earlier run cannot be the candidate's baseline: settings, files, or variants it did not measure."""
    reasons = list(comparability(data, candidate))
    missing = [name for name in candidate.variants() if candidate.ok(name) and not data.ok(name)]
    if missing:
        reasons.append(f"did not measure {', '.join(missing)}")
    return reasons


def _earlier_runs(candidate: RunData, results_dir: Path) -> list[tuple[Path, RunData]]:
    """Readable runs of the candidate's device and model that started before it, oldest first."""
    return list(reversed(list(_newest_earlier_runs(candidate, results_dir))))


def _newest_earlier_runs(candidate: RunData, results_dir: Path) -> Iterator[tuple[Path, RunData]]:
    """The same, newest first, each read only when the caller asks for it."""
    device, model = candidate.record.device_name, candidate.record.model_name
    for folder in reversed(run_folders(results_dir, device=device)):
        if folder.name >= candidate.run_id:
            continue
        try:
            data = load(folder)
        except ResultsError:
            continue  # a damaged run is skipped, never a crash of every later night
        if data.record.model_name == model and data.record.status in ("ok", "partial"):
            yield folder, data


def _complete(earlier: list[tuple[Path, RunData]], candidate: RunData) -> list[tuple[Path, RunData]]:
    wanted = [name for name in candidate.variants() if candidate.ok(name)]
    return [
        (folder, data) for folder, data in earlier
        if not comparability(data, candidate) and all(data.ok(name) for name in wanted)
    ]  # fmt: skip


def _earlier_complete(candidate: RunData, results_dir: Path) -> list[tuple[Path, RunData]]:
    return _complete(_earlier_runs(candidate, results_dir), candidate)


def _total_p50(run: RunData, candidate: RunData) -> float:
    total = 0.0
    for variant in candidate.variants():
        figure = run.latency(variant)
        total += figure.p50_us if figure else float("inf")
    return total


def noise_floors(candidate: RunData, results_dir: Path) -> dict[str, NoiseFloor]:
    """Each of the candidate's variants' noise floor, from the run-level medians of its newest earlier comparable
    nights on the same device (same model file, runtime, threads, delegate, pinning). Reads at most the runs it
    needs: the newest WINDOW comparable ones, not the whole history."""
    comparable = (
        data for _, data in _newest_earlier_runs(candidate, results_dir) if not comparability(data, candidate)
    )
    earlier = list(itertools.islice(comparable, WINDOW))[::-1]  # oldest first
    floors = {}
    for variant in candidate.variants():
        medians = [figure.p50_us for data in earlier if (figure := data.latency(variant)) is not None]
        floors[variant] = noise_floor(medians)
    return floors
