"""The farm's nightly does not wake anyone for noise: each slower verdict is re-measured on its board first.

After every device has finished, each (device, model) with a latency verdict of slower gets an A/B
confirmation (run/confirm.py) on that device, one device after another's lease as usual. What it found
is kept in the run folders, so the summary, `farm check` and the report read it from there. A board
that cannot confirm (gone, files evicted) keeps its unconfirmed verdict and says why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from edgebench.compare.verdicts import compare_runs, parse_threshold
from edgebench.core.errors import EdgebenchError
from edgebench.farm.summary import FarmSummary, merged_run
from edgebench.history.lookup import baseline_data, noise_floors
from edgebench.run.confirm import ConfirmRequest, confirm_slowdowns, keep
from edgebench.run.runner import RunEvent


def confirm_farm(summary: FarmSummary, document: dict, results_dir: Path, *, pairs: int, devices_dir: Path | None,
                 cache_dir: Path | None, trust_new_host: bool, cancel: threading.Event,
                 on_event: Callable[[RunEvent], None], command: tuple[str, ...] = ()) -> list[str]:  # fmt: skip
    """Confirm every unconfirmed slower cell; returns one line per (device, model) that could not be confirmed."""
    wanted = sorted({(c.device, c.model) for c in summary.unconfirmed})
    problems = []
    threshold = parse_threshold(document.get("baseline", {}).get("threshold", "5%"))
    policy = document.get("baseline", {}).get("policy", "last")
    for device, model in wanted:
        if cancel.is_set():
            break
        runs = [r for r in document["devices"].get(device, {}).get("runs", []) if r["model"] == model]
        candidate, origin = merged_run(runs, results_dir)
        if candidate is None:
            continue
        try:
            baseline = baseline_data(policy, candidate, results_dir)
            floors = noise_floors(candidate, results_dir)
            comparison = compare_runs(baseline, candidate, threshold, floors)
            request = ConfirmRequest(comparison, baseline, candidate, threshold, floors, pairs, devices_dir=devices_dir,
                                     cache_dir=cache_dir, trust_new_host=trust_new_host, cancel=cancel,
                                     command=command)  # fmt: skip
            confirmations = confirm_slowdowns(request, on_event)
        except EdgebenchError as error:
            problems.append(f"{device} {model}: not confirmed ({error})")
            continue
        folders = {r["run_id"]: Path(results_dir) / r["folder"] for r in runs if r.get("folder")}
        for name, confirmation in confirmations.items():
            run_id = origin.get(name, (None, 1))[0]
            if run_id in folders:
                problem = keep(folders[run_id], {name: confirmation})
                if problem:
                    problems.append(f"{device} {model} {name}: {problem}")
    return problems
