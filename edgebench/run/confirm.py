"""Re-measure a suspected slowdown at once on the same device before anyone is woken (an A/B confirmation).

For each variant a comparison calls slower, the baseline's exact variant file and tonight's (both
found in the variant cache by sha256) are measured in fresh agent processes on the candidate's
device, with the candidate's settings: interleaved A B A B ... when the files differ, the one file
again and again when they do not. The runner does the measuring (lease, health, one agent at a time,
deadlines); compare/confirmation.py judges what it measured. The agent documents go to a scratch
folder: a confirmation is not a night and must never become a baseline. What it found is kept in the
candidate's run folder (results/confirmations.py).
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.compare.confirmation import Confirmation, judge_again, judge_pairs
from edgebench.compare.noise import NoiseFloor
from edgebench.compare.verdicts import RunComparison, process_medians, slowdown_cause
from edgebench.core.errors import EdgebenchError
from edgebench.core.fileio import sha256_file
from edgebench.core.settings import CONFIRM_PAIRS, SettingError, from_plain, resolve
from edgebench.devices.connect import make_backend, open_transport
from edgebench.devices.inventory import resolve_device
from edgebench.quantize.variants import Variant, cached_variant_file
from edgebench.results.confirmations import write_confirmations
from edgebench.results.store import RunData, RunStore
from edgebench.run.lease import Owner, host_lock
from edgebench.run.runner import RunEvent, RunPlan, execute


@dataclass(frozen=True)
class ConfirmRequest:
    comparison: RunComparison
    baseline: RunData
    candidate: RunData
    threshold: float
    floors: dict[str, NoiseFloor] = field(default_factory=dict)
    pairs: int = CONFIRM_PAIRS  # A B pairs; the same file alone runs this many times
    devices_dir: Path | None = None
    cache_dir: Path | None = None
    trust_new_host: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What one suspect variant needs measured: both files (pairs) or the one file again."""

    name: str
    baseline_file: Path
    candidate_file: Path
    baseline_sha256: str
    candidate_sha256: str

    @property
    def identical(self) -> bool:
        return self.baseline_sha256 == self.candidate_sha256


def suspects(comparison: RunComparison) -> list[str]:
    """The variants whose latency verdict is slower, or suspected, and not yet confirmed."""
    return [v.variant for v in comparison.variants if v.suspected and v.confirmation is None]


def confirm_slowdowns(request: ConfirmRequest, on_event: Callable[[RunEvent], None]) -> dict[str, Confirmation]:
    """Measure and judge every suspect of the comparison; {} when there is none. Raises EdgebenchError (one
    line) when nothing can be re-measured: the device is unknown or unreachable, the files are gone."""
    names = suspects(request.comparison)
    if not names:
        return {}
    candidate, baseline = request.candidate, request.baseline
    device = resolve_device(candidate.record.device_name, request.devices_dir)
    plans = [_plan(name, baseline, candidate, request.cache_dir) for name in names]
    try:
        settings = resolve(device.settings, from_plain(candidate.record.settings), {"samples": 0})
    except SettingError as error:
        raise EdgebenchError(f"cannot confirm on {device.name}: {error}") from None
    settings = dataclasses.replace(settings, rounds=request.pairs, fidelity_samples=0)
    variants = []
    for plan in plans:
        files = [plan.candidate_file] if plan.identical else [plan.baseline_file, plan.candidate_file]
        labels = [plan.name] if plan.identical else [f"{plan.name}.baseline", f"{plan.name}.tonight"]
        shas = [plan.candidate_sha256] if plan.identical else [plan.baseline_sha256, plan.candidate_sha256]
        variants += [_variant(label, path, sha) for label, path, sha in zip(labels, files, shas, strict=True)]
    run_id = f"confirm-{candidate.run_id}"
    owner = Owner.of_run(run_id, list(request.command))
    with tempfile.TemporaryDirectory(prefix="edgebench-confirm-") as scratch:
        store = RunStore.create(Path(scratch), device.name, run_id, {"device": {"name": device.name}, "rounds":
                                request.pairs, "variants": []})  # fmt: skip
        run_plan = RunPlan(variants, None, settings, owner=owner, cancel=request.cancel)
        with (
            host_lock(device, owner, settings.wait, cancel=request.cancel),
            open_transport(device, trust_new_host=request.trust_new_host) as transport,
        ):
            execute(run_plan, transport, make_backend(device, transport), store, on_event)
        documents: dict[str, dict[int, dict]] = {}
        for m in store.measurements:
            if m.status == "ok":
                documents.setdefault(m.variant, {})[m.round] = m.document
    statistic = {v.variant: v.statistic for v in request.comparison.variants}
    found = {}
    for plan in plans:
        key = statistic.get(plan.name, "p50")  # a slowdown seen as stalls is re-measured on the means
        medians = {label: {r: d["timing"]["stats"][key] for r, d in rounds.items()}
                   for label, rounds in documents.items()}  # fmt: skip
        then = process_medians(baseline.ok(plan.name), key)
        cause = slowdown_cause(baseline.ok(plan.name), candidate.ok(plan.name))
        floor = request.floors.get(plan.name)
        try:
            if plan.identical:
                now = list(medians.get(plan.name, {}).values())
                found[plan.name] = judge_again(plan.name, baseline.run_id, now, then, request.threshold, floor,
                                               cause)  # fmt: skip
            else:
                a, b = medians.get(f"{plan.name}.baseline", {}), medians.get(f"{plan.name}.tonight", {})
                rounds = sorted(set(a) & set(b))
                found[plan.name] = judge_pairs(plan.name, baseline.run_id, [a[r] for r in rounds],
                                               [b[r] for r in rounds], then, request.threshold, floor,
                                               cause)  # fmt: skip
        except ValueError as error:  # too few measurements succeeded to judge by
            raise EdgebenchError(f"cannot confirm {plan.name} on {device.name}: {error}") from None
    return found


def keep(run_folder: Path, confirmations: dict[str, Confirmation]) -> str | None:
    """Store the confirmations in the candidate's run folder; the reason when that folder refuses the write."""
    try:
        write_confirmations(run_folder, {name: c.as_dict() for name, c in confirmations.items()})
    except OSError as error:
        return f"confirmation not kept in {run_folder}: {error.strerror or error}"
    return None


def _plan(name: str, baseline: RunData, candidate: RunData, cache_dir: Path | None) -> Plan:
    files, shas = {}, {}
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        meta = next((v for v in run.record.variant_files if v["name"] == name), None)
        if meta is None or not meta.get("sha256"):
            raise EdgebenchError(f"cannot confirm {name}: the {side} run {run.run_id} records no file for it")
        path = cached_variant_file(meta["sha256"], run.record.model_sha256 or "", cache_dir)
        model_path = Path((run.record.get("model") or {}).get("path") or "")
        if path is None and meta["sha256"] == run.record.model_sha256 and model_path.is_file():
            # float32 of a model that needed no change is the model's own file, if it is still that file
            path = model_path if sha256_file(model_path) == meta["sha256"] else None
        if path is None:
            raise EdgebenchError(f"cannot confirm {name}: the {side} run's file (sha256 {meta['sha256'][:12]}) is "
                                 "no longer in the variant cache")  # fmt: skip
        files[side], shas[side] = path, meta["sha256"]
    return Plan(name, files["baseline"], files["candidate"], shas["baseline"], shas["candidate"])


def _variant(label: str, path: Path, sha256: str) -> Variant:
    return Variant(label, path, path.stat().st_size, "confirmation", sha256, True)
